"""ProtoPNet's own explanation: "this looks like that" (``model.explain(images, method='native')``).

For each image and each explained class, the prototypes that add most to the class logit (``w_cp · sim_p``), each
with its upsampled similarity map, the box of the image patch it matched (pixels at or above the model's
``box_percentile`` of that map) and the source patch the prototype was pushed to. :meth:`PrototypeExplanation.figure`
draws one row per prototype: the image with the box, the similarity map, the image patch, the prototype's source
patch and the score arithmetic.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='ProtoPNet', num_classes=2, prototypes_per_class=2, prototype_dim=8,
    ...                           backbone=dict(type='TimmBackbone', model_name='test_resnet'))).eval()
    >>> exp = model.explain(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), method='native', top_classes=1)
    >>> exp.kind, len(exp.records[0]['classes'][0]['prototypes']), tuple(exp.similarity_maps.shape)
    ('prototypes', 3, (1, 1, 3, 32, 32))
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from registry.errors import ConfigError

from ...ops.modules import model_state
from ...ops.tensors import minmax_normalize, resize_maps
from ..explanation import Explanation
from .functional import high_activation_box


@dataclass
class PrototypeExplanation(Explanation):
    """A :class:`~zoo.models.Explanation` with the pieces of "this looks like that".

    Attributes (besides ``kind``, ``predicted``, ``records``, ``maps``):
        pixels: the images as the model saw them, uint8 ``[B, 3, H, W]``.
        similarity_maps: upsampled similarity ``[B, K_classes, K_prototypes, H, W]`` of the prototypes in
            ``records`` (raw similarity values).
        source_patches: uint8 ``[B, K_classes, K_prototypes, 3, S, S]`` (each prototype's pushed source patch), or
            ``None`` when the model stores none.
        class_names: the model's class names (for titles).
    """

    pixels: Tensor | None = None
    similarity_maps: Tensor | None = None
    source_patches: Tensor | None = None
    class_names: list[str] | None = None

    def figure(self, index: int, image: Tensor | None = None, class_names: Sequence[str] | None = None) -> Any:
        """Rows = (class, prototype) pairs; columns = image + box, similarity map, image patch, prototype patch."""
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        from zoo.viz.overlay import overlay, to_display

        names = list(class_names or self.class_names or [])
        pic = image if image is not None else self.pixels[index]
        rec = self.records[index]
        rows = [(ci, c, pi, p) for ci, c in enumerate(rec['classes']) for pi, p in enumerate(c['prototypes'])]
        fig = Figure(figsize=(7.2, 1.7 * max(1, len(rows)) + 0.4), dpi=100)
        axes = fig.subplots(max(1, len(rows)), 4, squeeze=False)
        disp = to_display(pic)
        for r, (ci, c, pi, p) in enumerate(rows):
            x1, y1, x2, y2 = p['box']
            sim = self.similarity_maps[index, ci, pi]
            panels = [disp, overlay(pic, sim), disp[:, y1:y2, x1:x2]]
            src = None if self.source_patches is None else self.source_patches[index, ci, pi]
            for k, ax in enumerate(axes[r]):
                ax.set_xticks([])
                ax.set_yticks([])
                if k < 3:
                    ax.imshow(panels[k].permute(1, 2, 0).numpy())
                elif src is not None and p['source'] is not None:
                    ax.imshow(to_display(src).permute(1, 2, 0).numpy())
                else:
                    ax.text(0.5, 0.5, 'not pushed', ha='center', va='center', fontsize=8)
            axes[r][0].add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, color='yellow', lw=1.5))
            cname = names[c['class']] if c['class'] < len(names) else str(c['class'])
            axes[r][0].set_ylabel(f"{cname}\n{c['probability']:.2f}", fontsize=7)
            pc = p['class']
            pname = names[pc] if pc < len(names) else str(pc)
            axes[r][3].set_xlabel(f"prototype {p['prototype']} ({pname})", fontsize=7)
            axes[r][2].set_xlabel(f"sim {p['similarity']:.2f} × w {p['weight']:.2f} = {p['contribution']:.2f}",
                                  fontsize=7)
        for k, title in enumerate(('image', 'similarity', 'this (image patch)', 'looks like that (prototype)')):
            axes[0][k].set_title(title, fontsize=8)
        fig.suptitle('this looks like that', fontsize=9)
        fig.tight_layout()
        return fig


def _display_pixels(model: Any, x: Tensor) -> Tensor:
    """The normalised batch back as uint8 pixels (the data preprocessor's mean/std)."""
    pre = model.data_preprocessor
    return (x * pre.std.to(x) + pre.mean.to(x)).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def explain_prototypes_native(model: Any, images: Any, targets: Any, top_classes: int = 2,
                              top_prototypes: int = 3) -> PrototypeExplanation:
    """What ``ProtoPNet.explain(images, method='native')`` returns (see the module docstring)."""
    for name, value in (('top_classes', top_classes), ('top_prototypes', top_prototypes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f'{name} must be a positive integer, got {value!r}.')
    x = model.prepare(images)
    with model_state(model, eval_mode=True, freeze=False):
        logits, sims = model.prototype_maps(x)
    b, size = x.shape[0], tuple(x.shape[-2:])
    probs = logits.float().softmax(-1)
    if targets is None:
        classes = logits.topk(min(top_classes, model.num_classes), dim=1).indices
    else:
        from zoo.ops.tensors import as_class_indices

        classes = as_class_indices(targets, b, logits.device, model.num_classes).view(-1, 1)
    k_p = min(top_prototypes, model.num_prototypes)
    weights = model.prototype_weights.float()                               # [C, P]
    peak, where = sims.flatten(2).max(-1)                                   # [B, P]
    grid_w = sims.shape[-1]
    sources = model.prototype_sources()
    has_patch = hasattr(model, 'push_patch')
    sim_maps = torch.zeros(b, classes.shape[1], k_p, *size)
    patches = torch.zeros(b, classes.shape[1], k_p, *model.push_patch.shape[1:], dtype=torch.uint8) \
        if has_patch else None
    records = []
    for i in range(b):
        rec_classes = []
        for ci, c in enumerate(classes[i].tolist()):
            contrib = weights[c] * peak[i].float()
            top = contrib.topk(k_p).indices.tolist()
            up = resize_maps(sims[i, top].float(), size).cpu()                 # [k_p, H, W]
            protos = []
            for pi, p in enumerate(top):
                sim_maps[i, ci, pi] = up[pi]
                if patches is not None:
                    patches[i, ci, pi] = model.push_patch[p].cpu()
                loc = int(where[i, p])
                src = sources[p]
                protos.append({'prototype': p, 'class': src['class'], 'similarity': float(peak[i, p]),
                               'weight': float(weights[c, p]), 'contribution': float(contrib[p]),
                               'location': [loc // grid_w, loc % grid_w],
                               'box': list(high_activation_box(up[pi], model.box_percentile)),
                               'source': None if src['index'] is None else
                               {k: src[k] for k in ('index', 'path', 'box', 'location')}})
            rec_classes.append({'class': c, 'name': (model.class_names or [None] * model.num_classes)[c],
                                'logit': float(logits[i, c]), 'probability': float(probs[i, c]),
                                'prototypes': protos})
        records.append({'predicted': int(logits[i].argmax()), 'classes': rec_classes})
    with model_state(model, eval_mode=True, freeze=False):
        evidence, _ = model.prototype_saliency(x, classes[:, 0])
    maps = minmax_normalize(resize_maps(evidence.float(), size)).cpu()
    return PrototypeExplanation(kind='prototypes', predicted=[int(v) for v in logits.argmax(1).tolist()],
                                records=records, maps=maps, pixels=_display_pixels(model, x).cpu(),
                                similarity_maps=sim_maps, source_patches=patches, class_names=model.class_names)
