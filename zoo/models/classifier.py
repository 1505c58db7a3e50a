"""``ImageClassifier``: data preprocessor + backbone + linear head (+ optional alignment heads for training).

At inference the model is exactly backbone + head; alignment heads and the text branch (LICO) only add training
losses: they are the class's ``training_only`` parts (left out of inference weights, exports and loading). It
implements the zoo model contract (:mod:`zoo.models.contract`).

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(
    ...     type='ImageClassifier',
    ...     backbone=dict(type='TimmBackbone', model_name='resnet18'),
    ...     head=dict(type='LinearClsHead', num_classes=3),
    ...     class_names=['cat', 'dog', 'bird']))
    >>> tuple(model(torch.randn(2, 3, 64, 64)).shape)     # mode='tensor': logits
    (2, 3)
    >>> model.explain_meta['target_layer']
    'backbone.model.layer4'
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from mmengine.model import BaseModel
from torch import nn

from registry import BACKBONES, HEADS, MODELS, TEXT_ENCODERS
from registry.errors import ConfigError

from ..structures import DataSample, stack_field
from .backbones.timm_backbone import BackboneOutput
from .contract import ZooModel
from .input_stats import TimmInputMixin

LICO_HEADS = frozenset({'ManifoldAlignmentHead', 'OTAlignmentHead'})
LICO_PAPER = {
    'title': 'LICO: Explainable Models with Language-Image Consistency', 'authors': 'Yiming Lei et al.',
    'venue': 'NeurIPS 2023', 'arxiv': '2310.09821', 'url': 'https://arxiv.org/abs/2310.09821',
    'bibtex': '@inproceedings{lei2023lico,\n  title     = {{LICO}: Explainable Models with Language-Image '
              'Consistency},\n  author    = {Lei, Yiming and Li, Zilong and Li, Yangyang and Zhang, Junping and '
              'Shan, Hongming},\n  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},\n'
              '  year      = {2023},\n  eprint    = {2310.09821},\n  archivePrefix = {arXiv}\n}'}


@MODELS.register_module()
class ImageClassifier(TimmInputMixin, ZooModel, BaseModel):
    """An image classifier in mmengine's ``loss`` / ``predict`` / ``tensor`` protocol.

    Args:
        backbone: config of a ``BACKBONES`` component returning :class:`BackboneOutput`.
        head: config of a classification head (``HEADS``); ``in_channels`` defaults to the backbone's width.
        data_preprocessor: config (``MODELS``); mean/std default to the backbone's timm preprocessing config.
        alignment_heads: configs of ``HEADS`` components adding training-only losses. Each must provide
            ``loss(features: BackboneOutput, labels: Tensor, data_samples: list) -> dict[str, Tensor]`` and may
            provide ``set_class_names(names)``; their weights never reach inference or export. When the model has
            a ``text_branch``, ``loss`` also receives ``text=`` (its output for the batch's labels, computed once per
            step and shared by all heads), and the head's constructor receives whichever of ``in_channels`` and
            ``text_dim`` it takes.
        class_names: the classes, in label order (set from the dataset by ``ClassNamesHook`` when ``None``).
        text_branch: config of a ``TEXT_ENCODERS`` branch (``LICOTextBranch``: text encoder + prompt learner) whose
            features the alignment heads compare with the image features; ``num_classes`` is filled in. Training
            only: it is not built when there are no alignment heads (what the test and inference tools build),
            :meth:`predict` never runs it and :meth:`inference_state_dict` drops it.
        alignment_defaults: extra constructor arguments for every alignment head that takes them, e.g.
            ``dict(spatial_size=14 * 14)`` (the backbone's feature-map size at the recipe's resolution, for
            ``OTAlignmentHead``), so that a recipe can reuse a preset's head configs unchanged.
        init_cfg: mmengine weight-init config.
    """

    training_only = ('alignment_heads', 'text_branch', 'alignment_defaults')
    component_args = {'backbone': 'BACKBONES', 'head': 'HEADS', 'data_preprocessor': 'MODELS',
                      'alignment_heads': 'HEADS', 'text_branch': 'TEXT_ENCODERS'}

    def __init__(self, backbone: dict, head: dict, data_preprocessor: dict | None = None,
                 alignment_heads: Sequence[dict] | None = None, class_names: Sequence[str] | None = None,
                 text_branch: dict | None = None, alignment_defaults: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.backbone = BACKBONES.build(backbone) if isinstance(backbone, dict) else backbone
        if isinstance(head, dict):
            head = HEADS.build(head, default_args=dict(in_channels=self.backbone.num_features))
        self.head = head
        pre_cfg = dict(type='ClsDataPreprocessor') if data_preprocessor is None else dict(data_preprocessor)
        self.data_preprocessor = MODELS.build(pre_cfg)
        if not getattr(self.data_preprocessor, 'mean_std_set', True):
            cfg = getattr(self.backbone, 'pretrained_cfg', {})
            self.data_preprocessor.set_mean_std([255 * m for m in cfg.get('mean', (0.485, 0.456, 0.406))],
                                                [255 * s for s in cfg.get('std', (0.229, 0.224, 0.225))])
        if not alignment_heads:
            text_branch = None  # it only feeds alignment heads: inference/test configs drop them, so no CLIP is built
        if isinstance(text_branch, dict):
            text_branch = TEXT_ENCODERS.build(text_branch, default_args=dict(num_classes=self.num_classes))
        self.text_branch = text_branch
        self._extra_alignment_defaults = dict(alignment_defaults or {})
        self.alignment_heads = nn.ModuleList(
            HEADS.build(c, default_args=self._alignment_defaults(c)) if isinstance(c, dict) else c
            for c in (alignment_heads or []))
        if class_names is not None:
            self.class_names = list(class_names)

    def _alignment_defaults(self, cfg: dict | None = None) -> dict[str, Any]:
        """Arguments an alignment head may rely on (``in_channels``; ``text_dim`` with a text branch; the
        ``alignment_defaults``), restricted to those the head named by ``cfg`` accepts (see docs/lico.md)."""
        defaults: dict[str, Any] = {'in_channels': self.backbone.num_features}
        if self.text_branch is not None:
            defaults['text_dim'] = self.text_branch.out_dim
        defaults.update(getattr(self, '_extra_alignment_defaults', {}))
        head_type = (cfg or {}).get('type')
        cls = HEADS.get(head_type) if isinstance(head_type, str) else head_type
        try:
            params = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            return defaults
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return defaults
        return {k: v for k, v in defaults.items() if k in params}

    # --- metadata ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return int(self.head.num_classes)

    def on_class_names(self, names: list[str]) -> None:
        for head in [self.text_branch, *self.alignment_heads]:
            if hasattr(head, 'set_class_names'):
                head.set_class_names(names)

    @property
    def explain_meta(self) -> dict[str, Any]:
        """What explainers read about this model (see docs/architecture.md)."""
        bb = self.backbone
        return {
            'target_layer': 'backbone.' + bb.default_target_layer,
            'patch_size': getattr(bb, 'patch_size', None),
            'num_prefix_tokens': getattr(bb, 'num_prefix_tokens', 0),
            'output_fmt': getattr(bb, 'output_fmt', 'NCHW'),
            'class_names': self.class_names,
        }

    @classmethod
    def method_info(cls, model_cfg: Any) -> dict[str, Any]:
        """``lico`` (with the preset's head settings) when LICO alignment heads are configured, else
        ``baseline``; another alignment head is ``alignment``."""
        heads = [h.get('type') if isinstance(h, dict) else type(h).__name__
                 for h in (model_cfg.get('alignment_heads') or [])]
        heads = [h.__name__ if isinstance(h, type) else str(h) for h in heads]
        if set(heads) & LICO_HEADS:
            return {'method': 'lico', 'tags': ['lico', 'language-image-consistency'], 'paper': dict(LICO_PAPER),
                    'alignment_heads': heads}
        if heads:
            return {'method': 'alignment', 'tags': ['alignment'], 'paper': None, 'alignment_heads': heads}
        return {'method': 'baseline', 'tags': ['baseline'], 'paper': None, 'alignment_heads': []}

    # --- mmengine protocol ------------------------------------------------------------------------------------
    def extract_feat(self, inputs: torch.Tensor) -> BackboneOutput:
        return self.backbone(inputs)

    def forward(self, inputs: torch.Tensor, data_samples: list[DataSample] | None = None,
                mode: str = 'tensor') -> Any:
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs).pooled)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: torch.Tensor, data_samples: list[DataSample]) -> dict[str, torch.Tensor]:
        labels = stack_field(data_samples, 'gt_label')
        if labels is None:
            raise ValueError('Training needs gt_label in every data sample.')
        labels = labels.to(inputs.device)
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ConfigError(f'Label {int(labels.max())} is out of range for a head with {self.num_classes} '
                              'classes: the dataset and model.head.num_classes disagree.')
        feats = self.extract_feat(inputs)
        losses = dict(self.head.loss(feats.pooled, labels))
        context = {}
        if self.text_branch is not None and len(self.alignment_heads):
            context['text'] = self.text_branch(labels)  # once per step, shared by every alignment head
        for head in self.alignment_heads:
            losses.update(head.loss(feats, labels, data_samples, **context))
        return losses

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples: list[DataSample] | None = None) -> list[DataSample]:
        scores = self.head(self.extract_feat(inputs).pooled).softmax(-1)
        samples = data_samples if data_samples is not None else [DataSample() for _ in range(len(scores))]
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score)
        return samples
