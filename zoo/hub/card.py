"""Model cards (the Hub repo's ``README.md``) built with huggingface_hub's ``ModelCard``/``ModelCardData``.

Accuracy and explanation metrics become structured ``EvalResult`` entries (the Hub's ``model-index``), each with
its conventions in ``args``, so a number never travels without the way it was computed.

Example:
    >>> from zoo.hub.card import normalize_metrics
    >>> normalize_metrics({'metrics': {'accuracy/top1': 81.5,
    ...                                'insertion_auc': {'value': 0.61, 'explainer': 'gradcam'}}})
    [{'key': 'accuracy/top1', 'name': 'Top-1 accuracy', 'value': 81.5, 'conventions': {}}, \
{'key': 'insertion_auc', 'name': 'insertion_auc', 'value': 0.61, 'conventions': {'explainer': 'gradcam'}}]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_NAMES = {'accuracy/top1': 'Top-1 accuracy', 'accuracy/top5': 'Top-5 accuracy'}
_XZOO_BIBTEX = """@software{xzoo,
  title  = {xzoo: a model zoo and config registry for explainable image classification},
  url    = {https://github.com/xzoo/xzoo},
  year   = {2026}
}"""
_LICO_BIBTEX = """@inproceedings{lei2023lico,
  title     = {{LICO}: Explainable Models with Language-Image Consistency},
  author    = {Lei, Yiming and others},
  booktitle = {Advances in Neural Information Processing Systems (NeurIPS)},
  year      = {2023},
  eprint    = {2310.09821},
  archivePrefix = {arXiv}
}"""


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


def _usage(repo_id: str | None, config: Mapping[str, Any]) -> str:
    name = f'hf-hub:{repo_id}' if repo_id else 'local-dir:PATH/TO/THIS/FOLDER'
    method = config['explainer']['method']
    return f"""```python
import zoo
from zoo.apis import load_images

# eval mode; reads config.json + model.safetensors only (never unpickles or runs code)
model = zoo.load('{name}')
# uint8 [B, 3, H, W], resized and cropped as in config.json
batch = load_images(model, ['bird.jpg'])
probs = model(model.data_preprocessor.normalize(batch)).softmax(-1)
print(model.class_names[int(probs.argmax())])
# saliency maps [B, H, W] in [0, 1]
maps = model.explain(batch, method='{method}')
```"""

def _conventions(conv: Mapping[str, Any]) -> str:
    return '; '.join(f'{k}: {v}' for k, v in conv.items()) or '—'


def build_card(config: Mapping[str, Any], repo_id: str | None = None, metrics: Any = None,
               sha256: Mapping[str, str] | None = None, figure: str | None = None,
               dataset: Mapping[str, Any] | None = None, license: str | None = None,
               description: str | None = None) -> Any:
    """A ``huggingface_hub.ModelCard`` for an exported model's ``config`` (see :mod:`zoo.models.serialization`).

    Args:
        repo_id: the Hub repo (names the model and the usage snippet).
        metrics: results (see :func:`normalize_metrics`); dataset: ``{'name', 'hf_id', 'split'}`` for them.
        sha256: file → digest, listed for users' own indexes. figure: a saliency PNG in the same folder.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    training = dict(config.get('training') or {})
    backbone = dict(config['model_args'].get('backbone') or {})
    method = training.get('method') or 'baseline'
    model_name = (repo_id or 'xzoo-model').split('/')[-1]
    dataset = dict(dataset or {})
    dataset_name = dataset.get('name') or training.get('dataset') or 'unknown'
    results = normalize_metrics(metrics)
    evals = [EvalResult(task_type='image-classification', dataset_type=str(dataset.get('hf_id') or dataset_name),
                        dataset_name=str(dataset_name), dataset_split=dataset.get('split'),
                        metric_type=m['key'].replace('/', '_'), metric_name=m['name'], metric_value=m['value'],
                        metric_args=m['conventions'] or None) for m in results]
    tags = ['xzoo', 'image-classification', 'explainability', 'saliency', method]
    if backbone.get('model_name'):
        tags.append(str(backbone['model_name']))
    data = ModelCardData(library_name='xzoo', pipeline_tag='image-classification', tags=tags, license=license,
                         model_name=model_name, eval_results=evals or None,
                         datasets=[dataset['hf_id']] if dataset.get('hf_id') else None)
    pre, explainer = config['preprocessing'], config['explainer']
    lines = [f'# {model_name}', '',
             description or (f'An explainable image classifier exported by xzoo: `{backbone.get("model_name", "?")}`'
                             f' + linear head, {config["num_classes"]} classes, trained with **{method}**.'), '',
             '## Model details', '', '| | |', '|---|---|',
             f'| architecture | `{config["architecture"]}` (backbone `{backbone.get("type")}` '
             f'`{backbone.get("model_name")}`) |',
             f'| classes | {config["num_classes"]} |',
             f'| input | {pre["input_size"][1]}×{pre["input_size"][2]} px; resize {pre.get("resize")}, crop_pct '
             f'{pre.get("crop_pct")} (timm crop_mode `{pre.get("crop_mode")}`), {pre.get("interpolation")} |',
             f'| mean / std (0-1) | {pre["mean"]} / {pre["std"]} |',
             f'| default explainer | `{explainer["method"]}` on `{explainer.get("target_layer")}` |',
             f'| training recipe | `{training.get("recipe")}` |', '',
             'Inference weights only: training-only parts (LICO text branch, alignment heads) are not in '
             '`model.safetensors`. Loading reads JSON and safetensors only; it never unpickles or runs code.', '',
             '## Usage', '', _usage(repo_id, config), '']
    lines += ['## Results', '']
    if results:
        lines += ['| metric | value | conventions |', '|---|---|---|']
        lines += [f'| {m["name"]} | {m["value"]:.4g} | {_conventions(m["conventions"])} |' for m in results]
    else:
        lines.append('No evaluation results were supplied with this export.')
    lines.append('')
    if figure:
        lines += ['## Saliency', '', f'![{config["explainer"]["method"]} saliency overlays]({figure})', '']
    if sha256:
        lines += ['## Files', '', '| file | sha256 |', '|---|---|']
        lines += [f'| `{f}` | `{d}` |' for f, d in sha256.items()]
        lines.append('')
    lines += ['## Citation', '', '```bibtex', _XZOO_BIBTEX, '```', '']
    if method == 'lico':
        lines += ['LICO:', '', '```bibtex', _LICO_BIBTEX, '```', '']
    return ModelCard(f'---\n{data.to_yaml()}\n---\n\n' + '\n'.join(lines))
