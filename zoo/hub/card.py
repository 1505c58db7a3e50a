"""Model cards (the Hub repo's ``README.md``) built with huggingface_hub's ``ModelCard``/``ModelCardData``.

What a card says comes from what was trained and measured, never from a default:

- the **method** from the ``training`` block of ``config.json``, which the model family's ``method_info`` filled in
  from the *training* config (``ImageClassifier`` with LICO alignment heads → ``lico`` and its paper); it is in the
  text, the tags and ``config.json`` alike;
- the **results** as structured ``model-index`` ``EvalResult`` entries, each with its conventions in ``args``
  (explainer, target layer, substrate, step, scored class, number of images ...), so a number never travels
  without the way it was computed (:mod:`zoo.hub.results` reads them from a work dir);
- the **figures** (saliency grid, insertion/deletion curves) shipped in the repo and shown;
- the **citations**: the method's paper (``method_info``'s bibtex, else the zoo index's ``paper``), the dataset
  with its terms (the index's ``dataset``), and xzoo.

Example:
    >>> from zoo.hub.card import normalize_metrics
    >>> normalize_metrics({'metrics': {'accuracy/top1': 81.5,
    ...                                'insertion_auc': {'value': 0.61, 'explainer': 'gradcam'}}})
    [{'key': 'accuracy/top1', 'name': 'Top-1 accuracy', 'value': 81.5, 'conventions': {}}, \
{'key': 'insertion_auc', 'name': 'insertion_auc', 'value': 0.61, 'conventions': {'explainer': 'gradcam'}}]
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_NAMES = {'accuracy/top1': 'Top-1 accuracy', 'accuracy/top5': 'Top-5 accuracy'}
_XZOO_BIBTEX = """@software{xzoo,
  title  = {xzoo: a model zoo and config registry for explainable image classification},
  url    = {https://github.com/xzoo/xzoo},
  year   = {2026}
}"""
_METHOD_TEXT = {'lico': 'LICO', 'baseline': 'baseline'}
_METHOD_NOTE = {'baseline': 'cross-entropy only, no explanation-specific objective'}
_FIGURE_CAPTIONS = {'curves.png': 'Mean insertion and deletion curves over the explained test images'}


def normalize_metrics(metrics: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Metrics as ``[{key, name, value, conventions}]`` from ``tools/test.py --out`` JSON, ``{key: value}``,
    ``{key: {'value': v, **conventions}}`` or index-style lists; entries without a number are dropped."""
    if not metrics:
        return []
    if isinstance(metrics, Mapping) and isinstance(metrics.get('metrics'), (Mapping, list)):
        metrics = metrics['metrics']
    items: list[dict[str, Any]] = []
    if isinstance(metrics, Mapping):
        for key, value in metrics.items():
            if isinstance(value, Mapping):
                rest = {k: v for k, v in value.items() if k not in ('value', 'name', 'conventions')}
                items.append({'key': key, 'name': value.get('name') or _NAMES.get(key, key),
                              'value': value.get('value'), 'conventions': {**rest, **(value.get('conventions') or {})}})
            else:
                items.append({'key': key, 'name': _NAMES.get(key, key), 'value': value, 'conventions': {}})
    else:
        for m in metrics:
            items.append({'key': m['key'], 'name': m.get('name') or _NAMES.get(m['key'], m['key']),
                          'value': m.get('value'), 'conventions': dict(m.get('conventions') or {})})
    return [m for m in items if isinstance(m['value'], (int, float)) and not isinstance(m['value'], bool)]


def bibtex(ref: Mapping[str, Any] | None) -> str | None:
    """A reference's ``bibtex``, or one made from its ``title``, ``authors``, ``venue``, ``year``, ``arxiv``, ``url``.

    Example:
        >>> print(bibtex({'title': 'Deep Residual Learning', 'authors': 'He et al.', 'venue': 'CVPR 2016'}))
        @misc{he2016,
          title        = {Deep Residual Learning},
          author       = {He et al.},
          howpublished = {CVPR 2016},
          year         = {2016}
        }
    """
    if not ref or not ref.get('title'):
        return None
    if ref.get('bibtex'):
        return str(ref['bibtex']).strip()
    venue = str(ref.get('venue') or '')
    year = ref.get('year') or next(iter(re.findall(r'(?:19|20)\d\d', venue)), None)
    first = re.findall(r'[A-Za-z]+', str(ref.get('authors') or 'anon'))[0].lower()
    fields = [('title', ref['title']), ('author', ref.get('authors')), ('howpublished', venue or None),
              ('year', year), ('eprint', ref.get('arxiv')), ('archivePrefix', 'arXiv' if ref.get('arxiv') else None),
              ('url', None if ref.get('arxiv') else ref.get('url'))]
    body = ',\n'.join(f'  {k:<12} = {{{v}}}' for k, v in fields if v)
    return f'@misc{{{first}{year or ""},\n{body}\n}}'


def reference_text(ref: Mapping[str, Any]) -> str:
    """``Title (Authors, Venue)`` with a link, for the card's text."""
    where = ', '.join(str(ref[k]) for k in ('authors', 'venue') if ref.get(k))
    link = ref.get('url') or (f"https://arxiv.org/abs/{ref['arxiv']}" if ref.get('arxiv') else None)
    title = f'[{ref["title"]}]({link})' if link else str(ref['title'])
    return f'{title} ({where})' if where else title


def _conventions(conv: Mapping[str, Any]) -> str:
    return '; '.join(f'{k}: {v}' for k, v in conv.items()) or '—'


def _usage(repo_id: str | None, config: Mapping[str, Any], name: str | None) -> str:
    load = f'hf-hub:{repo_id}' if repo_id else (name or 'local-dir:PATH/TO/THIS/FOLDER')
    method = config['explainer']['method']
    return f"""```python
import zoo
from zoo.apis import load_images

# eval mode; reads config.json + model.safetensors only (never unpickles or runs code)
model = zoo.load('{load}')
# uint8 [B, 3, H, W], resized and cropped as in config.json
batch = load_images(model, ['bird.jpg'])
probs = model(model.data_preprocessor.normalize(batch)).softmax(-1)
print(model.class_names[int(probs.argmax())])
# saliency maps [B, H, W] in [0, 1]
maps = model.explain(batch, method='{method}')
```"""


def _eval_results(results: list[dict[str, Any]], dataset: Mapping[str, Any], dataset_name: str) -> list[Any]:
    from huggingface_hub import EvalResult

    return [EvalResult(task_type='image-classification', dataset_type=str(dataset.get('hf_id') or dataset_name),
                       dataset_name=str(dataset_name), dataset_split=dataset.get('split'),
                       metric_type=m['key'].replace('/', '_'), metric_name=m['name'], metric_value=m['value'],
                       metric_args=dict(m['conventions']) or None) for m in results]


def _architecture_text(config: Mapping[str, Any]) -> str:
    """``'`resnet50` + linear head'`` for a backbone + head classifier; otherwise the exported architecture with
    its backbone when it has one (image-text, prototype or prompt models name their own parts)."""
    args = config.get('model_args') or {}
    backbone = dict(args.get('backbone') or {})
    name = backbone.get('model_name')
    if config.get('architecture') == 'ImageClassifier' and name:
        return f'`{name}` + linear head'
    parts = [f'a `{config.get("architecture", "?")}` model']
    if name:
        parts.append(f'on backbone `{name}`')
    image_text = dict(args.get('image_text') or {})
    towers = dict(image_text.get('model_cfg') or {})
    image = (towers.get('vision_cfg') or {}).get('timm_model_name')
    text = (towers.get('text_cfg') or {}).get('hf_model_name')
    if image_text.get('model_name'):
        parts.append(f'on image-text model `{image_text["model_name"]}`')
    elif image or text:
        parts.append(f'on an image-text model (image tower `{image or "?"}`, text tower `{text or "?"}`)')
    return ' '.join(parts)


def build_card(config: Mapping[str, Any], repo_id: str | None = None, metrics: Any = None,
               sha256: Mapping[str, str] | None = None, figure: str | None = None,
               dataset: Mapping[str, Any] | None = None, license: str | None = None,
               description: str | None = None, *, results: Sequence[Mapping[str, Any]] = (),
               figures: Sequence[str] = (), notes: Sequence[str] = (), paper: Mapping[str, Any] | None = None,
               name: str | None = None, provenance: Mapping[str, Any] | None = None) -> Any:
    """A ``huggingface_hub.ModelCard`` for an exported model's ``config`` (see :mod:`zoo.models.serialization`).

    Args:
        repo_id: the Hub repo (names the model and the usage snippet); name: the zoo name (local zoo, index).
        metrics: results (see :func:`normalize_metrics`); results: results with conventions from
            :func:`zoo.hub.results.find_evaluation`; notes: what was missing (shown under Results).
        dataset: ``{'name', 'hf_id', 'split', 'url', 'terms', 'citation'}`` (a zoo index entry's ``dataset``);
            license; paper: the reference cited when the method names none (an index entry's ``paper``).
        sha256: file → digest, listed for users' own indexes. figure: a saliency PNG in the same folder;
            figures: more PNGs in the folder (``examples_<explainer>.png``, ``curves.png``), shown in order.
        provenance: how a locally trained model was made (config, seed, commit, date, ...).
    """
    from huggingface_hub import ModelCard, ModelCardData

    training = dict(config.get('training') or {})
    backbone = dict(config['model_args'].get('backbone') or {})
    method = str(training.get('method') or 'unknown')
    method_paper = training.get('paper') or None
    cite = method_paper or paper
    model_name = (repo_id or name or 'xzoo-model').split('/')[-1]
    dataset = dict(dataset or {})
    dataset_name = dataset.get('name') or training.get('dataset') or 'unknown'
    all_results = [{**m, 'conventions': dict(m.get('conventions') or {})} for m in normalize_metrics(metrics)]
    all_results += [{**m, 'conventions': dict(m.get('conventions') or {})} for m in results]
    tags = ['xzoo', 'image-classification', 'explainability', 'saliency', method, *training.get('tags', [])]
    if backbone.get('model_name'):
        tags.append(str(backbone['model_name']))
    tags = list(dict.fromkeys(str(t) for t in tags))
    data = ModelCardData(library_name='xzoo', pipeline_tag='image-classification', tags=tags, license=license,
                         model_name=model_name, eval_results=_eval_results(all_results, dataset, dataset_name) or None,
                         datasets=[dataset['hf_id']] if dataset.get('hf_id') else None)
    pre, explainer = config['preprocessing'], config['explainer']
    shown = _METHOD_TEXT.get(method, method)
    how = _METHOD_NOTE.get(method) or (reference_text(method_paper) if method_paper else '')
    lines = [f'# {model_name}', '',
             description or (f'An explainable image classifier exported by xzoo: {_architecture_text(config)}, '
                             f'{config["num_classes"]} classes, trained with **{shown}**'
                             f'{f" ({how})" if how else ""} on {dataset_name}.'), '',
             '## Model details', '', '| | |', '|---|---|',
             f'| method | **{shown}**' + (f' — {reference_text(method_paper)}' if method_paper else '') + ' |']
    if training.get('alignment_heads'):
        lines.append(f'| training-only parts | {", ".join(map(str, training["alignment_heads"]))}'
                     + (f', text branch `{training["text_branch"]}`' if training.get('text_branch') else '')
                     + ' (not exported) |')
    lines += [f'| dataset | {dataset_name}' + (f' ({dataset["split"]} split)' if dataset.get('split') else '')
              + (f'; terms: {dataset["terms"]}' if dataset.get('terms') else '') + ' |',
              f'| architecture | `{config["architecture"]}` (backbone `{backbone.get("type")}` '
              f'`{backbone.get("model_name")}`) |',
              f'| classes | {config["num_classes"]} |',
              f'| input | {pre["input_size"][1]}×{pre["input_size"][2]} px; resize {pre.get("resize")}, crop_pct '
              f'{pre.get("crop_pct")} (timm crop_mode `{pre.get("crop_mode")}`), {pre.get("interpolation")} |',
              f'| mean / std (0-1) | {pre["mean"]} / {pre["std"]} |',
              f'| default explainer | `{explainer["method"]}` on `{explainer.get("target_layer")}` |',
              f'| training recipe | `{training.get("recipe")}` |', '']
    if provenance:
        lines += ['## Provenance', '', '| | |', '|---|---|']
        lines += [f'| {k} | `{v}` |' for k, v in provenance.items() if v not in (None, '', {}, [])]
        lines.append('')
    lines += ['Inference weights only: training-only parts (LICO text branch, alignment heads) are not in '
              '`model.safetensors`. Loading reads JSON and safetensors only; it never unpickles or runs code.', '',
              '## Usage', '', _usage(repo_id, config, name), '', '## Results', '']
    if all_results:
        lines += [f'On {dataset_name}' + (f' ({dataset["split"]} split)' if dataset.get('split') else '') + ':', '',
                  '| metric | value | conventions |', '|---|---|---|']
        lines += [f'| {m["name"]} | {m["value"]:.4g} | {_conventions(m["conventions"])} |' for m in all_results]
    else:
        lines.append('No evaluation results were supplied with this export.')
    lines += [*([''] + [f'- {n}' for n in notes] if notes else []), '']
    pictures = ([figure] if figure else []) + [f for f in figures if f != figure]
    if pictures:
        lines += ['## Saliency', '']
        for pic in pictures:
            caption = _FIGURE_CAPTIONS.get(pic) or (
                f'{pic[len("examples_"):-len(".png")]}: the best and worst test images by its first metric'
                if pic.startswith('examples_') else f'{explainer["method"]} saliency overlays')
            lines += [f'![{caption}]({pic})', '', f'*{caption}.*', '']
    if sha256:
        lines += ['## Files', '', '| file | sha256 |', '|---|---|']
        lines += [f'| `{f}` | `{d}` |' for f, d in sha256.items()]
        lines.append('')
    lines += ['## Citation', '']
    if cite and bibtex(cite):
        what = f'The method ({shown})' if method_paper else 'The architecture'
        lines += [f'{what}: {reference_text(cite)}', '', '```bibtex', bibtex(cite), '```', '']
    data_ref = dataset.get('citation')
    if data_ref or dataset.get('terms'):
        lines.append(f'The dataset, {dataset_name}' + (f': {reference_text(data_ref)}' if data_ref else '')
                     + (f'. Terms: {dataset["terms"]}' if dataset.get('terms') else '') + '.')
        lines += ['', '```bibtex', bibtex(data_ref), '```', ''] if data_ref and bibtex(data_ref) else ['']
    lines += ['This library:', '', '```bibtex', _XZOO_BIBTEX, '```', '']
    return ModelCard(f'---\n{data.to_yaml()}\n---\n\n' + '\n'.join(lines))
