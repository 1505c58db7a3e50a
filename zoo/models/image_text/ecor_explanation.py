"""``RationaleExplanation``: ECOR's own explanation — the category with its rationales, drawn under the image."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from registry.errors import ConfigError

from ..explanation import Explanation


@dataclass
class RationaleExplanation(Explanation):
    """Per image (``records``): the explained category and its probability ``P(c | I)``, and the most probable
    rationales with ``P(r | I)``, ``P(c | r, I)`` and the joint ``P(c, r | I)`` (``condition='rationale'``), each
    marked when it belongs to the category's rationales. The figure is the image with these lines under it."""

    images: Tensor | None = None

    def lines(self, index: int) -> list[tuple[str, str]]:
        """``(text, colour)`` lines of the figure's caption."""
        rec = self.records[index]
        pred = rec['predicted']
        head = f"{rec['class']}  P(c|I) = {rec['probability']:.2f}"
        if rec['class_index'] != pred['class_index']:
            head += f"   (predicted: {pred['class']} {pred['probability']:.2f})"
        out = [(head, 'black'), ('because  [P(r|I)' + (', P(c|r,I)]' if any(
            'class_probability' in r for r in rec['rationales']) else ']'), 'dimgray')]
        for r in rec['rationales']:
            mark = '✓' if r['in_class'] else '✗'
            probs = f"{r['probability']:.2f}" + (f", {r['class_probability']:.2f}" if 'class_probability' in r else '')
            out.append((f"{mark} {r['rationale']}  [{probs}]", 'tab:green' if r['in_class'] else 'tab:red'))
        return out

    def figure(self, index: int, image: Tensor | None = None, class_names: Sequence[str] | None = None) -> Any:
        from matplotlib.figure import Figure

        from zoo.viz.overlay import to_display

        lines = self.lines(index)
        fig = Figure(figsize=(4.2, 3.2 + 0.24 * len(lines)), dpi=100)
        grid = fig.add_gridspec(2, 1, height_ratios=(3.0, 0.24 * len(lines) + 0.1))
        ax_img, ax_txt = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        image = image if image is not None else (None if self.images is None else self.images[index])
        if image is not None:
            ax_img.imshow(to_display(image).permute(1, 2, 0).numpy())
        ax_img.set_axis_off()
        ax_txt.set_axis_off()
        for j, (text, colour) in enumerate(lines):
            ax_txt.text(0.0, 1.0 - j / max(len(lines), 1), text, transform=ax_txt.transAxes, va='top', ha='left',
                        fontsize=8, color=colour, fontweight='bold' if j == 0 else 'normal')
        fig.subplots_adjust(left=0.04, right=0.98, top=0.98, bottom=0.02, hspace=0.05)
        return fig


def explain_rationales(model: Any, images: Any, targets: Any = None, top_k: int | None = None,
                       **kwargs: Any) -> RationaleExplanation:
    """ECOR's ``explain_native``: see :meth:`zoo.models.image_text.ECOR.explain_native`."""
    from zoo.ops.modules import model_state
    from zoo.ops.tensors import targets_or_predicted

    if kwargs:
        raise ConfigError(f'The rationale explanation takes targets and top_k, not {", ".join(kwargs)}.')
    pixels = images if isinstance(images, Tensor) and not images.is_floating_point() else None
    if pixels is None and (isinstance(images, (str, os.PathLike)) or hasattr(images, 'convert') or (
            isinstance(images, Sequence) and images and not isinstance(images[0], Tensor))):
        pixels = model.load_images(images)
    x = model.prepare(images if pixels is None else pixels)
    with torch.no_grad(), model_state(model, eval_mode=True, freeze=False):
        img = model.image_text.encode_image(x, normalize=True)
        p_c = model.class_log_probs(img).float().exp()
        p_r = model.rationale_logits(img).float().softmax(-1)
        cond = model.conditional_logits(img).float().softmax(-1) if model.condition == 'rationale' else None
    chosen = targets_or_predicted(model.resolve_targets(targets), p_c)
    names = model.category_names()
    k = min(top_k or model.top_k or 5, len(model.vocab))
    records = []
    for i, c in enumerate(chosen.tolist()):
        own = set(model.vocab.by_class[names[c]])
        items = []
        for r in p_r[i].topk(k).indices.tolist():
            item = {'rationale': model.vocab.texts[r], 'id': r, 'probability': float(p_r[i, r]),
                    'in_class': r in own}
            if cond is not None:
                item['class_probability'] = float(cond[i, r, c])
                item['joint'] = float(p_r[i, r] * cond[i, r, c])
            items.append(item)
        top = int(p_c[i].argmax())
        records.append({'class': names[c], 'class_index': c, 'probability': float(p_c[i, c]),
                        'condition': model.condition, 'top_k': model.top_k,
                        'predicted': {'class': names[top], 'class_index': top, 'probability': float(p_c[i, top])},
                        'rationales': items})
    return RationaleExplanation(kind='rationales', predicted=chosen.tolist(), records=records, maps=None,
                                images=None if pixels is None else pixels.reshape(-1, *pixels.shape[-3:]).cpu())
