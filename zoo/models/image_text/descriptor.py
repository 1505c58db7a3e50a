"""``DescriptorClassifier``: classification by description (Menon & Vondrick, ICLR 2023) as a zoo model.

Each class ``c`` has descriptors ``D(c)`` (the official JSON layout, ``{"class": ["descriptor", ...]}``); each
descriptor becomes a sentence by the official rule (``"{c}, which (is|has|...) {d}"``,
:func:`~zoo.models.image_text.prompts.descriptor_sentence`), and the class score is the mean cosine of the
L2-normalised image and sentence embeddings::

    s(c, x) = 1/|D(c)| · Σ_{d ∈ D(c)} ⟨φ_I(x), φ_T(sentence(c, d))⟩,    prediction = argmax_c s(c, x)

``forward(mode='tensor')`` returns ``logit_scale · s(c, x)``. ``explain(x, method='descriptors')`` (or
``'native'``) ranks the explained class's descriptors by their contribution ``⟨φ_I, φ_T⟩ / |D(c)|`` and draws them as
a bar chart beside the image; saliency explainers (``method='gradcam'``, ...) work on the image tower. Sentence
embeddings of every descriptor are computed once, kept in ``text_embeddings`` and saved with the export.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> tiny = dict(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
    ...             text_cfg=dict(context_length=32, width=32, heads=2, layers=1))
    >>> model = MODELS.build(dict(type='DescriptorClassifier', image_text=dict(type='ImageTextModel',
    ...                           model_cfg=tiny), descriptors={'cat': ['whiskers', 'a long tail'],
    ...                                                         'dog': ['has floppy ears']}))
    >>> model.class_names, model.texts()
    (['cat', 'dog'], ['cat, which has whiskers', 'cat, which is a long tail', 'dog, which has floppy ears'])
    >>> exp = model.explain(torch.randn(1, 3, 32, 32), method='descriptors', targets='cat')
    >>> [d['descriptor'] for d in exp.records[0]['descriptors']] in (['whiskers', 'a long tail'],
    ...                                                              ['a long tail', 'whiskers'])
    True
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from registry import MODELS
from registry.errors import ConfigError, shorten

from ..explanation import Explanation
from .base import ImageTextClassifier
from .prompts import descriptor_sentence, load_class_texts, select_classes

AGGREGATIONS = ('mean', 'max')
MENON_PAPER = {
    'title': 'Visual Classification via Description from Large Language Models',
    'authors': 'Sachit Menon and Carl Vondrick', 'venue': 'ICLR 2023', 'arxiv': '2210.07183',
    'url': 'https://arxiv.org/abs/2210.07183',
    'code': 'https://github.com/sachit-menon/classify_by_description_release',
    'bibtex': '@inproceedings{menon2023visual,\n  title     = {Visual Classification via Description from Large '
              'Language Models},\n  author    = {Menon, Sachit and Vondrick, Carl},\n  booktitle = {International '
              'Conference on Learning Representations (ICLR)},\n  year      = {2023},\n  eprint    = {2210.07183},\n'
              '  archivePrefix = {arXiv}\n}'}


@dataclass
class DescriptorExplanation(Explanation):
    """Per image: the explained class, its score, and its descriptors ranked by contribution (records); the figure
    is the image beside a bar chart of the descriptors' cosine similarities."""

    images: Tensor | None = None

    def figure(self, index: int, image: Tensor | None = None, class_names: Sequence[str] | None = None) -> Any:
        from matplotlib.figure import Figure

        from zoo.viz.overlay import to_display

        rec = self.records[index]
        items = rec['descriptors']
        fig = Figure(figsize=(9.5, max(3.0, 0.38 * len(items) + 1.2)), dpi=100)
        grid = fig.add_gridspec(1, 2, width_ratios=(1.3, 2.2))
        ax_img, ax_bar = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        image = image if image is not None else (None if self.images is None else self.images[index])
        if image is not None:
            ax_img.imshow(to_display(image).permute(1, 2, 0).numpy())
        ax_img.set_xticks([])
        ax_img.set_yticks([])
        pred = rec['predicted']
        ax_img.set_xlabel(f"predicted: {pred['class']} ({pred['probability']:.2f})", fontsize=8)
        sims = [d['similarity'] for d in items][::-1]
        labels = [d['descriptor'] if len(d['descriptor']) <= 44 else d['descriptor'][:43] + '…' for d in items][::-1]
        colours = ['tab:green' if s >= rec['score'] else 'tab:gray' for s in sims]
        ax_bar.barh(range(len(sims)), sims, color=colours)
        ax_bar.set_yticks(range(len(sims)), labels, fontsize=8)
        ax_bar.axvline(rec['score'], color='k', lw=1, ls='--', label=f"class score (mean) {rec['score']:.3f}")
        low, high = min(sims + [rec['score']]), max(sims + [rec['score']])
        pad = 0.1 * (high - low or 1.0)
        ax_bar.set_xlim(low - pad, high + pad)
        ax_bar.set_xlabel('cosine(image, "class, which ... descriptor")', fontsize=8)
        ax_bar.legend(fontsize=7, loc='lower right')
        ax_bar.set_title(f"why {rec['class']}: descriptors ranked by contribution", fontsize=9)
        fig.tight_layout()
        return fig


@MODELS.register_module()
class DescriptorClassifier(ImageTextClassifier):
    """Classification by description on an image-text model (see the module docstring).

    Args:
        image_text: config of an ``ImageTextModel`` (or the module).
        descriptors: the descriptors, ``{"class": ["descriptor", ...]}`` or a set shipped with xzoo
            (``'fashion_mnist'``); ``descriptor_file``: a JSON file of that layout instead (training configs only:
            an export stores the descriptors themselves).
        num_classes, class_names: the classes (default: the descriptor file's classes, in its order); every class
            needs descriptors.
        inclusion: ``'prepend'`` (official default: ``"{c}, which ... {d}"``), ``'append'``
            (``"which ... {d}, {c}"``) or ``'none'`` (descriptor only).
        connective: ``'official'`` (the released rule, on characters), ``'first_word'`` (the same table on the
            first word) or ``'none'`` (descriptor verbatim); see :func:`~zoo.models.image_text.prompts.connective`.
        before_text, between_text, after_text: the official ``hparams`` around the sentence (``''``, ``', '``,
            ``''``).
        aggregation: ``'mean'`` over a class's descriptors (the paper) or ``'max'``.
        data_preprocessor, contrastive, text_batch_size, init_cfg: see :class:`ImageTextClassifier`.
    """

    native_explanation = 'descriptors'

    def __init__(self, image_text: dict | nn.Module, descriptors: str | dict | None = None,
                 descriptor_file: str | None = None, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None, inclusion: str = 'prepend', connective: str = 'official',
                 before_text: str = '', between_text: str = ', ', after_text: str = '', aggregation: str = 'mean',
                 data_preprocessor: dict | None = None, contrastive: dict | None = None, text_batch_size: int = 256,
                 init_cfg: dict | None = None) -> None:
        self.table = load_class_texts(descriptors, descriptor_file)
        self._source = f'descriptor file {descriptor_file!r}' if descriptor_file else (
            f'descriptor set {descriptors!r}' if isinstance(descriptors, str) else 'the descriptors')
        if aggregation not in AGGREGATIONS:
            raise ConfigError(f'aggregation must be one of {AGGREGATIONS}, got {shorten(repr(aggregation))}.')
        self.sentence_args = dict(inclusion=inclusion, rule=connective, before=before_text, between=between_text,
                                  after=after_text)
        descriptor_sentence('x', 'y', **self.sentence_args)  # checks the switches now
        self.aggregation = aggregation
        self.keys = list(self.table)
        self.offsets = {}
        start = 0
        for key in self.keys:
            self.offsets[key] = start
            start += len(self.table[key])
        if class_names is None and num_classes is None:
            class_names = list(self.keys)
        self._index: tuple[tuple[str, ...], Tensor, Tensor] | None = None
        super().__init__(image_text, num_classes=num_classes, class_names=class_names,
                         data_preprocessor=data_preprocessor, contrastive=contrastive,
                         text_batch_size=text_batch_size, init_cfg=init_cfg)

    # --- texts ------------------------------------------------------------------------------------------------
    def _text_rows(self) -> int:
        return sum(len(v) for v in self.table.values())

    def _text_source(self) -> Any:
        return tuple(sorted(self.sentence_args.items()))

    def texts(self) -> list[str]:
        """One sentence per descriptor of every class of the descriptor table (its order)."""
        return [descriptor_sentence(key, d, **self.sentence_args) for key in self.keys for d in self.table[key]]

    def on_class_names(self, names: list[str]) -> None:
        super().on_class_names(names)
        select_classes(self.table, names, self._source)  # every class needs descriptors: fail now, in one line
        self._index = None

    def _class_index(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """``[K, M]`` rows of each class's descriptors in ``text_embeddings`` (padded) and the padding mask."""
        if self.class_names is None:
            raise ConfigError('DescriptorClassifier has no class names yet; set model.class_names.')
        names = tuple(self.class_names)
        if self._index is None or self._index[0] != names:
            counts = [len(self.table[n]) for n in names]
            width = max(counts)
            idx = torch.zeros(len(names), width, dtype=torch.long)
            mask = torch.zeros(len(names), width, dtype=torch.bool)
            for c, (name, n) in enumerate(zip(names, counts)):
                idx[c, :n] = torch.arange(self.offsets[name], self.offsets[name] + n)
                mask[c, :n] = True
            self._index = (names, idx, mask)
        return self._index[1].to(device), self._index[2].to(device)

    def descriptor_similarities(self, image_embeddings: Tensor) -> Tensor:
        """``[B, N]`` cosines of L2-normalised image embeddings with every descriptor sentence."""
        return image_embeddings @ self.class_text_embeddings().to(image_embeddings.dtype).T

    def class_scores(self, image_embeddings: Tensor) -> Tensor:
        sims = self.descriptor_similarities(image_embeddings)
        idx, mask = self._class_index(sims.device)
        per_class = sims[:, idx]                                   # [B, K, M]
        if self.aggregation == 'max':
            return per_class.masked_fill(~mask, float('-inf')).amax(-1)
        return (per_class * mask).sum(-1) / mask.sum(-1)

    # --- explanation ------------------------------------------------------------------------------------------
    def explain_native(self, images: Any, targets: Any = None, top_k: int | None = None,
                       **kwargs: Any) -> DescriptorExplanation:
        """The explained class's descriptors ranked by contribution, per image (``top_k``: keep the first k)."""
        from zoo.ops.modules import model_state
        from zoo.ops.tensors import targets_or_predicted

        if kwargs:
            raise ConfigError(f'The descriptor explanation takes targets and top_k, not {", ".join(kwargs)}.')
        pixels = images if isinstance(images, Tensor) and not images.is_floating_point() else None
        if pixels is None and (isinstance(images, (str, os.PathLike)) or hasattr(images, 'convert') or (
                isinstance(images, Sequence) and images and not isinstance(images[0], Tensor))):
            pixels = self.load_images(images)            # files / PIL images: keep the pixels for the figures
        x = self.prepare(images if pixels is None else pixels)
        with torch.no_grad(), model_state(self, eval_mode=True, freeze=False):
            emb = self.image_text.encode_image(x, normalize=True)
            sims = self.descriptor_similarities(emb).float()
            scores = self.class_scores(emb).float()
            logits = self.logit_scale.float() * scores
            bias = self.image_text.logit_bias
            probs = (logits if bias is None else logits + bias.float()).softmax(-1)
        idx, mask = self._class_index(sims.device)
        chosen = targets_or_predicted(self.resolve_targets(targets), scores)
        names, texts = self.class_names, self.texts()
        records = []
        for i, c in enumerate(chosen.tolist()):
            rows = idx[c][mask[c]].tolist()
            raw = self.table[names[c]]
            items = [{'descriptor': raw[j], 'sentence': texts[r], 'similarity': float(sims[i, r]),
                      'contribution': float(sims[i, r]) / len(rows)} for j, r in enumerate(rows)]
            items.sort(key=lambda d: d['similarity'], reverse=True)
            top = int(probs[i].argmax())
            records.append({'class': names[c], 'class_index': c, 'score': float(scores[i, c]),
                            'aggregation': self.aggregation,
                            'predicted': {'class': names[top], 'class_index': top, 'probability': float(probs[i, top])},
                            'descriptors': items[:top_k] if top_k else items})
        return DescriptorExplanation(kind='descriptors', predicted=chosen.tolist(), records=records, maps=None,
                                     images=None if pixels is None else pixels.reshape(-1, *pixels.shape[-3:]).cpu())

    def inference_config(self) -> dict[str, Any]:
        """As the base's, with the descriptors themselves (never a file path: an export reads nothing outside its
        folder)."""
        cfg = super().inference_config()
        cfg.pop('descriptor_file', None)
        cfg['descriptors'] = copy.deepcopy(self.table)
        return cfg

    @classmethod
    def method_info(cls, model_cfg: Mapping[str, Any]) -> dict[str, Any]:
        info = {'method': 'classification-by-description',
                'tags': ['image-text', 'zero-shot', 'classification-by-description', 'descriptors'],
                'paper': copy.deepcopy(MENON_PAPER)}
        trained = cls._training_method(model_cfg)
        if trained is not None:
            info['trained_with'] = trained
        return info
