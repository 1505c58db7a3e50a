"""``LCAMClassifier``: a frozen image classifier plus the L-CAM attention module trained to explain it.

L-CAM (Gkartzonika, Gkalelis & Mezaris, ECCV 2022 workshops; official code ``bmezaris/L-CAM``) learns a 1x1
convolution ``C_last → num_classes`` (with bias) on the classifier's last feature map ``F``; ``A = sigmoid(conv(F))``
is one attention map per class. During training the map of the ground-truth class ``c`` masks what the frozen
classifier sees:

- ``variant='fm'`` (L-CAM-Fm): ``logits = head(GAP(A_c ⊙ F))`` — the mask multiplies the feature maps;
- ``variant='img'`` (L-CAM-Img): ``A_c`` is upsampled bilinearly to the input size, multiplies the image in pixel
  space ([0, 1], i.e. un-normalised with the data preprocessor's mean/std), and the re-normalised product goes
  through the whole frozen classifier again;

and the loss is ``1.5·CE + 2·mean((A_c + 0.0005)^0.3) + 0.01·TV(A_c)`` (:func:`area_loss`, :func:`tv_loss`).

The classifier is frozen: ``requires_grad=False`` and eval mode kept whatever ``train()`` mmengine calls (no
batch-norm statistics update, no dropout), so ``model(x)`` (``mode='tensor'``) returns exactly the frozen
classifier's logits and every explainer explains the unchanged model. The saliency of the ``LCAM`` explainer
(``zoo.explainers.lcam``) is the pre-sigmoid attention of the target class, read through :meth:`lcam_attention`
(one forward pass for a batch).

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='LCAMClassifier', variant='fm', classifier=dict(
    ...     type='ImageClassifier', backbone=dict(type='TimmBackbone', model_name='test_resnet'),
    ...     head=dict(type='LinearClsHead', num_classes=3))))
    >>> logits, attention = model.lcam_attention(torch.randn(2, 3, 32, 32))
    >>> tuple(logits.shape), tuple(attention.shape)
    ((2, 3), (2, 3, 1, 1))
    >>> sorted(model.loss(torch.randn(2, 3, 32, 32), [{'gt_label': 0}, {'gt_label': 2}]))
    ['acc_masked', 'loss_area', 'loss_ce', 'loss_tv']
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from registry import MODELS
from registry.errors import CheckpointError, ConfigError

from ..structures import DataSample, stack_field
from .contract import Preprocessing, ZooModel

LCAM_PAPER = {
    'title': 'Learning Visual Explanations for DCNN-Based Image Classifiers Using an Attention Mechanism',
    'authors': 'Ioanna Gkartzonika, Nikolaos Gkalelis, Vasileios Mezaris',
    'venue': 'ECCV 2022 Workshops (VBSD)', 'arxiv': '2209.11189', 'url': 'https://arxiv.org/abs/2209.11189',
    'code': 'https://github.com/bmezaris/L-CAM',
    'bibtex': '@inproceedings{gkartzonika2022lcam,\n  title     = {Learning Visual Explanations for {DCNN}-Based '
              'Image Classifiers Using an Attention Mechanism},\n  author    = {Gkartzonika, Ioanna and Gkalelis, '
              'Nikolaos and Mezaris, Vasileios},\n  booktitle = {Computer Vision -- {ECCV} 2022 Workshops},\n'
              '  year      = {2022},\n  eprint    = {2209.11189},\n  archivePrefix = {arXiv}\n}'}
VARIANTS = ('fm', 'img')


def area_loss(masks: Tensor, power: float = 0.3, eps: float = 0.0005) -> Tensor:
    """``mean((masks + eps)^power)`` (plain ``mean(masks)`` when ``power == 1``), the official area term."""
    return (masks if power == 1 else (masks + eps) ** power).mean()


def tv_loss(masks: Tensor, power: float = 2.0, border: float = 0.3) -> Tensor:
    """The official total variation of masks ``[N, M, h, w]``.

    ``(Σ|Δ_h|^p + Σ|Δ_w|^p + border · Σ(first/last row and column)^p) / (p · N)`` — sums over every mask and
    pixel, divided by ``p`` times the batch size ``N`` (not the number of masks or pixels); corner pixels enter
    the border sum twice.
    """
    dh = (masks[:, :, 1:, :] - masks[:, :, :-1, :]).abs().pow(power).sum()
    dw = (masks[:, :, :, 1:] - masks[:, :, :, :-1]).abs().pow(power).sum()
    edge = 0.0
    if border > 0:
        edge = border * (masks[:, :, -1, :].pow(power) + masks[:, :, 0, :].pow(power)).sum() + \
            border * (masks[:, :, :, -1].pow(power) + masks[:, :, :, 0].pow(power)).sum()
    return (dh + dw + edge) / (power * masks.shape[0])


def _strip_pretrained(node: Any) -> Any:
    """A config copy with every nested ``pretrained`` off (a checkpoint supplies every weight)."""
    if isinstance(node, Mapping):
        return {k: (False if k == 'pretrained' and v not in (None, False) else _strip_pretrained(v))
                for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_strip_pretrained(v) for v in node]
    return node


@MODELS.register_module()
class LCAMClassifier(ZooModel, BaseModel):
    """A frozen classifier (any zoo ``MODELS`` classifier with a ``backbone`` returning a feature map and a
    ``head``, e.g. ``ImageClassifier``) and the L-CAM attention module trained on top of it.

    Args:
        classifier: config of the classifier to explain (its weights come from ``classifier_checkpoint``).
        variant: ``'img'`` (L-CAM-Img, default) or ``'fm'`` (L-CAM-Fm): how the attention masks what the classifier
            sees during training (module docstring). Inference is the same for both.
        classifier_checkpoint: training only. The classifier's weights: a training work dir (its newest
            checkpoint), an mmengine ``.pth`` of the classifier, an export's ``model.safetensors``, or timm-format
            weights of the whole timm model (its classifier layer becomes the head). ``None`` keeps the
            classifier as built (random unless its config loads weights). Every nested ``pretrained`` of the
            classifier config is switched off when it is given.
        ce_weight, area_weight, tv_weight: loss weights (official: 1.5, 2, 0.01).
        area_power, area_eps: the area term ``mean((A + eps)^power)`` (official: 0.3, 0.0005).
        tv_power, tv_border: the total-variation term (:func:`tv_loss`; official: 2, 0.3).
        all_batch_labels: the official code's indexing quirk. The masks entering the area and TV terms are
            ``A[:, labels]`` — for every image, the maps of *all* the batch's labels ([B, B, h, w]), not only its
            own ([B, 1, h, w]). ``False`` (default) uses each image's own label, as the paper describes; the
            cross-entropy term always uses each image's own mask.
        class_names: the classes, in label order (the dataset's, when ``None``).
        init_cfg: mmengine weight-init config.
    """

    training_only = ('classifier_checkpoint',)
    component_args = {'classifier': 'MODELS'}
    default_explainer = 'lcam'

    def __init__(self, classifier: dict, variant: str = 'img', classifier_checkpoint: str | None = None,
                 ce_weight: float = 1.5, area_weight: float = 2.0, area_power: float = 0.3,
                 area_eps: float = 0.0005, tv_weight: float = 0.01, tv_power: float = 2.0, tv_border: float = 0.3,
                 all_batch_labels: bool = False, class_names: list[str] | None = None,
                 init_cfg: dict | None = None) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"LCAMClassifier: variant must be 'img' (L-CAM-Img) or 'fm' (L-CAM-Fm), got "
                              f'{variant!r}.')
        if isinstance(classifier, Mapping):
            cfg = _strip_pretrained(dict(classifier)) if classifier_checkpoint else dict(classifier)
            classifier = MODELS.build(cfg)
        for name in ('backbone', 'head', 'data_preprocessor'):
            if not isinstance(getattr(classifier, name, None), nn.Module):
                raise ConfigError(f'LCAMClassifier: the classifier ({type(classifier).__name__}) has no {name}; '
                                  'L-CAM needs a classifier made of data_preprocessor + backbone (a feature map) + '
                                  "head, such as dict(type='ImageClassifier', ...).")
        super().__init__(data_preprocessor=classifier.data_preprocessor, init_cfg=init_cfg)
        self.classifier = classifier
        if classifier_checkpoint:
            load_classifier_weights(classifier, classifier_checkpoint)
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        backbone = self.classifier.backbone
        channels = int(getattr(backbone, 'feature_channels', None) or backbone.num_features)
        self.attention = nn.Conv2d(channels, self.classifier.num_classes, kernel_size=1, bias=True)
        self.variant = variant
        self.ce_weight, self.area_weight, self.tv_weight = float(ce_weight), float(area_weight), float(tv_weight)
        self.area_power, self.area_eps = float(area_power), float(area_eps)
        self.tv_power, self.tv_border = float(tv_power), float(tv_border)
        self.all_batch_labels = bool(all_batch_labels)
        self.classifier.eval()
        if class_names is not None:
            self.class_names = list(class_names)

    # --- the frozen classifier stays frozen -------------------------------------------------------------------
    def train(self, mode: bool = True) -> LCAMClassifier:
        """Train mode for the attention module only: the classifier stays in eval mode (batch-norm statistics
        and dropout frozen), whatever mmengine's loops call."""
        super().train(mode)
        self.classifier.eval()
        return self

    # --- metadata ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return int(self.classifier.num_classes)

    def on_class_names(self, names: list[str]) -> None:
        if hasattr(self.classifier, 'class_names'):
            self.classifier.class_names = names

    @property
    def explain_meta(self) -> dict[str, Any]:
        """The classifier's metadata (its layer names under ``classifier.``), plus ``lcam_variant``."""
        meta = dict(getattr(self.classifier, 'explain_meta', None) or {})
        if meta.get('target_layer'):
            meta['target_layer'] = 'classifier.' + meta['target_layer']
        return {**meta, 'class_names': self.class_names, 'lcam_variant': self.variant}

    def default_preprocessing(self) -> Preprocessing:
        pre = getattr(self.classifier, 'default_preprocessing', None)
        return pre() if callable(pre) else super().default_preprocessing()

    @classmethod
    def inference_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """The contract's inference arguments, with the classifier's own training-only parts dropped too."""
        out = super().inference_args(args)
        inner = out.get('classifier')
        kind = inner.get('type') if isinstance(inner, Mapping) else None
        inner_cls = MODELS.get(kind) if isinstance(kind, str) else kind
        if inner_cls is not None and hasattr(inner_cls, 'inference_args'):
            out['classifier'] = {'type': kind, **inner_cls.inference_args(inner)}
        return out

    def inference_config(self) -> dict[str, Any]:
        """Inference config with the classifier's resolved data-preprocessor mean/std written out."""
        cfg = super().inference_config()
        inner = getattr(self.classifier, 'inference_config', None)
        if callable(inner) and isinstance(cfg.get('classifier'), Mapping):
            resolved = inner()
            cfg['classifier'] = {**cfg['classifier'], 'data_preprocessor': resolved.get('data_preprocessor')}
        return cfg

    @classmethod
    def method_info(cls, model_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``lcam-img`` or ``lcam-fm``, citing the L-CAM paper."""
        variant = str(model_cfg.get('variant', 'img'))
        return {'method': f'lcam-{variant}', 'tags': ['lcam', f'lcam-{variant}', 'attention', 'saliency'],
                'paper': dict(LCAM_PAPER), 'variant': variant}

    # --- what the LCAM explainer reads ----------------------------------------------------------------------
    def lcam_attention(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """One forward pass: ``(classifier logits [B, K], pre-sigmoid attention [B, K, h, w])``.

        The protocol of ``zoo.explainers.LCAM``: any model providing this method can be explained by it.
        """
        out = self.classifier.backbone(inputs)
        return self.classifier.head(out.pooled), self.attention(out.feature_map)

    # --- mmengine protocol ------------------------------------------------------------------------------------
    def forward(self, inputs: Tensor, data_samples: list[DataSample] | None = None, mode: str = 'tensor') -> Any:
        if mode == 'tensor':
            return self.classifier(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.classifier.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def pixel_mask(self, inputs: Tensor, masks: Tensor) -> Tensor:
        """Normalised images whose pixels ([0, 1] scale) are multiplied by ``masks`` ``[B, 1, H, W]``."""
        pre = self.data_preprocessor
        mean, std = pre.mean.to(inputs), pre.std.to(inputs)
        return ((inputs * std + mean) * masks - mean) / std

    def masked_logits(self, inputs: Tensor, features: Any, mask: Tensor) -> Tensor:
        """The frozen classifier's logits when the attention ``mask`` ``[B, 1, h, w]`` hides part of what it sees
        (feature maps for ``'fm'``, the image for ``'img'``)."""
        if self.variant == 'fm':
            fmap = features.feature_map
            if not torch.allclose(features.pooled, fmap.mean((2, 3)), rtol=1e-4, atol=1e-5):
                raise ConfigError('L-CAM-Fm needs a classifier whose pooled features are the global average of its '
                                  f'last feature map; {type(self.classifier.backbone).__name__} pools otherwise '
                                  "(a class token, attention or max pooling). Use variant='img'.")
            return self.classifier.head((mask * fmap).mean((2, 3)))
        up = F.interpolate(mask, size=tuple(inputs.shape[-2:]), mode='bilinear', align_corners=False)
        return self.classifier(self.pixel_mask(inputs, up))

    def loss(self, inputs: Tensor, data_samples: list[Any]) -> dict[str, Tensor]:
        """``loss_ce`` (weighted cross-entropy of the masked prediction), ``loss_area``, ``loss_tv``; and
        ``acc_masked`` (top-1 % of the masked prediction, logged only)."""
        labels = stack_field(data_samples, 'gt_label')
        if labels is None:
            raise ConfigError('L-CAM training needs gt_label in every data sample.')
        labels = labels.to(inputs.device).long().flatten()
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ConfigError(f'Label {int(labels.max())} is out of range for a classifier with {self.num_classes} '
                              'classes: the dataset and model.classifier.head.num_classes disagree.')
        with torch.no_grad():
            features = self.classifier.backbone(inputs)
        attention = torch.sigmoid(self.attention(features.feature_map))
        own = attention[torch.arange(len(labels), device=labels.device), labels][:, None]
        logits = self.masked_logits(inputs, features, own)
        masks = attention[:, labels] if self.all_batch_labels else own
        return {'loss_ce': self.ce_weight * F.cross_entropy(logits, labels),
                'loss_area': self.area_weight * area_loss(masks, self.area_power, self.area_eps),
                'loss_tv': self.tv_weight * tv_loss(masks, self.tv_power, self.tv_border),
                'acc_masked': (logits.detach().argmax(1) == labels).float().mean() * 100}


def _timm_to_classifier(state: dict[str, Tensor], classifier: nn.Module) -> dict[str, Tensor] | None:
    """timm-format weights of a whole timm model → ``backbone.model.*`` + ``head.fc.*``; ``None`` if they are not."""
    timm_model = getattr(getattr(classifier, 'backbone', None), 'model', None)
    head_fc = getattr(getattr(classifier, 'head', None), 'fc', None)
    names = (getattr(timm_model, 'pretrained_cfg', None) or {}).get('classifier')
    if timm_model is None or head_fc is None or not names:
        return None
    names = (names,) if isinstance(names, str) else tuple(names)
    out = {}
    for key, value in state.items():
        top = next((n for n in names if key.startswith(n + '.')), None)
        out[f'head.fc.{key[len(top) + 1:]}' if top else f'backbone.model.{key}'] = value
    return out


def load_classifier_weights(classifier: nn.Module, checkpoint: str | os.PathLike) -> None:
    """Load the frozen classifier's weights strictly from a work dir, a ``.pth``, an export's safetensors or
    timm-format weights of the whole timm model (see :class:`LCAMClassifier`)."""
    from zoo.core.checkpoints import latest_checkpoint

    from .weights import check_state_dict_fits, read_state_dict

    path = os.path.expanduser(os.fspath(checkpoint))
    if os.path.isdir(path):
        path = latest_checkpoint(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'classifier_checkpoint {path!r} does not exist. Train the classifier first (e.g. '
                              'tools/train.py configs/efficientnetlite0_baseline_clutteredfmnist.py) and name its '
                              'work dir or checkpoint in model.classifier_checkpoint.')
    state, _ = read_state_dict(path, trust_pickle=True)  # the user's own training checkpoint (see docs/lcam.md)
    if 'attention.weight' in state:  # an L-CAM checkpoint: its classifier part
        state = {k[len('classifier.'):]: v for k, v in state.items() if k.startswith('classifier.')}
    ignore = getattr(classifier, 'training_only_prefixes', lambda: ())()
    own = set(classifier.state_dict())
    if not any(k in own for k in state):
        state = _timm_to_classifier(state, classifier) or state
    state = check_state_dict_fits(classifier, state, path, ignore)
    classifier.load_state_dict(state, strict=False)
