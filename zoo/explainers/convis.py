"""ConVis (Giulivi & Boracchi, "Concept Visualization: Explaining the CLIP Multi-modal Embedding Using WordNet",
2024): a saliency map for **any concept** — a WordNet synset, a class of a zero-shot classifier, or free text — on an
image-text model, training-free.

For each image region ``r`` (below) and concept ``s`` with text embedding ``t_s`` (by default the text encoder applied
to the synset's lemmas and WordNet definition, ``'{lemmas}: {definition}'``), with ``c(r, s) = cos(E_I(r), t_s)`` and
the concept vocabulary ``V`` (``'nouns'``: all 82,115 WordNet 3.0 noun synsets, by default):

* ``z(r, s)``, the standardised similarity. The paper does not say over what; ``standardize='image'`` (default)
  standardises each concept's cosines over the regions of the image, ``(c(r, s) - mean_r' c(r', s)) / std_r'
  c(r', s)``, which cancels what a concept's text has in common with every region of the image (some texts sit
  close to every image embedding, textured backgrounds included); ``'vocabulary'`` standardises each region's cosines
  over the vocabulary (ranks are then those of the cosines); ``'none'`` keeps the cosines (``score='z'``);
* ``rank_sim(r, s) = 1 - |{v ∈ V, v ≠ s : z(r, v) > z(r, s)}| / |V \\ {s}|``: 1 when ``s`` is the vocabulary's best
  match for the region, 0 when it is the worst (``score='rank'``, the default; ``score='cosine'`` maps ``c``);
* ``max_rank_sim(r, s) = max_{s' ∈ {s} ∪ hyponyms(s)} rank_sim(r, s')`` over the hyponyms of ``s`` that are in the
  vocabulary (``hyponyms='max'``, the default; ``'none'`` scores ``s`` alone), so ``footwear.n.02`` lights up where
  ``sandal.n.01`` ranks high. ``hyponym_max='region'`` (default) takes the maximum per region, before aggregation;
  ``'map'`` takes it over the aggregated pixel maps, so that a hypernym's map is exactly the pixel-wise maximum of
  the maps of itself and its hyponyms.

Regions (the paper leaves the scheme open; this is the stated default, every part a switch): square-ish windows of
``scales`` (fractions of the image side: 0.5 and 0.375), laid on a grid with a step of ``stride`` (0.5) window,
first and last windows on the image border (3 × 3 + 5 × 5 = 34 windows). ``regions='masks'`` (default) keeps the
image size and sets everything outside the window to ``fill`` (0: the normalisation mean), so an object keeps the
scale the encoder saw in training; ``regions='crops'`` crops each window and resizes it (bilinear) to the image size
(the usual multi-scale crop scheme; objects are enlarged). Every (image, window) pair runs through the image encoder
``batch_size`` at a time, and all concepts of a call share those embeddings. Aggregation: each pixel gets the mean
(``aggregate='mean'``) or maximum (``'max'``) of the scores of the windows covering it, per scale; scales are
averaged. Maps are ``[B, H, W]``, min-max scaled to [0, 1]
(``normalize=False``: the raw scores — rank scores are in [0, 1] already), computed on the model's device.

The model is any module with ``encode_image(images, normalize=True)`` and ``encode_text(texts, normalize=True)``: an
``ImageTextModel`` or a ``CLIPZeroShotClassifier`` / ``DescriptorClassifier`` built on one. Targets:

* a synset name (``'footwear.n.02'``), a vocabulary member's name, or free text (``'a striped shirt'``, embedded as
  written, no hyponyms) — one for the batch or one per image; ``concept=`` sets a default;
* a class index of a zero-shot classifier (its prompt-ensemble class embedding, from ``class_text_embeddings()``,
  ranked against the vocabulary); ``None`` without ``concept`` explains the predicted class.

:meth:`ConVis.explain_concepts` gives every image × concept map ``[B, K, H, W]`` in one pass.

Example:
    >>> import torch
    >>> from registry import MODELS
    >>> from zoo.concepts import ConceptVocabulary
    >>> from zoo.explainers import ConVis
    >>> tiny = dict(embed_dim=32, vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=16, head_width=16),
    ...             text_cfg=dict(context_length=16, width=32, heads=2, layers=1))
    >>> model = MODELS.build(dict(type='ImageTextModel', model_cfg=tiny))
    >>> vocab = ConceptVocabulary.custom({'footwear': 'covering for the feet', 'sandal': 'a strappy shoe',
    ...                                   'coat': 'an outer garment'}, hyponyms={'footwear': ['sandal']})
    >>> convis = ConVis(vocabulary=vocab, cache=None)
    >>> convis.explain_concepts(model, torch.randn(2, 3, 32, 32), ['footwear', 'a red coat']).shape
    torch.Size([2, 2, 32, 32])
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from registry import EXPLAINERS
from registry.errors import ConfigError, shorten
from zoo.concepts import wordnet
from zoo.concepts.embeddings import encode_texts, text_tower_key, vocabulary_embeddings
from zoo.concepts.vocabulary import DEFAULT_TEMPLATE, ConceptVocabulary, resolve_vocabulary, synset_text
from zoo.ops.modules import forward_logits, model_device, model_state

from .base import Explainer, check_images

PAPER = dict(title='Concept Visualization: Explaining the CLIP Multi-modal Embedding Using WordNet',
             authors='Loris Giulivi, Giacomo Boracchi', year=2024, arxiv='2405.14563')


@dataclass(frozen=True)
class Concept:
    """A resolved target: ``members`` are columns of [vocabulary | extra texts] whose scores are maxed over."""

    label: str
    members: tuple[int, ...]


def region_boxes(size: tuple[int, int], scales: Sequence[float], stride: float) -> tuple[Tensor, Tensor]:
    """Windows ``[R, 4]`` (y0, x0, y1, x1; integer pixels, end exclusive) and their scale index ``[R]``."""
    height, width = size
    boxes, which = [], []
    for k, s in enumerate(scales):
        wh, ww = max(1, round(s * height)), max(1, round(s * width))
        ny = 1 if wh >= height else math.ceil((height - wh) / max(1.0, stride * wh)) + 1
        nx = 1 if ww >= width else math.ceil((width - ww) / max(1.0, stride * ww)) + 1
        ys = torch.linspace(0, height - wh, ny).round().long().tolist()
        xs = torch.linspace(0, width - ww, nx).round().long().tolist()
        for y in dict.fromkeys(ys):
            for x in dict.fromkeys(xs):
                boxes.append((y, x, y + wh, x + ww))
                which.append(k)
    return torch.tensor(boxes, dtype=torch.long), torch.tensor(which, dtype=torch.long)


def member_scores(region_emb: Tensor, vocab_emb: Tensor, extra_emb: Tensor, members: Tensor, score: str,
                  standardize: str = 'image') -> Tensor:
    """Scores ``[B, R, J]`` of the columns ``members`` of [vocabulary | extra] (see the module doc).

    ``region_emb`` ``[B, R, D]``, ``vocab_emb`` ``[V, D]``, ``extra_emb`` ``[E, D]`` (all L2-normalised). Cosines are
    standardised per concept over the image's regions (``'image'``), per region over the vocabulary
    (``'vocabulary'``) or not at all (``'none'``); ``score='rank'`` ranks the standardised values, ``'z'`` returns
    them, ``'cosine'`` returns the cosines. A member ``j < V`` competes with the other ``V - 1`` vocabulary
    members, an extra one with all ``V``.
    """
    n_vocab = vocab_emb.shape[0]
    table = (torch.cat([vocab_emb, extra_emb]) if extra_emb.shape[0] else vocab_emb).to(region_emb.dtype)
    out = []
    for rows in region_emb:                                              # one image at a time: [R, D]
        both = rows @ table.T                                            # one product: a member's own similarity
        if score != 'cosine' and standardize == 'image':                 # is bit-equal to its vocabulary entry
            both = (both - both.mean(0)) / both.std(0, unbiased=False).clamp_min(1e-6)
        elif score != 'cosine' and standardize == 'vocabulary':
            vocab = both[:, :n_vocab]
            both = (both - vocab.mean(1, keepdim=True)) / vocab.std(1, unbiased=False, keepdim=True).clamp_min(1e-6)
        mine = both[:, members]                                          # [R, J]
        if score != 'rank':
            out.append(mine)
            continue
        ordered = both[:, :n_vocab].sort(1).values.contiguous()
        greater = n_vocab - torch.searchsorted(ordered, mine.contiguous(), right=True)
        denom = torch.where(members < n_vocab, n_vocab - 1, n_vocab).clamp_min(1).to(mine.dtype)
        out.append(1 - greater.to(mine.dtype) / denom)
    return torch.stack(out)


@EXPLAINERS.register_module()
class ConVis(Explainer):
    """ConVis concept saliency (see the module doc for the scores, regions and targets).

    Args:
        concept: default target (synset name, vocabulary name or free text); ``None``: ``targets`` decide.
        vocabulary: what regions rank concepts against: ``'nouns'`` (all WordNet 3.0 nouns), ``'hyponyms:<synset>'``,
            ``'imagenet-1k'``, a list of synset names, ``{name: text}`` or a :class:`~zoo.concepts.ConceptVocabulary`.
        template: text of a synset (fields ``lemma``, ``lemmas``, ``definition``, ``name``); ``'{lemma}'`` for lemma
            only. score: ``'rank'`` (rank_sim), ``'z'`` or ``'cosine'``.
        standardize: ``'image'`` (per concept over the image's regions; needs several regions), ``'vocabulary'``
            (per region over the vocabulary) or ``'none'``.
        hyponyms: ``'max'`` (max over the concept and its hyponyms in the vocabulary) or ``'none'``.
        hyponym_max: ``'region'`` (per region, the paper's max_rank_sim) or ``'map'`` (over aggregated maps).
        regions: ``'crops'`` or ``'masks'``. scales: window sides as fractions of the image side. stride: window step
            as a fraction of the window. fill: value outside the window for ``'masks'``. aggregate: ``'mean'`` or
            ``'max'`` of the windows covering a pixel.
        batch_size: region images per image-encoder call. cache: where vocabulary embeddings are cached
            (``'auto'``: the xzoo cache folder; a folder; ``None``: memory only). instances: follow WordNet instance
            hyponyms. progress: tqdm bar (``None``: when there are 8 encoder calls or more).
        normalize, resize, eval_mode: see :class:`~zoo.explainers.base.Explainer`.
    """

    aliases = ('convis',)
    supports_differentiable = False
    paper = PAPER

    def __init__(self, concept: str | None = None, vocabulary: Any = 'nouns', template: str = DEFAULT_TEMPLATE,
                 score: str = 'rank', standardize: str = 'image', hyponyms: str = 'max', hyponym_max: str = 'region',
                 regions: str = 'masks',
                 scales: Sequence[float] = (0.5, 0.375), stride: float = 0.5, fill: float = 0.0,
                 aggregate: str = 'mean', batch_size: int = 64, cache: Any = 'auto', instances: bool = False,
                 progress: bool | None = None, normalize: bool = True, resize: bool = True,
                 eval_mode: bool = True) -> None:
        super().__init__(normalize=normalize, resize=resize, eval_mode=eval_mode)
        for key, val, allowed in (('score', score, ('rank', 'z', 'cosine')), ('hyponyms', hyponyms, ('max', 'none')),
                                  ('standardize', standardize, ('image', 'vocabulary', 'none')),
                                  ('hyponym_max', hyponym_max, ('region', 'map')),
                                  ('regions', regions, ('crops', 'masks')), ('aggregate', aggregate, ('mean', 'max'))):
            if val not in allowed:
                raise ConfigError(f'ConVis {key} must be one of {", ".join(map(repr, allowed))}, got {val!r}.')
        scales = tuple(float(s) for s in (scales if isinstance(scales, Sequence) else [scales]))
        if not scales or not all(0 < s <= 1 for s in scales):
            raise ConfigError(f'ConVis scales are window sides as fractions of the image side, in (0, 1]; got '
                              f'{scales!r}.')
        if not 0 < stride <= 1:
            raise ConfigError(f'ConVis stride is the window step as a fraction of the window, in (0, 1]; got '
                              f'{stride!r}.')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f'ConVis batch_size must be a positive int, got {batch_size!r}.')
        if concept is not None and not (isinstance(concept, str) and concept.strip()):
            raise ConfigError(f'ConVis concept must be a non-empty string, got {concept!r}.')
        self.concept, self.vocabulary, self.template, self.score = concept, vocabulary, template, score
        self.standardize = standardize
        self.hyponyms, self.hyponym_max, self.regions, self.scales = hyponyms, hyponym_max, regions, scales
        self.stride, self.fill, self.aggregate, self.batch_size = float(stride), float(fill), aggregate, batch_size
        self.cache, self.instances, self.progress = cache, bool(instances), progress
        self._vocab: ConceptVocabulary | None = None
        self._extra: dict[tuple[str, str], Tensor] = {}

    # --- vocabulary and concepts -------------------------------------------------------------------------------
    @property
    def vocab(self) -> ConceptVocabulary:
        """The resolved vocabulary (built on first use)."""
        if self._vocab is None:
            self._vocab = resolve_vocabulary(self.vocabulary, template=self.template, instances=self.instances)
        return self._vocab

    def vocabulary_embeddings(self, model: nn.Module) -> Tensor:
        """``[V, D]`` embeddings of the vocabulary on the model's device (computed once, cached)."""
        return vocabulary_embeddings(model, self.vocab, cache=self.cache, batch_size=256, progress=self.progress)

    def _resolve(self, target: Any, model: nn.Module, extras: list[Any]) -> Concept:
        """One target → a :class:`Concept`; texts/embeddings outside the vocabulary are appended to ``extras``."""
        vocab = self.vocab

        def extra(item: Any) -> int:
            extras.append(item)
            return len(vocab) + len(extras) - 1

        if isinstance(target, bool) or not isinstance(target, (str, int)):
            raise ConfigError(f'ConVis targets are synset names, free-text concepts or class indices of a zero-shot '
                              f'classifier; got {type(target).__name__}: {shorten(repr(target), 60)}.')
        if isinstance(target, int):
            emb_fn = getattr(model, 'class_text_embeddings', None)
            if not callable(emb_fn):
                raise ConfigError(f'A class index target ({target}) needs a zero-shot classifier with '
                                  f'class_text_embeddings(); {type(model).__name__} has none: give a concept '
                                  "(concept='footwear.n.02' or a free text).")
            table = emb_fn()
            if not 0 <= target < table.shape[0]:
                raise ConfigError(f'Class index {target} is out of range: the classifier has {table.shape[0]} classes.')
            names = (getattr(model, 'explain_meta', None) or {}).get('class_names') or []
            label = str(names[target]) if target < len(names) else f'class {target}'
            return Concept(label, (extra(table[target]),))
        text = target.strip()
        if not text:
            raise ConfigError('ConVis got an empty concept; give a synset name such as footwear.n.02 or a text.')
        own = vocab.index(text)
        if own is not None:
            below = vocab.closure(text) if self.hyponyms == 'max' else []
            return Concept(text, (own, *below))
        if wordnet.is_synset_name(text):
            syn = wordnet.synset(text)
            below = []
            if self.hyponyms == 'max':
                below = [i for i in (vocab.index(s.name()) for s in wordnet.closure(syn, self.instances))
                         if i is not None]
            return Concept(text, (extra(synset_text(syn, self.template)), *below))
        return Concept(text, (extra(text),))

    def resolve_concepts(self, model: nn.Module, targets: Sequence[Any]) -> tuple[list[Concept], Tensor]:
        """Concepts for ``targets`` and the ``[E, D]`` embeddings of the ones outside the vocabulary."""
        extras: list[Any] = []
        concepts = [self._resolve(t, model, extras) for t in targets]
        device = model_device(model)
        rows = []
        key = text_tower_key(model) if any(isinstance(e, str) for e in extras) else ''
        for item in extras:
            if isinstance(item, str):
                if (key, item) not in self._extra:
                    self._extra[(key, item)] = encode_texts(model, [item])[0]
                item = self._extra[(key, item)]
            rows.append(F.normalize(item.detach().float().to(device), dim=-1))
        dim = rows[0].shape[-1] if rows else 0
        return concepts, (torch.stack(rows) if rows else torch.zeros(0, dim, device=device))

    # --- regions ------------------------------------------------------------------------------------------------
    def boxes(self, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Windows ``[R, 4]`` (y0, x0, y1, x1) and scale indices ``[R]`` for images of ``size``."""
        return region_boxes(size, self.scales, self.stride)

    def region_images(self, images: Tensor, boxes: Tensor) -> Tensor:
        """``[R, B, C, H, W]`` region images (crops resized to the image size, or masked images)."""
        height, width = images.shape[-2:]
        out = []
        for y0, x0, y1, x1 in boxes.tolist():
            if self.regions == 'crops':
                crop = images[:, :, y0:y1, x0:x1]
                out.append(crop if crop.shape[-2:] == images.shape[-2:] else
                           F.interpolate(crop, size=(height, width), mode='bilinear', align_corners=False))
            else:
                keep = torch.zeros(1, 1, height, width, device=images.device, dtype=images.dtype)
                keep[..., y0:y1, x0:x1] = 1
                out.append(images * keep + self.fill * (1 - keep))
        return torch.stack(out)

    def region_embeddings(self, model: nn.Module, images: Tensor) -> Tensor:
        """``[B, R, D]`` L2-normalised image embeddings of every region of every image."""
        encode = getattr(model, 'encode_image', None)
        if not callable(encode):
            raise ConfigError(f'ConVis explains image-text models: {type(model).__name__} has no encode_image(); use '
                              'an ImageTextModel or a zero-shot classifier built on one.')
        boxes, _ = self.boxes(tuple(images.shape[-2:]))
        per_call = max(1, self.batch_size // images.shape[0])
        starts = range(0, len(boxes), per_call)
        show = bool(self.progress) if self.progress is not None else len(starts) >= 8
        chunks = []
        for i in tqdm(starts, desc='convis regions', leave=False, disable=not show):
            regions = self.region_images(images, boxes[i:i + per_call])            # [r, B, C, H, W]
            r, b = regions.shape[:2]
            emb = encode(regions.reshape(r * b, *images.shape[1:]), normalize=True).float()
            chunks.append(F.normalize(emb, dim=-1).reshape(r, b, -1))
        return torch.cat(chunks).transpose(0, 1)

    def aggregate_maps(self, scores: Tensor, size: tuple[int, int]) -> Tensor:
        """Region scores ``[B, R, K]`` → pixel maps ``[B, K, H, W]`` (per scale mean/max, scales averaged)."""
        boxes, which = self.boxes(size)
        b, _, k = scores.shape
        total = scores.new_zeros(b, k, *size)
        for s in range(len(self.scales)):
            idx = (which == s).nonzero().flatten().tolist()
            acc = scores.new_full((b, k, *size), -math.inf if self.aggregate == 'max' else 0.0)
            count = scores.new_zeros(size)
            for i in idx:
                y0, x0, y1, x1 = boxes[i].tolist()
                val = scores[:, i, :, None, None]
                if self.aggregate == 'max':
                    acc[..., y0:y1, x0:x1] = torch.maximum(acc[..., y0:y1, x0:x1], val)
                else:
                    acc[..., y0:y1, x0:x1] += val
                count[y0:y1, x0:x1] += 1
            total += acc if self.aggregate == 'max' else acc / count.clamp_min(1)
        return total / len(self.scales)

    # --- maps -------------------------------------------------------------------------------------------------
    def raw_concept_maps(self, model: nn.Module, images: Tensor, concepts: Sequence[Concept], extra: Tensor) -> Tensor:
        """Raw maps ``[B, K, H, W]`` of resolved concepts for images on the model's device."""
        region = self.region_embeddings(model, images)
        return self.maps_from_regions(region, self.vocabulary_embeddings(model), concepts, extra,
                                      tuple(images.shape[-2:]))

    def maps_from_regions(self, region: Tensor, vocab_emb: Tensor, concepts: Sequence[Concept], extra: Tensor,
                          size: tuple[int, int]) -> Tensor:
        """Raw maps ``[B, K, H, W]`` from region embeddings ``[B, R, D]`` (several settings can share them)."""
        members = sorted({m for c in concepts for m in c.members})
        col = {m: j for j, m in enumerate(members)}
        scores = member_scores(region, vocab_emb.to(region.device), extra.to(region.device),
                               torch.tensor(members, device=region.device), self.score, self.standardize)
        groups = [[col[m] for m in c.members] for c in concepts]
        if self.hyponym_max == 'region':
            per_concept = torch.stack([scores[..., g].amax(-1) for g in groups], -1)      # [B, R, K]
            return self.aggregate_maps(per_concept, size)
        maps = self.aggregate_maps(scores, size)                                          # [B, J, H, W]
        return torch.stack([maps[:, g].amax(1) for g in groups], 1)

    def explain_concepts(self, model: nn.Module, images: Tensor, concepts: Sequence[Any]) -> Tensor:
        """Maps ``[B, K, H, W]`` of every image for every concept (targets as in the module doc), post-processed."""
        images = check_images(images)
        if isinstance(concepts, (str, int)):
            concepts = [concepts]
        if not concepts:
            raise ConfigError('ConVis.explain_concepts needs at least one concept.')
        out_device = images.device
        with torch.inference_mode(False), torch.no_grad(), model_state(model, eval_mode=self.eval_mode):
            images = images.to(model_device(model, images.device)).detach()
            resolved, extra = self.resolve_concepts(model, list(concepts))
            maps = self.raw_concept_maps(model, images, resolved, extra)
            b, k, h, w = maps.shape
            maps = self.postprocess(maps.reshape(b * k, h, w), (h, w))
        return maps.reshape(b, k, *maps.shape[-2:]).to(out_device)

    def __call__(self, model: nn.Module, images: Tensor, targets: Any = None) -> Tensor:
        """``[B, H, W]`` maps: one concept for the batch or one per image (see the module doc)."""
        images = check_images(images)
        b = images.shape[0]
        if targets is None:
            targets = self.concept
        if targets is None:
            if not callable(getattr(model, 'class_text_embeddings', None)):
                raise ConfigError(f'ConVis needs a concept for {type(model).__name__}, which is not a zero-shot '
                                  "classifier: pass concept='footwear.n.02' (or a free text) or targets=....")
            with torch.no_grad(), model_state(model, eval_mode=self.eval_mode):
                targets = forward_logits(model, images.to(model_device(model, images.device))).argmax(1)
        if isinstance(targets, Tensor):
            targets = targets.flatten().tolist()
        per_image = [targets] * b if isinstance(targets, (str, int)) else list(targets)
        if len(per_image) != b:
            raise ConfigError(f'ConVis got {len(per_image)} targets for {b} images; give one for the batch or one '
                              'per image.')
        unique = list(dict.fromkeys(per_image))
        maps = self.explain_concepts(model, images, unique)
        pick = torch.tensor([unique.index(t) for t in per_image], device=maps.device)
        return maps[torch.arange(b, device=maps.device), pick]

    def explain(self, model: nn.Module, images: Tensor, targets: Any) -> Tensor:
        """Raw maps ``[B, H, W]`` (the base-class hook; :meth:`__call__` is the entry point)."""
        per_image = targets if isinstance(targets, Sequence) and not isinstance(targets, str) else \
            [targets] * images.shape[0]
        resolved, extra = self.resolve_concepts(model, list(per_image))
        maps = self.raw_concept_maps(model, images, resolved, extra)
        return maps[torch.arange(images.shape[0]), torch.arange(images.shape[0])]
