"""``ProtoPNet``: a prototype network ("This Looks Like That", Chen et al., NeurIPS 2019) in the zoo model contract.

A timm backbone, add-on 1×1 convolutions ending in a sigmoid, ``m`` prototypes per class compared with every latent
patch by squared L2 distance, the similarity ``log((d + 1) / (d + ε))`` max-pooled over the patches, and a last
layer without bias initialised with the class connections (1 to the prototype's class, −0.5 elsewhere). Training
loss: ``CE + 0.8·Clst − 0.08·Sep + 1e-4·L1`` (each coefficient a config switch). The staged schedule (warm-up,
joint, push, last layer) is :class:`~zoo.models.protopnet.training.ProtoPNetStages`.

What prototypes were pushed onto (source image index and path, box, latent cell, the source patch's pixels) is kept
in buffers, so ``save_pretrained`` / ``zoo.load`` keep it with the weights.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='ProtoPNet', num_classes=3, prototypes_per_class=2, prototype_dim=16,
    ...                           backbone=dict(type='TimmBackbone', model_name='test_resnet')))
    >>> tuple(model(torch.randn(2, 3, 32, 32)).shape), model.num_prototypes, model.prototype_class.tolist()
    ((2, 3), 6, [0, 0, 1, 1, 2, 2])
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from registry import BACKBONES, MODELS
from registry.errors import ConfigError, DataError

from ...structures import DataSample, stack_field
from ..contract import ZooModel
from ..input_stats import TimmInputMixin
from . import functional as PF

LOSS_WEIGHTS = {'cross_entropy': 1.0, 'cluster': 0.8, 'separation': -0.08, 'l1': 1e-4}
"""The paper's coefficients (``settings.py`` of the official code): CE, cluster, separation (negative: pushed up),
L1 on the last layer's wrong-class connections."""

PROTOPNET_PAPER = {
    'title': 'This Looks Like That: Deep Learning for Interpretable Image Recognition',
    'authors': 'Chaofan Chen, Oscar Li, Daniel Tao, Alina Barnett, Jonathan Su, Cynthia Rudin',
    'venue': 'NeurIPS 2019', 'arxiv': '1806.10574', 'url': 'https://arxiv.org/abs/1806.10574',
    'bibtex': '@inproceedings{chen2019looks,\n  title     = {This Looks Like That: Deep Learning for Interpretable '
              'Image Recognition},\n  author    = {Chen, Chaofan and Li, Oscar and Tao, Daniel and Barnett, Alina '
              'and Su, Jonathan and Rudin, Cynthia},\n  booktitle = {Advances in Neural Information Processing '
              'Systems (NeurIPS)},\n  year      = {2019},\n  eprint    = {1806.10574},\n  archivePrefix = {arXiv}\n}'}
EXPLAINING_PROTOTYPES_PAPER = {
    'title': 'This Looks Like That, Because ... Explaining Prototypes for Interpretable Image Recognition',
    'authors': 'Meike Nauta, Annemarie Jutte, Jesper Provoost, Christin Seifert',
    'venue': 'ECML PKDD 2021 Workshops (XKDD)', 'arxiv': '2011.02863', 'url': 'https://arxiv.org/abs/2011.02863',
    'bibtex': '@inproceedings{nauta2021looks,\n  title     = {This Looks Like That, Because ... Explaining '
              'Prototypes for Interpretable Image Recognition},\n  author    = {Nauta, Meike and Jutte, Annemarie '
              'and Provoost, Jesper and Seifert, Christin},\n  booktitle = {Machine Learning and Principles and '
              'Practice of Knowledge Discovery in Databases (ECML PKDD 2021 Workshops)},\n  year      = {2021},\n'
              '  eprint    = {2011.02863},\n  archivePrefix = {arXiv}\n}'}


def _add_on_layers(in_channels: int, dim: int, kind: str) -> nn.Sequential:
    """ProtoPNet's add-on layers: ``'regular'`` (1×1 conv, ReLU, 1×1 conv, sigmoid) or ``'bottleneck'`` (halve the
    width with conv-ReLU-conv pairs down to ``dim``, sigmoid at the end)."""
    if kind == 'regular':
        layers: list[nn.Module] = [nn.Conv2d(in_channels, dim, 1), nn.ReLU(), nn.Conv2d(dim, dim, 1), nn.Sigmoid()]
    elif kind == 'bottleneck':
        layers, current = [], in_channels
        while current > dim or not layers:
            out = max(dim, current // 2)
            layers += [nn.Conv2d(current, out, 1), nn.ReLU(), nn.Conv2d(out, out, 1),
                       nn.ReLU() if out > dim else nn.Sigmoid()]
            current //= 2
    else:
        raise ConfigError(f"ProtoPNet: add_on must be 'regular' or 'bottleneck', got {kind!r}.")
    for m in layers:
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(m.bias)
    return nn.Sequential(*layers)


@MODELS.register_module()
class ProtoPNet(TimmInputMixin, ZooModel, BaseModel):
    """Prototype network: backbone → add-on layers → prototype similarities → last layer.

    Args:
        backbone: a ``BACKBONES`` config (``TimmBackbone``); its last feature map is the latent grid.
        num_classes: number of classes.
        prototypes_per_class: ``m``; prototype ``j`` belongs to class ``j // m`` (the paper: 10, i.e. 2,000 for
            CUB's 200 classes).
        prototype_dim: channels of the latent space and of each (1×1) prototype (the paper: 128).
        add_on: ``'regular'`` (the paper's settings) or ``'bottleneck'`` (the official code's default).
        similarity: ``'log'``: ``log((d + 1) / (d + ε))`` (the paper), or ``'linear'``: ``−d``.
        epsilon: the ε of the log similarity (official code: 1e-4).
        incorrect_class_connection: initial last-layer weight from a prototype to the other classes (−0.5).
        loss_weights: override any of ``cross_entropy`` (1), ``cluster`` (0.8), ``separation`` (−0.08), ``l1``
            (1e-4); 0 switches a term off. Training only.
        source_patch_size: side of the stored pixels of each prototype's source patch (the push box, resized);
            0 stores none.
        source_path_bytes: bytes kept of each source image's path (UTF-8, relative to the dataset root when
            possible); 0 stores none.
        box_percentile: the push box encloses the source image's pixels whose upsampled similarity is at or above
            this percentile (ProtoPNet draws prototypes this way: 95).
        data_preprocessor: config (``MODELS``); mean/std default to the backbone's timm config.
        class_names: the classes, in label order.
    """

    component_args = {'backbone': 'BACKBONES', 'data_preprocessor': 'MODELS'}
    training_only = ('loss_weights',)
    native_explanation = 'prototypes'

    def __init__(self, backbone: dict, num_classes: int, prototypes_per_class: int = 10, prototype_dim: int = 128,
                 add_on: str = 'regular', similarity: str = 'log', epsilon: float = 1e-4,
                 incorrect_class_connection: float = -0.5, loss_weights: dict | None = None,
                 source_patch_size: int = 48, source_path_bytes: int = 256, box_percentile: float = 95.0,
                 data_preprocessor: dict | None = None, class_names: Sequence[str] | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value, low in (('num_classes', num_classes, 1), ('prototypes_per_class', prototypes_per_class, 1),
                                 ('prototype_dim', prototype_dim, 1), ('source_patch_size', source_patch_size, 0),
                                 ('source_path_bytes', source_path_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f'ProtoPNet: {name} must be an integer >= {low}, got {value!r}.')
        if similarity not in PF.SIMILARITIES:
            raise ConfigError(f'ProtoPNet: similarity must be one of {PF.SIMILARITIES}, got {similarity!r}.')
        if not 0 < float(epsilon) < 1:
            raise ConfigError(f'ProtoPNet: epsilon must be in (0, 1), got {epsilon!r}.')
        if not 0 <= float(box_percentile) <= 100:
            raise ConfigError(f'ProtoPNet: box_percentile must be in [0, 100], got {box_percentile!r}.')
        unknown = sorted(set(loss_weights or {}) - set(LOSS_WEIGHTS))
        if unknown:
            raise ConfigError(f'ProtoPNet: loss_weights has unknown term {unknown[0]!r}; the terms are '
                              f'{", ".join(LOSS_WEIGHTS)}.')
        self.loss_weights = {**LOSS_WEIGHTS, **{k: float(v) for k, v in (loss_weights or {}).items()}}
        self.similarity, self.epsilon, self.box_percentile = similarity, float(epsilon), float(box_percentile)
        self.backbone = BACKBONES.build(backbone) if isinstance(backbone, Mapping) else backbone
        pre_cfg = dict(type='ClsDataPreprocessor') if data_preprocessor is None else dict(data_preprocessor)
        self.data_preprocessor = MODELS.build(pre_cfg)
        if not getattr(self.data_preprocessor, 'mean_std_set', True):
            cfg = getattr(self.backbone, 'pretrained_cfg', {})
            self.data_preprocessor.set_mean_std([255 * m for m in cfg.get('mean', (0.485, 0.456, 0.406))],
                                                [255 * s for s in cfg.get('std', (0.229, 0.224, 0.225))])
        self.add_on = _add_on_layers(int(self.backbone.feature_channels), prototype_dim, add_on)
        num = num_classes * prototypes_per_class
        self.prototype_vectors = nn.Parameter(torch.rand(num, prototype_dim))  # features are in [0, 1]
        self.register_buffer('prototype_class', torch.arange(num) // prototypes_per_class)
        self.last_layer = nn.Linear(num, num_classes, bias=False)
        with torch.no_grad():
            self.last_layer.weight.copy_(PF.class_connection_weights(self.prototype_class, num_classes,
                                                                     incorrect_class_connection))
        # push records (-1: not pushed yet)
        self.register_buffer('push_count', torch.zeros((), dtype=torch.long))
        self.register_buffer('push_index', torch.full((num,), -1, dtype=torch.long))
        self.register_buffer('push_box', torch.full((num, 4), -1, dtype=torch.long))
        self.register_buffer('push_location', torch.full((num, 2), -1, dtype=torch.long))
        if source_patch_size:
            self.register_buffer('push_patch', torch.zeros(num, 3, source_patch_size, source_patch_size,
                                                           dtype=torch.uint8))
        if source_path_bytes:
            self.register_buffer('push_path', torch.zeros(num, source_path_bytes, dtype=torch.uint8))
        if class_names is not None:
            self.class_names = list(class_names)

    # --- metadata ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return int(self.last_layer.out_features)

    @property
    def num_prototypes(self) -> int:
        return int(self.prototype_vectors.shape[0])

    @property
    def prototype_weights(self) -> Tensor:
        """The last layer's weight ``[num_classes, num_prototypes]`` (what a class owes each prototype)."""
        return self.last_layer.weight

    @property
    def explain_meta(self) -> dict[str, Any]:
        """Grad-CAM & co. target the backbone's last layer, as for ``ImageClassifier`` (comparable maps)."""
        bb = self.backbone
        return {'target_layer': 'backbone.' + bb.default_target_layer, 'patch_size': getattr(bb, 'patch_size', None),
                'num_prefix_tokens': getattr(bb, 'num_prefix_tokens', 0),
                'output_fmt': getattr(bb, 'output_fmt', 'NCHW'), 'class_names': self.class_names}

    @classmethod
    def method_info(cls, model_cfg: Any) -> dict[str, Any]:
        return {'method': 'protopnet', 'tags': ['protopnet', 'prototypes', 'this-looks-like-that',
                                                'explaining-prototypes'],
                'paper': dict(PROTOPNET_PAPER), 'explanation_paper': dict(EXPLAINING_PROTOTYPES_PAPER)}

    # --- the network --------------------------------------------------------------------------------------------
    def features(self, inputs: Tensor) -> Tensor:
        """The latent grid ``[B, D, H, W]`` (add-on output, in [0, 1])."""
        return self.add_on(self.backbone(inputs).feature_map)

    def distances(self, features: Tensor) -> Tensor:
        """Squared L2 distance of every prototype to every latent patch, ``[B, P, H, W]``."""
        return PF.l2_distances(features, self.prototype_vectors.to(features.dtype))

    def similarity_of(self, distances: Tensor) -> Tensor:
        """The configured distance → similarity function."""
        return PF.log_similarity(distances, self.epsilon, self.similarity)

    def prototype_maps(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits [B, C], similarity maps [B, P, H, W])`` for normalised images: the prototype-network protocol
        that :class:`zoo.explainers.PrototypeSimilarity` reads (with :attr:`prototype_weights`)."""
        sims = self.similarity_of(self.distances(self.features(inputs)))
        return self.last_layer(sims.flatten(2).amax(-1)), sims

    def prototype_saliency(self, inputs: Tensor, targets: Any = None, reduction: str = 'weighted'
                           ) -> tuple[Tensor, Tensor]:
        """``(maps [B, H, W] at the latent resolution, logits [B, C])``: where the image looks like the prototypes
        of the target class (``None``: the predicted one). What :class:`zoo.explainers.PrototypeSimilarity` reads.

        ``reduction='weighted'``: ``Σ_p max(w_cp, 0) · sim_p(h, w)``, every prototype's similarity map weighted by
        its positive last-layer connection to the class (the class logit is the same sum of max-pooled
        similarities); ``'top'``: the similarity map of the one prototype that adds most to the logit
        (``w_cp · max sim_p``), as ProtoPNet's own figures show it.
        """
        from zoo.ops.tensors import targets_or_predicted

        logits, sims = self.prototype_maps(inputs)
        t = targets_or_predicted(targets, logits)
        weights = self.prototype_weights[t].to(sims.dtype)                      # [B, P]
        if reduction == 'weighted':
            maps = torch.einsum('bp,bphw->bhw', weights.clamp_min(0), sims)
        elif reduction == 'top':
            best = (weights * sims.flatten(2).amax(-1)).argmax(1)
            maps = sims[torch.arange(len(t), device=sims.device), best]
        else:
            raise ConfigError(f"reduction must be 'weighted' or 'top', got {reduction!r}.")
        return maps, logits

    def _outputs(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits, min_distances [B, P])``: global min-pooling of the distances, then similarity (as the paper;
        equal to max-pooling the similarity, which decreases with the distance)."""
        min_d = self.distances(self.features(inputs)).flatten(2).amin(-1)
        return self.last_layer(self.similarity_of(min_d)), min_d

    def forward(self, inputs: Tensor, data_samples: list[DataSample] | None = None, mode: str = 'tensor') -> Any:
        if mode == 'tensor':
            return self._outputs(inputs)[0]
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    def loss(self, inputs: Tensor, data_samples: list[DataSample]) -> dict[str, Tensor]:
        """``loss_ce``, ``loss_cluster``, ``loss_separation``, ``loss_l1`` (weighted; mmengine sums every ``loss*``
        key) and the unweighted ``cluster``/``separation`` distances for the log."""
        labels = stack_field(data_samples or [], 'gt_label')
        if labels is None:
            raise DataError('Training needs gt_label in every data sample.')
        labels = labels.to(inputs.device).view(-1)
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ConfigError(f'Label {int(labels.max())} is out of range for a ProtoPNet with {self.num_classes} '
                              'classes: the dataset and model.num_classes disagree.')
        logits, min_d = self._outputs(inputs)
        w = self.loss_weights
        clst = PF.cluster_cost(min_d, labels, self.prototype_class)
        sep = PF.separation_cost(min_d, labels, self.prototype_class)
        out = {'loss_ce': w['cross_entropy'] * F.cross_entropy(logits, labels),
               'loss_cluster': w['cluster'] * clst, 'loss_separation': w['separation'] * sep,
               'loss_l1': w['l1'] * PF.wrong_class_l1(self.last_layer.weight, self.prototype_class),
               'cluster': clst.detach(), 'separation': sep.detach()}
        return out

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list[DataSample] | None = None) -> list[DataSample]:
        scores = self._outputs(inputs)[0].softmax(-1)
        samples = data_samples if data_samples is not None else [DataSample() for _ in range(len(scores))]
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score)
        return samples

    # --- push records ------------------------------------------------------------------------------------------
    @property
    def is_pushed(self) -> bool:
        """Whether every prototype has been projected onto a training patch (a push stage ran)."""
        return bool((self.push_index >= 0).all())

    def prototype_sources(self) -> list[dict[str, Any]]:
        """One dict per prototype: ``prototype``, ``class`` (index), ``class_name``, and after a push ``index``
        (of the source image in the push dataset), ``path``, ``box`` (x1, y1, x2, y2 in input pixels, end
        exclusive) and ``location`` (latent row, column); ``None`` where unknown."""
        names = self.class_names
        paths = self.decoded_push_paths()
        out = []
        for p in range(self.num_prototypes):
            c = int(self.prototype_class[p])
            pushed = int(self.push_index[p]) >= 0
            out.append({'prototype': p, 'class': c, 'class_name': names[c] if names else None,
                        'index': int(self.push_index[p]) if pushed else None,
                        'path': (paths[p] or None) if pushed else None,
                        'box': self.push_box[p].tolist() if pushed else None,
                        'location': self.push_location[p].tolist() if pushed else None})
        return out

    def decoded_push_paths(self) -> list[str]:
        if not hasattr(self, 'push_path'):
            return [''] * self.num_prototypes
        rows = self.push_path.cpu().numpy()
        return [bytes(r).rstrip(b'\0').decode('utf-8', errors='ignore') for r in rows]

    def encode_path(self, path: str | None) -> Tensor | None:
        """``path`` as the zero-padded UTF-8 row of ``push_path`` (truncated at a character boundary)."""
        if not hasattr(self, 'push_path'):
            return None
        size = self.push_path.shape[1]
        raw = (path or '').encode('utf-8')[:size].decode('utf-8', errors='ignore').encode('utf-8')
        row = torch.zeros(size, dtype=torch.uint8)
        if raw:
            row[:len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        return row

    # --- the family's own explanation ---------------------------------------------------------------------------
    def explain_native(self, images: Any, targets: Any = None, top_classes: int = 2, top_prototypes: int = 3,
                       **kwargs: Any) -> Any:
        """"This looks like that" for each image: for the top classes (or ``targets``), the prototypes that add
        most to the class logit, with their upsampled similarity maps, the image patch each matched and the source
        patch the prototype was pushed to. Returns a :class:`~zoo.models.protopnet.explanation.PrototypeExplanation`
        (``maps``: the class evidence map of the first class, as ``PrototypeSimilarity`` computes it)."""
        from .explanation import explain_prototypes_native

        if kwargs:
            raise ConfigError(f"ProtoPNet.explain(method='native') got unknown option(s) {sorted(kwargs)}; it takes "
                              'targets, top_classes and top_prototypes.')
        return explain_prototypes_native(self, images, self.resolve_targets(targets), top_classes, top_prototypes)
