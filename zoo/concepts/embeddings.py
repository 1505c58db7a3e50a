"""Text embeddings of a concept vocabulary, computed once per (vocabulary, text tower) and cached as safetensors.

The key of a cached file is the vocabulary's digest (names, texts, edges) and :func:`text_tower_key`: a sha256 of
the text tower's identity (class, model name, text config, embedding size) and **its weights**, so a retrained or
different text tower never reads another's embeddings. Files are ``<vocabulary digest>-<tower key>.safetensors``
(one ``embeddings`` tensor ``[V, D]``, L2-normalised, float32; metadata: the two keys and the vocabulary spec),
written atomically through :func:`zoo.core.fileio.atomic_path`.

Where they are looked for, in order: an in-memory copy; ``concepts/`` beside the model's export folder (when the
model was loaded with ``zoo.load`` from a folder — a publisher can ship them there with
:func:`save_vocabulary_embeddings`); the cache folder (``<cache>/concepts/``, see
:func:`zoo.concepts.wordnet.cache_dir`). New embeddings are written to the cache folder (``cache='auto'``), to a
folder given as ``cache``, or nowhere (``cache=None``).

The model is anything with ``encode_text(texts, normalize=True)`` — an ``ImageTextModel`` or a classifier built
on one (``model.image_text``); its text parameters come from ``text_parameters()`` when it has it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from zoo.concepts import ConceptVocabulary, vocabulary_embeddings
    >>> class Toy(nn.Module):   # a stand-in text tower: one embedding per text length
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.table = nn.Embedding(64, 8)
    ...     def encode_text(self, texts, normalize=True):
    ...         e = self.table(torch.tensor([len(t) % 64 for t in texts]))
    ...         return torch.nn.functional.normalize(e, dim=-1) if normalize else e
    >>> vocab = ConceptVocabulary.custom({'cat': 'a small feline', 'dog': 'a domestic canine'})
    >>> vocabulary_embeddings(Toy(), vocab, cache=None).shape
    torch.Size([2, 8])
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from registry.errors import CheckpointError, ConfigError
from zoo.core.fileio import atomic_path, ensure_dir
from zoo.ops.modules import model_device

from .vocabulary import ConceptVocabulary
from .wordnet import cache_dir

_KEYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # module -> (parameter state, key)
_MEMORY: OrderedDict[tuple[str, str, str], Tensor] = OrderedDict()  # (vocabulary, tower, device) -> embeddings
MEMORY_ENTRIES = 4


def text_tower(model: nn.Module) -> nn.Module:
    """The module holding the text tower: ``model.image_text`` for classifiers, else ``model``."""
    return getattr(model, 'image_text', model)


def _text_params(tower: nn.Module) -> list[Tensor]:
    params = getattr(tower, 'text_parameters', None)
    return list(params()) if callable(params) else list(tower.parameters())


def text_tower_key(model: nn.Module) -> str:
    """sha256 of the text tower's identity and weights (memoised while no parameter changes in place)."""
    tower = text_tower(model)
    params = _text_params(tower)
    state = tuple((p.data_ptr(), p._version, tuple(p.shape)) for p in params)
    memo = _KEYS.get(tower)
    if memo is not None and memo[0] == state:
        return memo[1]
    cfg = getattr(tower, 'model_cfg', None)
    ident = [type(tower).__name__, getattr(tower, 'model_name', None),
             cfg.get('text_cfg') if isinstance(cfg, Mapping) else None, getattr(tower, 'embed_dim', None)]
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode())
    for p in params:
        data = p.detach().to('cpu', copy=False).contiguous()
        digest.update(str((tuple(data.shape), data.dtype)).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    key = digest.hexdigest()
    _KEYS[tower] = (state, key)
    return key


@torch.no_grad()
def encode_texts(model: nn.Module, texts: Sequence[str], batch_size: int = 256,
                 progress: bool | None = None) -> Tensor:
    """L2-normalised float32 embeddings ``[N, D]`` of ``texts``, ``batch_size`` at a time, on the model's device
    (a progress bar for 8 batches or more unless ``progress`` says otherwise)."""
    encode = getattr(model, 'encode_text', None)
    if not callable(encode):
        raise ConfigError(f'{type(model).__name__} has no encode_text(texts): concepts need an image-text model '
                          '(an ImageTextModel, or a CLIPZeroShotClassifier / DescriptorClassifier built on one).')
    starts = range(0, len(texts), batch_size)
    show = bool(progress) if progress is not None else len(starts) >= 8
    out = [encode(list(texts[i:i + batch_size]), normalize=True).float()
           for i in tqdm(starts, desc='concept texts', leave=False, disable=not show)]
    return F.normalize(torch.cat(out), dim=-1)


def embeddings_name(vocab: ConceptVocabulary, key: str) -> str:
    return f'{vocab.digest[:16]}-{key[:16]}.safetensors'


def _export_folder(model: nn.Module) -> Path | None:
    files = getattr(model, 'pretrained_files', None)
    weights = files.get('weights') if isinstance(files, Mapping) else None
    return Path(weights).parent / 'concepts' if weights else None


def _read(path: Path, vocab: ConceptVocabulary, key: str) -> Tensor | None:
    try:
        with safe_open(str(path), framework='pt') as fh:
            meta = fh.metadata() or {}
            emb = fh.get_tensor('embeddings')
    except (OSError, SafetensorError, KeyError, ValueError):
        return None  # damaged or foreign: recomputed (and rewritten)
    if meta.get('vocabulary') != vocab.digest or meta.get('text_tower') != key or emb.ndim != 2 \
            or emb.shape[0] != len(vocab) or not emb.is_floating_point():
        return None
    return emb.float()


def save_vocabulary_embeddings(model: nn.Module, vocab: ConceptVocabulary, folder: str | os.PathLike,
                               embeddings: Tensor | None = None, batch_size: int = 256) -> Path:
    """Write the vocabulary's embeddings (computed now unless given) to ``folder`` and return the file; use
    ``<export>/concepts`` to ship them beside a model export."""
    key = text_tower_key(model)
    emb = embeddings if embeddings is not None else encode_texts(model, vocab.texts, batch_size)
    if tuple(emb.shape[:1]) != (len(vocab),):
        raise CheckpointError(f'{emb.shape[0]} embeddings for a vocabulary of {len(vocab)} concepts.')
    path = Path(ensure_dir(folder)) / embeddings_name(vocab, key)
    meta = {'vocabulary': vocab.digest, 'text_tower': key, 'spec': vocab.spec, 'count': str(len(vocab))}
    with atomic_path(path) as tmp:
        save_file({'embeddings': emb.detach().float().cpu().contiguous()}, tmp, metadata=meta)
    return path


def vocabulary_embeddings(model: nn.Module, vocab: ConceptVocabulary, cache: str | os.PathLike | None = 'auto',
                          batch_size: int = 256, progress: bool | None = None) -> Tensor:
    """``[V, D]`` L2-normalised embeddings of ``vocab.texts`` on the model's device, computed once (see the
    module doc for where they are looked for and written)."""
    key = text_tower_key(model)
    device = model_device(model)
    mem_key = (vocab.digest, key, str(device))
    if mem_key in _MEMORY:
        _MEMORY.move_to_end(mem_key)
        return _MEMORY[mem_key]
    name = embeddings_name(vocab, key)
    folder = None if cache is None else (cache_dir() / 'concepts' if cache == 'auto' else Path(cache))
    emb = None
    for candidate in (_export_folder(model), folder):
        if candidate is not None and (candidate / name).is_file():
            emb = _read(candidate / name, vocab, key)
            if emb is not None:
                break
    if emb is None:
        emb = encode_texts(model, vocab.texts, batch_size, progress)
        if folder is not None:
            save_vocabulary_embeddings(model, vocab, folder, emb)
    emb = emb.to(device)
    _MEMORY[mem_key] = emb
    while len(_MEMORY) > MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return emb


def clear_memory() -> None:
    """Forget the in-memory embeddings (files stay)."""
    _MEMORY.clear()
