"""Explain image files with one or more explainers and write overlay PNGs and a grid (what ``tools/explain.py`` runs).

:func:`explain_images` takes a model object; :func:`explain` loads one from a config and checkpoint first.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from registry import MODELS
    >>> model = MODELS.build(dict(type='ImageClassifier', class_names=['a', 'b'],
    ...                           backbone=dict(type='TimmBackbone', model_name='test_resnet'),
    ...                           head=dict(type='LinearClsHead', num_classes=2)))
    >>> tmp = Path(tempfile.mkdtemp())
    >>> Image.new('RGB', (40, 30), 'red').save(tmp / 'red.png')
    >>> res = explain_images(model, [tmp], methods=['gradcam', 'eigencam'], out_dir=tmp / 'out', size=64,
    ...                      progress=False)
    >>> sorted(p.name for p in res.files)
    ['grid.png', 'red_eigencam.png', 'red_gradcam.png']
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from registry.errors import ConfigError, DataError, did_you_mean
from zoo.models.contract import Preprocessing, is_zoo_model
from zoo.ops.modules import model_device, model_state

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.gif')
MAX_GRID_ROWS = 32


@dataclass
class ExplainResult:
    """Maps per method (``[N, H, W]``, CPU), predictions, the files written, and — for ``method='native'`` — the
    model's own explanations (one :class:`zoo.models.Explanation` per batch)."""

    paths: list[Path]
    maps: dict[str, Tensor]
    pred_labels: list[int]
    pred_scores: list[float]
    files: list[Path] = field(default_factory=list)
    native: list[Any] = field(default_factory=list)

    @property
    def native_records(self) -> list[dict[str, Any]]:
        """The native explanations' records, one per image."""
        return [r for exp in self.native for r in exp.records]


def find_images(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files from files and folders (folders searched recursively, sorted)."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob('*') if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f'{str(path)!r} does not exist: pass image files or folders of images.')
    if not found:
        raise DataError(f'No images ({", ".join(IMAGE_SUFFIXES)}) in {", ".join(map(str, inputs))}.')
    return found


def preprocessing_of(model: nn.Module, size: int | Sequence[int] | None = None) -> Preprocessing:
    """The preprocessing images get for ``model``: a zoo model's own, else a timm model's ``pretrained_cfg``, else
    :class:`~zoo.models.contract.Preprocessing`'s defaults (224 px, ImageNet mean/std); ``size``: resize the
    shorter side and centre-crop to that size instead."""
    if is_zoo_model(model):
        pre = model.preprocessing
    else:
        cfg = getattr(model, 'pretrained_cfg', None)
        pre = Preprocessing.from_timm(cfg) if isinstance(cfg, Mapping) and cfg.get('input_size') else Preprocessing()
    return pre.with_size(size) if size is not None else pre


def input_size(model: nn.Module, size: int | Sequence[int] | None = None) -> tuple[int, int]:
    """``(H, W)`` of the images :func:`load_batch` makes for ``model`` (``size`` if given)."""
    return preprocessing_of(model, size).hw


def load_batch(model: nn.Module, paths: Sequence[Path], size: int | Sequence[int] | None = None) -> Tensor:
    """uint8 ``[N, 3, H, W]`` through the model's test pipeline (``size``: resize + centre crop to it)."""
    from zoo.datasets.base import read_rgb

    transform = preprocessing_of(model, size).build_transform()
    pics = [torch.as_tensor(transform(read_rgb(str(p)))) for p in paths]
    shapes = {tuple(p.shape) for p in pics}
    if len(shapes) > 1:
        raise DataError(f'The test pipeline gives images of different sizes ({sorted(shapes)[:3]}); it has no '
                        'crop. Pass --size to resize and centre-crop every image to one size.')
    return torch.stack(pics)


def normalizer(model: nn.Module) -> Any:
    """``uint8 [N, 3, H, W]`` → model input, with the mean/std of :func:`preprocessing_of`."""
    if is_zoo_model(model):
        return model.normalize
    pre = preprocessing_of(model)
    mean = torch.tensor(pre.mean_255).view(1, -1, 1, 1)
    std = torch.tensor(pre.std_255).view(1, -1, 1, 1)
    return lambda x: (x.float() - mean.to(x.device)) / std.to(x.device)


def class_names(model: nn.Module) -> list[str] | None:
    meta = getattr(model, 'explain_meta', None)
    names = meta.get('class_names') if isinstance(meta, Mapping) else None
    return list(names) if names else None


def resolve_target(target: int | str | None, names: list[str] | None, num_classes: int) -> int | None:
    """A class index from an index, a digit string or a class name."""
    if target is None:
        return None
    if isinstance(target, str) and not target.lstrip('-').isdigit():
        if not names or target not in names:
            hint = did_you_mean(target, names or [])
            known = f' Classes: {", ".join(names[:20])}{" ..." if len(names) > 20 else ""}.' if names else (
                ' The model has no class names; pass an index.')
            raise ConfigError(f'Unknown target class {target!r}.{hint}{known}')
        return names.index(target)
    idx = int(target)
    if not 0 <= idx < num_classes:
        raise ConfigError(f'--target {idx} is out of range: the model predicts {num_classes} classes (0..'
                          f'{num_classes - 1}).')
    return idx


def _predict(model: nn.Module, x: Tensor) -> Tensor:
    """Softmax probabilities in eval mode (the previous mode of every module restored)."""
    with torch.no_grad(), model_state(model, eval_mode=True, freeze=False):
        return model(x).float().softmax(1)


def _slug(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.-]', '', name.replace('+', 'p')) or 'explainer'


def _unique_stems(paths: list[Path]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f'{stem}_{seen[stem]}')
    return out


def _is_native(model: nn.Module, method: str | Mapping) -> bool:
    """``'native'`` or the model family's own explanation name (``'descriptors'``, ``'prototypes'``, ...)."""
    return isinstance(method, str) and method in ('native', getattr(model, 'native_explanation', None) or 'native')


def _method_key(method: str | Mapping) -> str:
    """A method's column name: the alias, or the config's type (plus its ``concept`` for concept explainers)."""
    if isinstance(method, str):
        return method
    concept = method.get('concept')
    return str(method.get('type')) + (f'_{concept}' if concept else '')


def explain_images(model: nn.Module, images: Sequence[str | Path], methods: Sequence[str | Mapping] = ('gradcam',),
                   target: int | str | None = None, out_dir: str | Path | None = None,
                   size: int | Sequence[int] | None = None, batch_size: int = 8, alpha: float = 0.5,
                   progress: bool = True) -> ExplainResult:
    """Explain image files with each method; write ``<stem>_<method>.png`` overlays and ``grid.png`` to ``out_dir``.

    Args:
        model: a classifier (``model(x)`` → logits); preprocessing from ``model.data_preprocessor``.
        images: image files and/or folders. methods: explainer aliases, names or config dicts.
            ``'native'`` (or the family's ``native_explanation`` name) asks a zoo model for its own explanation
            (``model.explain(x, method='native')``): its figures are written as ``<stem>_<kind>.png`` and its
            records as ``native.json``; its maps, if any, join the grid.
        target: class index or name for every image (default: each image's predicted class).
        out_dir: where PNGs go (nothing is written when ``None``). size: input size; ``None`` uses the model's
            preprocessing (see :func:`preprocessing_of`). batch_size: images per forward (a positive integer).
    """
    from tqdm.auto import tqdm

    from zoo.explainers import build_explainer
    from zoo.viz import save_grid, save_overlay

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f'batch_size must be a positive integer (images explained per forward), got {batch_size!r}; '
                          'e.g. batch_size=8.')
    paths = find_images(images)
    if not methods:
        raise ConfigError('No explanation method given; pass at least one, e.g. --method gradcam.')
    native = [m for m in methods if _is_native(model, m)]
    if native and not (is_zoo_model(model) and getattr(model, 'native_explanation', None)):
        raise ConfigError(f'{type(model).__name__} has no explanation of its own (--method native); use a saliency '
                          'explainer such as --method gradcam.')
    explainers = {_method_key(m): build_explainer(m) for m in methods if not _is_native(model, m)}
    norm = normalizer(model)
    device = model_device(model)
    pixels = load_batch(model, paths, size)
    maps: dict[str, list[Tensor]] = {k: [] for k in explainers}
    labels: list[int] = []
    scores: list[float] = []
    tgt: int | None = None
    starts = range(0, len(paths), batch_size)
    natives: list[Any] = []
    with tqdm(total=len(starts) * (len(explainers) + bool(native)), desc='explain', disable=not progress) as bar:
        for i in starts:
            x = norm(pixels[i:i + batch_size].to(device))
            prob = _predict(model, x)
            if i == 0:
                tgt = resolve_target(target, class_names(model), prob.shape[1])
            top = prob.max(1)
            labels += top.indices.tolist()
            scores += top.values.tolist()
            for key, explainer in explainers.items():
                maps[key].append(explainer(model, x, tgt).cpu())
                bar.update()
            if native:
                natives.append(model.explain(x, method='native', targets=tgt))
                if natives[-1].maps is not None:
                    maps.setdefault(natives[-1].kind, []).append(natives[-1].maps.cpu())
                bar.update()
    result = ExplainResult(paths, {k: torch.cat(v) for k, v in maps.items()}, labels, scores, native=natives)
    if out_dir is not None:
        _write(result, pixels, Path(out_dir), class_names(model), tgt, alpha, save_overlay, save_grid)
    return result


def _write(res: ExplainResult, pixels: Tensor, out: Path, names: list[str] | None, tgt: int | None,
           alpha: float, save_overlay: Any, save_grid: Any) -> None:
    stems = _unique_stems(res.paths)
    for key, maps in res.maps.items():
        for stem, img, m in zip(stems, pixels, maps):
            res.files.append(save_overlay(out / f'{stem}_{_slug(key)}.png', img, m, alpha=alpha))
    start = 0
    for exp in res.native:  # the family's own figures (Explanation.save_figures), one batch at a time
        end = start + len(exp)
        res.files += exp.save_figures(out, stems[start:end], pixels[start:end], names)
        start = end
    if res.native:
        from zoo.core.fileio import write_json

        write_json(out / 'native.json', [dict(r, image=str(p)) for p, r in zip(res.paths, res.native_records)])
        res.files.append(out / 'native.json')
    if not res.maps:
        return
    label = (lambda c: names[c]) if names else str
    rows = [f'{p.name}: {label(c)} {s:.2f}' for p, c, s in zip(res.paths, res.pred_labels, res.pred_scores)]
    n = min(len(res.paths), MAX_GRID_ROWS)
    title = f'target: {label(tgt)}' if tgt is not None else 'target: predicted class'
    if n < len(res.paths):
        title += f' (first {n} of {len(res.paths)} images)'
    res.files.append(save_grid(out / 'grid.png', pixels[:n], {k: v[:n] for k, v in res.maps.items()},
                               row_labels=rows[:n], title=title, alpha=alpha))


def explain(config: str | Path, checkpoint: str | Path | None, images: Sequence[str | Path],
            methods: Sequence[str | Mapping] = ('gradcam',), target: int | str | None = None,
            out_dir: str | Path = 'explanations', device: str = 'cpu',
            cfg_options: Sequence[str] | Mapping[str, Any] | None = None,
            size: int | Sequence[int] | None = None, batch_size: int = 8, progress: bool = True) -> ExplainResult:
    """Load a model with ``zoo.apis.init_model(config, checkpoint, device, cfg_options)`` and run
    :func:`explain_images` on it."""
    from zoo.apis import init_model

    model = init_model(config, checkpoint, device=device, cfg_options=cfg_options or None)
    return explain_images(model, images, methods=methods, target=target, out_dir=out_dir, size=size,
                          batch_size=batch_size, progress=progress)
