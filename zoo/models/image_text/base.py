"""``ImageTextClassifier``: what the zero-shot and descriptor classifiers share (the zoo model contract on an
:class:`~zoo.models.image_text.ImageTextModel`).

- **Text embeddings are computed once.** A family embeds its texts (class prompts, descriptor sentences) into the
  persistent buffer ``text_embeddings`` and their sha256 into ``text_key``; both are saved with checkpoints and
  exports. A forward pass re-embeds only when the texts it needs differ from the key (class names, templates or
  descriptors changed) or the text tower was trained since (``loss`` with a trainable text tower clears the key).
  So the second prediction — and the first after ``zoo.load`` — runs no text forward pass.
- **Contrastive training** (``mode='loss'``; the training-only ``contrastive`` settings): each image is paired
  with a caption of its class drawn from :class:`~zoo.models.image_text.prompts.CaptionSet`; the loss is CLIP's
  symmetric cross-entropy over the batch, with every caption of the image's class counted as a positive
  (``positives='class'``, default: a batch holds many images of one class) or only its own caption
  (``positives='pair'``, CLIP's). With a locked text tower (LiT-style) the caption embeddings are computed once per
  run, so a step costs one image-tower forward and backward.
- ``logits = logit_scale · cos(image, class text) (+ logit_bias)``: ``forward(mode='tensor')`` returns them, so
  every saliency explainer works on the image tower (``explain_meta['target_layer']``).
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

from registry import MODELS
from registry.errors import ConfigError

from ...structures import DataSample, stack_field
from ..contract import Preprocessing, ZooModel
from .model import ImageTextModel
from .prompts import CaptionSet, texts_digest

KEY_BYTES = 32
POSITIVES = ('class', 'pair')

CLIP_PAPER = {
    'title': 'Learning Transferable Visual Models From Natural Language Supervision',
    'authors': 'Alec Radford et al.', 'venue': 'ICML 2021', 'arxiv': '2103.00020',
    'url': 'https://arxiv.org/abs/2103.00020',
    'bibtex': '@inproceedings{radford2021clip,\n  title     = {Learning Transferable Visual Models From Natural '
              'Language Supervision},\n  author    = {Radford, Alec and Kim, Jong Wook and Hallacy, Chris and '
              'Ramesh, Aditya and Goh, Gabriel and Agarwal, Sandhini and Sastry, Girish and Askell, Amanda and '
              'Mishkin, Pamela and Clark, Jack and Krueger, Gretchen and Sutskever, Ilya},\n  booktitle = '
              '{Proceedings of the 38th International Conference on Machine Learning (ICML)},\n  pages     = '
              '{8748--8763},\n  year      = {2021},\n  eprint    = {2103.00020},\n  archivePrefix = {arXiv}\n}'}
LIT_PAPER = {
    'title': 'LiT: Zero-Shot Transfer with Locked-image text Tuning', 'authors': 'Xiaohua Zhai et al.',
    'venue': 'CVPR 2022', 'arxiv': '2111.07991', 'url': 'https://arxiv.org/abs/2111.07991',
    'bibtex': '@inproceedings{zhai2022lit,\n  title     = {{LiT}: Zero-Shot Transfer with Locked-image text '
              'Tuning},\n  author    = {Zhai, Xiaohua and Wang, Xiao and Mustafa, Basil and Steiner, Andreas and '
              'Keysers, Daniel and Kolesnikov, Alexander and Beyer, Lucas},\n  booktitle = {Proceedings of the '
              'IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},\n  year      = {2022},\n'
              '  eprint    = {2111.07991},\n  archivePrefix = {arXiv}\n}'}


def _check_contrastive(contrastive: Mapping[str, Any] | None) -> tuple[CaptionSet | None, str, float]:
    if contrastive is None:
        return None, 'class', 1.0
    if not isinstance(contrastive, Mapping):
        raise ConfigError('contrastive must be a dict, e.g. dict(captions=dict(templates=...), positives="class").')
    unknown = sorted(set(contrastive) - {'captions', 'positives', 'loss_weight'})
    if unknown:
        raise ConfigError(f'contrastive has unknown key {unknown[0]!r}; known: captions, positives, loss_weight.')
    captions = contrastive.get('captions') or {}
    if not isinstance(captions, Mapping):
        raise ConfigError('contrastive.captions must be a dict of CaptionSet settings (templates, descriptors, ...).')
    positives = contrastive.get('positives', 'class')
    if positives not in POSITIVES:
        raise ConfigError(f'contrastive.positives must be one of {POSITIVES}, got {positives!r}.')
    try:
        caption_set = CaptionSet(**captions)
    except TypeError as exc:
        raise ConfigError(f'contrastive.captions: {exc}') from None
    return caption_set, positives, float(contrastive.get('loss_weight', 1.0))


class ImageTextClassifier(ZooModel, BaseModel):
    """Base class of classifiers on an :class:`ImageTextModel` (see the module docstring).

    Args:
        image_text: config of an ``ImageTextModel`` (or the module itself, e.g. another classifier's).
        num_classes, class_names: the classes; names may come later from the dataset (``ClassNamesHook``).
        data_preprocessor: ``ClsDataPreprocessor`` config; mean/std default to the image tower's preprocessing.
        contrastive: training-only settings of ``mode='loss'``: ``captions`` (a :class:`CaptionSet` dict),
            ``positives`` (``'class'`` or ``'pair'``), ``loss_weight``.
        text_batch_size: texts per text-tower forward when (re)computing embeddings.
        init_cfg: mmengine weight-init config.

    Subclasses implement :meth:`texts` (what ``text_embeddings`` holds, row by row), :meth:`_text_rows`
    (how many rows, known at construction), :meth:`_reduce_text` and :meth:`class_scores`.
    """

    training_only = ('contrastive',)
    component_args = {'image_text': 'MODELS', 'data_preprocessor': 'MODELS'}

    def __init__(self, image_text: dict | nn.Module, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None, data_preprocessor: dict | None = None,
                 contrastive: dict | None = None, text_batch_size: int = 256, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.image_text = MODELS.build(image_text) if isinstance(image_text, Mapping) else image_text
        if not isinstance(self.image_text, ImageTextModel):
            raise ConfigError(f'image_text must be an ImageTextModel (config or module), got '
                              f'{type(self.image_text).__name__}.')
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if num_classes is not None and num_classes != len(class_names):
                raise ConfigError(f'num_classes={num_classes} but {len(class_names)} class names were given.')
            num_classes = len(class_names)
        if num_classes is None or isinstance(num_classes, bool) or int(num_classes) < 1:
            raise ConfigError(f'{type(self).__name__} needs class_names (or num_classes, with the names set later '
                              f'from the dataset), got num_classes={num_classes!r}.')
        self._num_classes = int(num_classes)
        pre = dict(data_preprocessor or {'type': 'ClsDataPreprocessor'})
        if pre.get('type', 'ClsDataPreprocessor') == 'ClsDataPreprocessor' and pre.get('mean') is None:
            p = self.image_text.preprocessing
            pre.update(type='ClsDataPreprocessor', mean=p.mean_255, std=p.std_255)
        self.data_preprocessor = MODELS.build(pre)
        self._captions, self.positives, self.loss_weight = _check_contrastive(contrastive)
        self.text_batch_size = int(text_batch_size)
        self.register_buffer('text_embeddings', torch.zeros(self._text_rows(), self.image_text.embed_dim))
        self.register_buffer('text_key', torch.zeros(KEY_BYTES, dtype=torch.uint8))
        self._valid_key: bytes | None = None
        self._key_memo: tuple[Any, bytes] | None = None
        self._caption_cache: tuple[Any, list[str], Tensor, Tensor, Tensor | None] | None = None
        if class_names is not None:
            self.class_names = class_names

    # --- what subclasses define -------------------------------------------------------------------------------
    def _text_rows(self) -> int:
        """Rows of ``text_embeddings`` (fixed at construction, so exports know the buffer's shape)."""
        raise NotImplementedError

    def texts(self) -> list[str]:
        """The texts to embed, in the order :meth:`_reduce_text` expects."""
        raise NotImplementedError

    def _reduce_text(self, embeddings: Tensor) -> Tensor:
        """Text-tower embeddings of :meth:`texts` → the ``text_embeddings`` rows."""
        return embeddings

    def class_scores(self, image_embeddings: Tensor) -> Tensor:
        """``[B, K]`` scores (cosines) of L2-normalised image embeddings ``[B, D]``."""
        raise NotImplementedError

    # --- metadata ---------------------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self._num_classes

    def on_class_names(self, names: list[str]) -> None:
        self._key_memo = None
        self._caption_cache = None

    @property
    def explain_meta(self) -> dict[str, Any]:
        it = self.image_text
        return {'target_layer': 'image_text.' + it.default_target_layer, 'patch_size': it.patch_size,
                'num_prefix_tokens': it.num_prefix_tokens, 'output_fmt': 'NCHW', 'class_names': self.class_names}

    def default_preprocessing(self) -> Preprocessing:
        """open_clip's transform of the image tower, with the data preprocessor's mean/std."""
        import dataclasses

        pre = self.data_preprocessor
        return dataclasses.replace(self.image_text.preprocessing,
                                   mean=tuple(float(m) / 255 for m in pre.mean.flatten().tolist()),
                                   std=tuple(float(s) / 255 for s in pre.std.flatten().tolist()))

    @classmethod
    def inference_args(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """As the contract's, with the image-text model's tag settings (QuickGELU, mean/std) kept offline."""
        args = dict(args)
        if isinstance(args.get('image_text'), Mapping):
            args['image_text'] = ImageTextModel.offline_args(args['image_text'])
        return super().inference_args(args)

    def inference_config(self) -> dict[str, Any]:
        """The export's architecture: the image-text model rebuilt offline from names, class count and mean/std
        written out (every weight, the cached text embeddings included, comes from ``model.safetensors``)."""
        cfg = super().inference_config()
        cfg['image_text'] = self.image_text.export_config()
        cfg['num_classes'] = self.num_classes
        pre = dict(cfg.get('data_preprocessor') or {'type': 'ClsDataPreprocessor'})
        pre.update(mean=[float(v) for v in self.data_preprocessor.mean.flatten()],
                   std=[float(v) for v in self.data_preprocessor.std.flatten()])
        cfg['data_preprocessor'] = pre
        return cfg

    # --- image-text interface for explainers (which never import zoo.models) ----------------------------------
    def encode_image(self, images: Tensor, normalize: bool = True) -> Tensor:
        return self.image_text.encode_image(images, normalize=normalize)

    def encode_text(self, texts: Any, normalize: bool = True) -> Tensor:
        return self.image_text.encode_text(texts, normalize=normalize, batch_size=self.text_batch_size)

    @property
    def logit_scale(self) -> Tensor:
        return self.image_text.logit_scale

    # --- the text-embedding cache -----------------------------------------------------------------------------
    def _text_source(self) -> Any:
        """A cheap, hashable identity of what :meth:`texts` returns (default: the texts themselves)."""
        return tuple(self.texts())

    def text_digest(self) -> bytes:
        """sha256 of :meth:`texts` and the text tower's identity (memoised while :meth:`_text_source` is equal)."""
        source = self._text_source()
        memo = self._key_memo
        if memo is None or memo[0] != source:
            it = self.image_text
            ident = (type(self).__name__, it.model_name, it.model_cfg.get('text_cfg'), it.embed_dim)
            memo = self._key_memo = (source, texts_digest(self.texts(), *ident))
        return memo[1]

    @property
    def text_cache_valid(self) -> bool:
        return self._valid_key is not None and self._valid_key == self.text_digest()

    def refresh_text_embeddings(self) -> None:
        """Embed :meth:`texts` now (text tower in eval mode, no gradient) into ``text_embeddings``."""
        from zoo.ops.modules import model_state

        key = self.text_digest()
        with torch.no_grad(), model_state(self.image_text, eval_mode=True, freeze=False):
            emb = self.image_text.encode_text(self.texts(), normalize=True, batch_size=self.text_batch_size)
            self.text_embeddings.copy_(self._reduce_text(emb.to(self.text_embeddings.dtype)))
        self.text_key.copy_(torch.tensor(list(key), dtype=torch.uint8))
        self._valid_key = key

    def invalidate_text_embeddings(self) -> None:
        """Mark the cached embeddings stale (e.g. after changing text-tower weights by hand)."""
        self.text_key.zero_()
        self._valid_key = None

    def class_text_embeddings(self) -> Tensor:
        """``text_embeddings``, (re)computed first when stale."""
        if not self.text_cache_valid:
            self.refresh_text_embeddings()
        return self.text_embeddings

    def inference_state_dict(self) -> dict[str, Tensor]:
        """The contract's inference weights, with ``text_embeddings`` brought up to date first (an export carries
        valid embeddings, so a loaded model runs no text forward pass)."""
        if self.class_names is not None and not self.text_cache_valid:
            self.refresh_text_embeddings()
        return super().inference_state_dict()

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + 'text_key' in state_dict:  # loaded embeddings are valid for the texts they were made from
            self._valid_key = bytes(self.text_key.detach().cpu().tolist())

    # --- mmengine protocol ------------------------------------------------------------------------------------
    def logits(self, inputs: Tensor) -> Tensor:
        scores = self.class_scores(self.image_text.encode_image(inputs, normalize=True))
        out = self.logit_scale * scores
        bias = self.image_text.logit_bias
        return out if bias is None else out + bias

    def forward(self, inputs: Tensor, data_samples: list[DataSample] | None = None, mode: str = 'tensor') -> Any:
        if mode == 'tensor':
            return self.logits(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list[DataSample] | None = None) -> list[DataSample]:
        scores = self.logits(inputs).float().softmax(-1)
        samples = data_samples if data_samples is not None else [DataSample() for _ in range(len(scores))]
        for sample, score in zip(samples, scores):
            sample.set_pred_score(score)
        return samples

    # --- contrastive training ---------------------------------------------------------------------------------
    def _caption_pool(self) -> tuple[list[str], Tensor, Tensor]:
        """All captions, each caption's class, and the offset of each class's first caption."""
        if self.class_names is None:
            raise ConfigError(f'{type(self).__name__} has no class names to caption: set class_names, or train with '
                              "ClassNamesHook (it takes them from the dataset's metainfo['classes']).")
        per_class = self._captions.for_classes(self.class_names)
        texts = [t for caps in per_class for t in caps]
        owner = torch.tensor([c for c, caps in enumerate(per_class) for _ in caps])
        counts = torch.tensor([len(caps) for caps in per_class])
        return texts, owner, counts

    def caption_embeddings(self) -> tuple[list[str], Tensor, Tensor, Tensor | None]:
        """``(captions, class of each, count per class, embeddings or None)``: embeddings are computed once while
        the text tower is locked, else per step by :meth:`loss`."""
        key = (tuple(self.class_names or ()), self.image_text.text_trainable)
        cache = self._caption_cache
        if cache is None or cache[0] != key:
            texts, owner, counts = self._caption_pool()
            emb = None
            if not self.image_text.text_trainable:
                from zoo.ops.modules import model_state

                with torch.no_grad(), model_state(self.image_text, eval_mode=True, freeze=False):
                    emb = self.image_text.encode_text(texts, normalize=True, batch_size=self.text_batch_size)
            cache = self._caption_cache = (key, texts, owner, counts, emb)
        return cache[1], cache[2], cache[3], cache[4]

    def loss(self, inputs: Tensor, data_samples: list[DataSample]) -> dict[str, Tensor]:
        if self._captions is None:
            raise ConfigError(f'{type(self).__name__} was built without contrastive settings, so it cannot train: '
                              'set model.contrastive=dict(captions=dict(templates=...)) (see docs/image_text.md), or '
                              'evaluate it directly with tools/test.py CONFIG none.')
        labels = stack_field(data_samples, 'gt_label')
        if labels is None:
            raise ConfigError('Contrastive training needs gt_label in every data sample.')
        labels = labels.to(inputs.device).long()
        if int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ConfigError(f'Label {int(labels.max())} is out of range for {self.num_classes} classes.')
        texts, _, counts, emb = self.caption_embeddings()
        starts = torch.cumsum(counts, 0) - counts
        lab = labels.cpu()
        pick = starts[lab] + (torch.rand(len(lab)) * counts[lab]).long().clamp(max=counts[lab] - 1)
        image = self.image_text.encode_image(inputs, normalize=True)
        if emb is None:
            text = self.image_text.encode_text([texts[i] for i in pick.tolist()], normalize=True)
            self.invalidate_text_embeddings()  # the text tower is trained: cached class embeddings go stale
        else:
            text = emb[pick.to(emb.device)].to(image.device)
        logits = self.logit_scale * image @ text.to(image.dtype).T
        bias = self.image_text.logit_bias
        if bias is not None:
            logits = logits + bias
        pos = (labels[:, None] == labels[None, :]) if self.positives == 'class' else torch.eye(
            len(labels), dtype=torch.bool, device=labels.device)
        target = pos.float() / pos.sum(1, keepdim=True)
        loss_i = -(target * F.log_softmax(logits, 1)).sum(1).mean()
        loss_t = -(target.T * F.log_softmax(logits.T, 1)).sum(1).mean()
        return {'loss_contrastive': self.loss_weight * 0.5 * (loss_i + loss_t),
                'logit_scale': self.logit_scale.detach()}

    @classmethod
    def _training_method(cls, model_cfg: Mapping[str, Any]) -> dict[str, Any] | None:
        """``lit``/``clip`` when the config trains contrastively, else ``None``."""
        if not model_cfg.get('contrastive'):
            return None
        it = model_cfg.get('image_text') if isinstance(model_cfg.get('image_text'), Mapping) else {}
        if it.get('lock_text'):
            return {'method': 'lit-locked-text', 'tags': ['image-text', 'contrastive', 'lit', 'zero-shot'],
                    'paper': copy.deepcopy(LIT_PAPER),
                    'note': 'LiT locks the image tower; here the pretrained text tower is the locked one.'}
        return {'method': 'clip-contrastive', 'tags': ['image-text', 'contrastive', 'zero-shot'],
                'paper': copy.deepcopy(CLIP_PAPER)}
