"""``ECOR``: explainable object recognition as a joint distribution of category and rationales (Rasekh et al., 2024).

ECOR explains a prediction by the joint distribution of a category ``c`` and rationales ``R`` given the image,
factorised as ``P(c, R | I) = P(R | I) · P(c | R, I)``, and learns two prompt contexts on a frozen image-text model:

- **Prompt_R** (``rationale_prompt``, one context shared by every rationale, class-agnostic)::

      P(r | I) = softmax_r( s · cos(f(I), g(Prompt_R ⊕ r)) )          over the rationale vocabulary (N)

- **Prompt_{c|R}** (``category_prompt``), the category conditioned on rationales::

      P(c | R, I) = softmax_c( s · cos(f(I), g(Prompt_{c|R} ⊕ "c, which R")) )     over the categories (K)

  ``s`` is the image-text model's logit scale (``1/T``) unless ``logit_scale`` is given.

What ``R`` is (``condition``; the paper leaves it open):

- ``'rationale'`` (default): ``R`` is one rationale ``r``; the joint ``P(c, r | I)`` is a ``[N, K]`` table that sums
  to 1. The category is ``P(c | I) = Σ_{r ∈ top-k} P(r | I) P(c | r, I) / Σ_{r ∈ top-k} P(r | I)`` — marginalising over
  the ``top_k`` most probable rationales (``top_k=None``: all of them, the exact marginal of the joint). Training
  conditions on one right rationale per image, drawn at random from its set.
- ``'set'``: ``R`` is a set: the ``top_k`` most probable rationales at inference (one prompt ``"c, which r1, r2 and
  r3"``), the image's right rationales in training.
- ``'none'``: the category ignores ``R`` (``Prompt ⊕ c``): the baselines (``category_prompt=None``: zero-shot class
  names; a prompt learner: a single CoOp prompt without rationales).

Loss: ``loss_rationale`` = cross-entropy of ``P(r | I)`` against the image's right rationales (uniform over them) and
``loss_category`` = cross-entropy of ``P(c | R_gt, I)``. The image and text towers are frozen by default
(``train_image_tower``/``train_text_tower``); gradients reach the contexts through the frozen text tower.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> tiny = dict(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
    ...             text_cfg=dict(context_length=32, width=32, heads=2, layers=1))
    >>> model = MODELS.build(dict(type='ECOR', image_text=dict(type='ImageTextModel', model_cfg=tiny),
    ...                           rationales={'cat': ['has whiskers', 'has fur'], 'fish': ['has fins']}))
    >>> joint = model.joint(model.encode_image(torch.randn(2, 3, 32, 32)))     # P(c, r | I): [B, N, K]
    >>> joint.shape, torch.allclose(joint.sum((1, 2)), torch.ones(2))
    (torch.Size([2, 3, 2]), True)
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from registry import MODELS, TEXT_ENCODERS
from registry.errors import ConfigError, shorten

from .base import CLIP_PAPER, ImageTextClassifier
from .ecor_explanation import RationaleExplanation, explain_rationales
from .prompts import wordify
from .rationales import RationaleVocabulary, check_template, join_rationales, load_rationales, rationale_targets

CONDITIONS = ('rationale', 'set', 'none')
DEFAULT_PROMPT = {'type': 'SharedPromptLearner', 'n_ctx': 4}
"""The default of both contexts: CoOp's unified context, 4 vectors."""
ECOR_PAPER = {
    'title': 'ECOR: Explainable CLIP for Object Recognition',
    'authors': 'Ali Rasekh, Sepehr Kazemi Ranjbar, Milad Heidari and Wolfgang Nejdl', 'venue': 'arXiv 2024',
    'arxiv': '2404.12839', 'url': 'https://arxiv.org/abs/2404.12839',
    'bibtex': '@article{rasekh2024ecor,\n  title   = {{ECOR}: Explainable {CLIP} for Object Recognition},\n  author  = '
              '{Rasekh, Ali and Kazemi Ranjbar, Sepehr and Heidari, Milad and Nejdl, Wolfgang},\n  journal = {arXiv '
              'preprint arXiv:2404.12839},\n  year    = {2024}\n}'}
COOP_PAPER = {
    'title': 'Learning to Prompt for Vision-Language Models',
    'authors': 'Kaiyang Zhou, Jingkang Yang, Chen Change Loy and Ziwei Liu', 'venue': 'IJCV 2022',
    'arxiv': '2109.01134', 'url': 'https://arxiv.org/abs/2109.01134',
    'bibtex': '@article{zhou2022coop,\n  title   = {Learning to Prompt for Vision-Language Models},\n  author  = '
              '{Zhou, Kaiyang and Yang, Jingkang and Loy, Chen Change and Liu, Ziwei},\n  journal = {International '
              'Journal of Computer Vision},\n  year    = {2022}\n}'}


@MODELS.register_module()
class ECOR(ImageTextClassifier):
    """ECOR on an image-text model (see the module docstring and docs/ecor.md).

    Args:
        image_text: config of an ``ImageTextModel`` (or the module).
        rationales: ``{"class": ["rationale", ...]}`` or a set shipped with xzoo (``'fashion_mnist'``);
            ``rationale_file``: a JSON file of that layout instead (an export stores the rationales themselves).
        num_classes, class_names: the classes (default: the rationale table's, in its order).
        rationale_prompt: prompt learner of Prompt_R (``TEXT_ENCODERS``; default ``dict(type='SharedPromptLearner',
            n_ctx=4)``), or ``None``: the rationale text alone (zero-shot).
        category_prompt: prompt learner of Prompt_{c|R} (same default), or ``None`` (zero-shot). Class-specific
            learners are refused.
        condition: ``'rationale'``, ``'set'`` or ``'none'`` (module docstring).
        top_k: rationales kept at inference (marginalised over, or the conditioning set); ``None``: all.
        rationale_template: text of a rationale (field ``{r}``); category_template: fields ``{c}`` and ``{r}``
            (``'{c} because there is {r}'`` suits DROR's noun phrases); class_template: field ``{c}`` (``'none'``).
        logit_scale: a fixed ``1/T``; ``None`` uses the image-text model's.
        train_image_tower, train_text_tower: unfreeze a tower (default: both frozen, kept in eval mode).
        loss_weights: ``dict(rationale=1.0, category=1.0)``.
        max_conditions: in training (``'rationale'``), condition on at most this many distinct rationales per step
            (images whose right rationales are all outside the drawn ones skip the category term); ``None``: all.
        data_preprocessor, text_batch_size, init_cfg: see :class:`ImageTextClassifier`.
    """

    native_explanation = 'rationales'
    training_only = ('loss_weights', 'max_conditions')
    component_args = {'image_text': 'MODELS', 'data_preprocessor': 'MODELS', 'rationale_prompt': 'TEXT_ENCODERS',
                      'category_prompt': 'TEXT_ENCODERS'}

    def __init__(self, image_text: dict | nn.Module, rationales: str | dict | None = None,
                 rationale_file: str | None = None, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None, rationale_prompt: dict | None = DEFAULT_PROMPT,
                 category_prompt: dict | None = DEFAULT_PROMPT, condition: str = 'rationale', top_k: int | None = 3,
                 rationale_template: str = '{r}', category_template: str = '{c}, which {r}',
                 class_template: str = '{c}', logit_scale: float | None = None, train_image_tower: bool = False,
                 train_text_tower: bool = False, loss_weights: dict | None = None, max_conditions: int | None = None,
                 data_preprocessor: dict | None = None, text_batch_size: int = 256,
                 init_cfg: dict | None = None) -> None:
        self.table = load_rationales(rationales, rationale_file)
        source = f'rationale file {rationale_file!r}' if rationale_file else (
            f'rationale set {rationales!r}' if isinstance(rationales, str) else 'the rationale table')
        self.vocab = RationaleVocabulary.from_table(self.table, source)
        if condition not in CONDITIONS:
            raise ConfigError(f'condition must be one of {CONDITIONS}, got {shorten(repr(condition))}.')
        if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 1):
            raise ConfigError(f'top_k must be a positive int or None (all rationales), got {top_k!r}.')
        self.condition = condition
        self.top_k = None if top_k is None else min(int(top_k), len(self.vocab))
        self.rationale_template = check_template(rationale_template, {'r'}, 'rationale_template')
        self.category_template = check_template(category_template, {'c', 'r'}, 'category_template')
        self.class_template = check_template(class_template, {'c'}, 'class_template')
        weights = {'rationale': 1.0, 'category': 1.0, **dict(loss_weights or {})}
        if set(weights) != {'rationale', 'category'}:
            raise ConfigError(f'loss_weights takes rationale and category, got {sorted(weights)}.')
        self.loss_weights = {k: float(v) for k, v in weights.items()}
        if max_conditions is not None and int(max_conditions) < 1:
            raise ConfigError(f'max_conditions must be >= 1 or None, got {max_conditions!r}.')
        self.max_conditions = max_conditions
        self.fixed_scale = None if logit_scale is None else float(logit_scale)
        if class_names is None and num_classes is None:
            class_names = list(self.table)
        self._set_cache: dict[tuple[int, ...], Tensor] = {}
        self._set_key: bytes | None = None
        self._pieces: dict[str, list[int]] = {}
        super().__init__(image_text, num_classes=num_classes, class_names=class_names,
                         data_preprocessor=data_preprocessor, text_batch_size=text_batch_size, init_cfg=init_cfg)
        enc = self.image_text.text_encoder()
        self.rationale_prompt = self._build_prompt(rationale_prompt, enc, 'rationale_prompt', len(self.vocab))
        self.category_prompt = self._build_prompt(category_prompt, enc, 'category_prompt', self.num_classes)
        self.train_image_tower, self.train_text_tower = bool(train_image_tower), bool(train_text_tower)
        if not self.train_image_tower:
            self.image_text.clip.visual.requires_grad_(False)
            self.image_text.clip.logit_scale.requires_grad_(False)
        if not self.train_text_tower:
            for p in self.image_text.text_parameters():
                p.requires_grad_(False)
        self.train(self.training)

    @staticmethod
    def _build_prompt(cfg: Any, enc: Any, name: str, count: int) -> nn.Module | None:
        if cfg is None:
            return None
        learner = TEXT_ENCODERS.build(dict(cfg), default_args=dict(width=enc.width, num_classes=count)) \
            if isinstance(cfg, Mapping) else cfg
        if getattr(learner, 'class_specific', False) or not hasattr(learner, 'ctx'):
            raise ConfigError(f'{name} must be a prompt learner with one context shared by every prompt (e.g. '
                              f"SharedPromptLearner), got {type(learner).__name__}.")
        return learner

    def train(self, mode: bool = True) -> ECOR:
        """``nn.Module.train``; frozen towers stay in eval mode (dropout and BatchNorm statistics off)."""
        super().train(mode)
        it = getattr(self, 'image_text', None)
        if it is not None and not getattr(self, 'train_image_tower', True):
            it.clip.visual.eval()
        if it is not None and not getattr(self, 'train_text_tower', True):
            for m in it.text_modules():
                m.eval()
        return self

    # --- texts ------------------------------------------------------------------------------------------------
    @property
    def num_rationales(self) -> int:
        return len(self.vocab)

    def rationale_texts(self) -> list[str]:
        return [self.rationale_template.format(r=r) for r in self.vocab.texts]

    def category_texts(self, rationale_ids: Sequence[int] | None = None) -> list[str]:
        """Category prompts: conditioned on the rationale set ``rationale_ids`` (one per class), or unconditioned
        (``class_template``) when ``None``."""
        names = self.category_names()
        if rationale_ids is None:
            return [self.class_template.format(c=wordify(n)) for n in names]
        r = join_rationales([self.vocab.texts[i] for i in rationale_ids])
        return [self.category_template.format(c=wordify(n), r=r) for n in names]

    def category_names(self) -> list[str]:
        """The class names (a one-line error when none are set yet)."""
        if self.class_names is None:
            raise ConfigError('ECOR has no class names: pass class_names, or let ClassNamesHook take them from the '
                              "dataset's metainfo['classes'].")
        return list(self.class_names)

    def _text_rows(self) -> int:
        n, k = len(self.vocab), self._num_classes
        return n + {'rationale': n * k, 'set': 0, 'none': k}[self.condition]

    def texts(self) -> list[str]:
        """Rationale prompts, then (``'rationale'``) every (rationale, class) prompt or (``'none'``) the class
        prompts; learned contexts are not in the text (they enter :meth:`text_digest`)."""
        out = self.rationale_texts()
        if self.condition == 'rationale':
            out += [t for i in range(len(self.vocab)) for t in self.category_texts([i])]
        elif self.condition == 'none':
            out += self.category_texts(None)
        return out

    def _text_source(self) -> Any:
        return tuple(self.class_names or ()), self.condition, self.rationale_template, self.category_template, \
            self.class_template

    def text_digest(self) -> bytes:
        """The base digest (texts, text tower) with the learned contexts' values: a context update re-embeds."""
        h = hashlib.sha256(super().text_digest())
        for learner in (self.rationale_prompt, self.category_prompt):
            if learner is not None:
                h.update(learner.ctx.detach().float().cpu().numpy().tobytes())
        if self.train_text_tower:
            h.update(str(id(self)).encode() + str(getattr(self, '_text_version', 0)).encode())
        return h.digest()

    def on_class_names(self, names: list[str]) -> None:
        super().on_class_names(names)
        self.vocab.check_classes(names)   # every class needs rationales: fail now, in one line
        self._set_cache = {}

    # --- embeddings -------------------------------------------------------------------------------------------
    def _piece(self, enc: Any, text: str) -> list[int]:
        ids = self._pieces.get(text)
        if ids is None:
            ids = self._pieces[text] = list(enc.tokenize_piece(text))
        return ids

    def embed(self, learner: nn.Module | None, texts: Sequence[str]) -> Tensor:
        """``[M, D]`` L2-normalised embeddings of ``learner``'s context ⊕ each text (``None``: the text alone);
        differentiable in the context."""
        if learner is None:
            return self.image_text.encode_text(list(texts), normalize=True, batch_size=self.text_batch_size)
        enc = self.image_text.text_encoder()
        out = []
        for i in range(0, len(texts), self.text_batch_size):
            chunk = [self._piece(enc, t) for t in texts[i:i + self.text_batch_size]]
            batch = learner(enc, chunk, [], torch.arange(len(chunk)))
            feats = F.normalize(enc.encode(batch).sentence.float(), dim=-1)        # [M, V, D]
            out.append(F.normalize(feats.mean(1), dim=-1))
        return torch.cat(out)

    def refresh_text_embeddings(self) -> None:
        """Embed the rationale and category prompts now (no gradient) into ``text_embeddings``."""
        from zoo.ops.modules import model_state

        key = self.text_digest()
        n = len(self.vocab)
        with torch.no_grad(), model_state(self, eval_mode=True, freeze=False):
            rows = [self.embed(self.rationale_prompt, self.rationale_texts())]
            if self.condition != 'set':
                rows.append(self.embed(self.category_prompt, self.texts()[n:]))
            self.text_embeddings.copy_(torch.cat(rows).to(self.text_embeddings.dtype))
        self.text_key.copy_(torch.tensor(list(key), dtype=torch.uint8))
        self._valid_key = key

    def _scale(self) -> Tensor:
        return self.image_text.logit_scale if self.fixed_scale is None else torch.tensor(self.fixed_scale)

    # --- the distributions ------------------------------------------------------------------------------------
    def rationale_logits(self, image_embeddings: Tensor) -> Tensor:
        """``[B, N]`` scaled cosines with every rationale prompt (softmax: ``P(r | I)``)."""
        emb = self.class_text_embeddings()[:len(self.vocab)]
        return self._scale().to(image_embeddings) * image_embeddings @ emb.to(image_embeddings).T

    def conditional_logits(self, image_embeddings: Tensor) -> Tensor:
        """``[B, N, K]`` scaled cosines of the category prompts conditioned on each single rationale
        (``condition='rationale'``; softmax over the last axis: ``P(c | r, I)``)."""
        if self.condition != 'rationale':
            raise ConfigError(f"conditional_logits needs condition='rationale', this model has {self.condition!r}.")
        n, k = len(self.vocab), self.num_classes
        emb = self.class_text_embeddings()[n:].view(n, k, -1)
        return self._scale().to(image_embeddings) * torch.einsum('bd,nkd->bnk', image_embeddings,
                                                                 emb.to(image_embeddings))

    def joint(self, image_embeddings: Tensor) -> Tensor:
        """``P(c, r | I) = P(r | I) · P(c | r, I)``: ``[B, N, K]``, summing to 1 per image."""
        p_r = self.rationale_logits(image_embeddings).float().softmax(-1)
        return p_r[:, :, None] * self.conditional_logits(image_embeddings).float().softmax(-1)

    def top_rationales(self, p_r: Tensor) -> Tensor:
        """``[B, k]`` ids of the most probable rationales (``top_k``; all when ``None``)."""
        return p_r.topk(self.top_k or p_r.shape[-1], dim=-1).indices

    def set_logits(self, image_embeddings: Tensor, sets: Tensor) -> Tensor:
        """``[B, K]`` scaled cosines of the category prompts conditioned on each image's rationale set
        ``sets`` ``[B, k]`` (distinct sets embedded once; cached between calls while nothing changed)."""
        key = self.text_digest()
        if key != self._set_key or self.training:
            self._set_cache, self._set_key = {}, key
        rows = []
        for s in sets.tolist():
            s = tuple(sorted(s))
            emb = self._set_cache.get(s)
            if emb is None:
                emb = self.embed(self.category_prompt, self.category_texts(s))
                if not torch.is_grad_enabled() or not emb.requires_grad:
                    self._set_cache[s] = emb.detach()
            rows.append(emb)
        emb = torch.stack(rows).to(image_embeddings)                               # [B, K, D]
        return self._scale().to(image_embeddings) * torch.einsum('bd,bkd->bk', image_embeddings, emb)

    def class_log_probs(self, image_embeddings: Tensor) -> Tensor:
        """``[B, K]`` log ``P(c | I)`` under the inference rule of ``condition`` and ``top_k``."""
        if self.condition == 'none':
            emb = self.class_text_embeddings()[len(self.vocab):]
            return (self._scale().to(image_embeddings) * image_embeddings @ emb.to(image_embeddings).T).log_softmax(-1)
        p_r = self.rationale_logits(image_embeddings).softmax(-1)
        top = self.top_rationales(p_r.detach())
        if self.condition == 'set':
            return self.set_logits(image_embeddings, top).log_softmax(-1)
        keep = torch.zeros_like(p_r).scatter_(1, top, 1.0)
        w = p_r * keep
        p_c = (w[:, :, None] * self.conditional_logits(image_embeddings).softmax(-1)).sum(1) / w.sum(1, keepdim=True)
        return p_c.clamp_min(1e-30).log()

    def logits(self, inputs: Tensor) -> Tensor:
        """log ``P(c | I)`` (``forward(mode='tensor')``; softmax gives the class probabilities)."""
        return self.class_log_probs(self.image_text.encode_image(inputs, normalize=True))

    def class_scores(self, image_embeddings: Tensor) -> Tensor:
        return self.class_log_probs(image_embeddings)

    @torch.no_grad()
    def predict(self, inputs: Tensor, data_samples: list | None = None) -> list:
        """Class probabilities (``pred_score``), rationale probabilities ``pred_rationale_score`` ``[N]`` and, when
        the sample has a label, its right rationales ``gt_rationale_mask`` (the doubly-right metric reads them)."""
        from zoo.structures import DataSample

        img = self.image_text.encode_image(inputs, normalize=True)
        scores = self.class_log_probs(img).float().exp()
        p_r = self.rationale_logits(img).float().softmax(-1)
        samples = data_samples if data_samples is not None else [DataSample() for _ in range(len(scores))]
        gt = self.gt_rationales(samples) if all(s.get('gt_label') is not None for s in samples) else None
        for i, sample in enumerate(samples):
            sample.set_pred_score(scores[i])
            sample.pred_rationale_score = p_r[i]
            if gt is not None:
                sample.gt_rationale_mask = gt[i].cpu()
        return samples

    # --- training ---------------------------------------------------------------------------------------------
    def gt_rationales(self, data_samples: Sequence[Any]) -> Tensor:
        """``[B, N]`` bool right rationales: a sample's ``gt_rationales`` ids (checked), else its class's."""
        n = len(self.vocab)
        names = self.category_names()
        table = self.vocab.targets(names)
        rows = []
        for s in data_samples:
            ids = s.get('gt_rationales') if hasattr(s, 'get') else None
            if ids is not None:
                rows.append(rationale_targets(ids, n))
                continue
            label = int(s.gt_label)
            if not 0 <= label < len(names):
                raise ConfigError(f'Label {label} is out of range for {len(names)} classes.')
            rows.append(table[label])
        return torch.stack(rows)

    def _trainable(self, learner: nn.Module | None) -> bool:
        return (learner is not None and learner.ctx.requires_grad) or self.train_text_tower

    def loss(self, inputs: Tensor, data_samples: list) -> dict[str, Tensor]:
        from zoo.ops.tensors import stack_field

        labels = stack_field(data_samples, 'gt_label')
        if labels is None:
            raise ConfigError('ECOR training needs gt_label in every data sample.')
        labels = labels.to(inputs.device).long()
        gt = self.gt_rationales(data_samples).to(inputs.device)
        img = self.image_text.encode_image(inputs, normalize=True)
        scale = self._scale().to(img)
        out: dict[str, Tensor] = {}
        if self._trainable(self.rationale_prompt) or self.train_image_tower:
            emb = self.embed(self.rationale_prompt, self.rationale_texts()).to(img)
            target = gt.float() / gt.sum(1, keepdim=True)
            out['loss_rationale'] = self.loss_weights['rationale'] * -(
                target * (scale * img @ emb.T).log_softmax(-1)).sum(1).mean()
        if self._trainable(self.category_prompt) or self.train_image_tower:
            out['loss_category'] = self.loss_weights['category'] * self._category_loss(img, labels, gt, scale)
        if not out:
            raise ConfigError('ECOR has nothing to train: give rationale_prompt/category_prompt learners or unfreeze a '
                              'tower (a zero-shot ECOR is evaluated with tools/test.py CONFIG none).')
        if self.train_text_tower:
            self._text_version = getattr(self, '_text_version', 0) + 1
        return out

    def _category_loss(self, img: Tensor, labels: Tensor, gt: Tensor, scale: Tensor) -> Tensor:
        if self.condition == 'none':
            emb = self.embed(self.category_prompt, self.category_texts(None)).to(img)
            return F.cross_entropy(scale * img @ emb.T, labels)
        if self.condition == 'set':
            sets = [tuple(torch.nonzero(row).flatten().tolist()) for row in gt.cpu()]
        else:
            allowed = gt.any(0).cpu()
            if self.max_conditions is not None and int(allowed.sum()) > self.max_conditions:
                ids = torch.nonzero(allowed).flatten()
                drawn = ids[torch.randperm(len(ids))[:self.max_conditions]]
                allowed = torch.zeros_like(allowed)
                allowed[drawn] = True
            sets = []
            for row in gt.cpu():
                ok = torch.nonzero(row & allowed).flatten()
                sets.append((int(ok[torch.randint(len(ok), ())]),) if len(ok) else None)
        keep = [i for i, s in enumerate(sets) if s is not None]
        distinct = list(dict.fromkeys(sets[i] for i in keep))
        texts = [t for s in distinct for t in self.category_texts(s)]
        emb = self.embed(self.category_prompt, texts).to(img).view(len(distinct), self.num_classes, -1)
        where = torch.tensor([distinct.index(sets[i]) for i in keep], device=img.device)
        rows = torch.tensor(keep, device=img.device)
        logits = scale * torch.einsum('bd,bkd->bk', img[rows], emb[where])
        return F.cross_entropy(logits, labels[rows])

    # --- explanation ------------------------------------------------------------------------------------------
    def explain_native(self, images: Any, targets: Any = None, top_k: int | None = None,
                       **kwargs: Any) -> RationaleExplanation:
        """Per image: the explained (predicted, or ``targets``) category with its probability, and the ``top_k``
        (default: the model's, else 5) most probable rationales with ``P(r | I)``, ``P(c | r, I)``, the joint and
        whether the rationale belongs to the category (:func:`~.ecor_explanation.explain_rationales`)."""
        return explain_rationales(self, images, targets, top_k, **kwargs)

    # --- export and metadata ----------------------------------------------------------------------------------
    def inference_config(self) -> dict[str, Any]:
        """As the base's, with the rationales themselves (never a file path: an export reads nothing outside its
        folder); the learned contexts are weights (``model.safetensors``)."""
        cfg = super().inference_config()
        cfg.pop('rationale_file', None)
        cfg['rationales'] = copy.deepcopy(self.table)
        return cfg

    @classmethod
    def method_info(cls, model_cfg: Mapping[str, Any]) -> dict[str, Any]:
        """``ecor``; the baselines (``condition='none'``) are ``coop`` (a category prompt learner) or
        ``zero-shot-clip``."""
        if model_cfg.get('condition', 'rationale') != 'none':
            return {'method': 'ecor', 'tags': ['image-text', 'prompt-learning', 'rationales', 'doubly-right',
                                               'explainable-by-design'], 'paper': copy.deepcopy(ECOR_PAPER)}
        if model_cfg.get('category_prompt', DEFAULT_PROMPT):
            return {'method': 'coop', 'tags': ['image-text', 'prompt-learning', 'baseline'],
                    'paper': copy.deepcopy(COOP_PAPER), 'baseline_of': 'ecor'}
        return {'method': 'zero-shot-clip', 'tags': ['image-text', 'zero-shot', 'baseline'],
                'paper': copy.deepcopy(CLIP_PAPER), 'baseline_of': 'ecor'}
