"""Model cards that tell the truth: the trained method (text, tags, config.json), the measured results as EvalResults
equal to metrics.json / results.json with their conventions, the figures, the papers; exports without evaluation
outputs say so; a dry run never silently overwrites an export."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

import zoo
from tests.conftest import run_tool
from tests.demo_fixtures import NAMES, DemoRun, demo_run  # noqa: F401
from tests.hub_fixtures import trained  # noqa: F401


def _folder(run: DemoRun, name: str) -> Path:
    return run.zoo_dir / 'models' / NAMES[name]


def _expected(work_dir: str | Path) -> dict[str, float]:
    """metric_type → value from the work dir's metrics.json (accuracy) and explain/results.json (explanations)."""
    metrics = json.loads((Path(work_dir) / 'metrics.json').read_text())['metrics']
    report = json.loads((Path(work_dir) / 'explain' / 'results.json').read_text())
    out = {k.replace('/', '_'): v for k, v in metrics.items() if k.startswith('accuracy/')}
    for ename, per in report['results'].items():
        out.update({f'explain_{ename}_{m}': e['aggregate'] for m, e in per.items()})
    return out


def test_lico_card_says_lico_shows_results_and_figures_and_cites_lei(demo_run: DemoRun):  # noqa: F811
    folder = _folder(demo_run, 'lico')
    card = ModelCard.load(folder / 'README.md')
    config = json.loads((folder / 'config.json').read_text())
    assert config['training']['method'] == 'lico' and config['training']['paper']['arxiv'] == '2310.09821'
    assert 'lico' in card.data.tags and 'baseline' not in card.data.tags
    assert 'trained with **LICO**' in card.text and '| method | **LICO**' in card.text
    assert '@inproceedings{lei2023lico' in card.text and 'Lei, Yiming' in card.text
    for png in ('examples_gradcam.png', 'curves.png'):
        assert (folder / png).stat().st_size > 0 and f']({png})' in card.text
    types = {r.metric_type for r in card.data.eval_results}
    assert {'accuracy_top1', 'accuracy_top2', 'explain_gradcam_insertion', 'explain_gradcam_deletion',
            'explain_gradcam_pointing_game'} <= types


def test_baseline_card_says_baseline(demo_run: DemoRun):  # noqa: F811
    folder = _folder(demo_run, 'baseline')
    card = ModelCard.load(folder / 'README.md')
    assert json.loads((folder / 'config.json').read_text())['training']['method'] == 'baseline'
    assert 'baseline' in card.data.tags and 'lico' not in card.data.tags
    assert 'trained with **baseline**' in card.text and 'Lei' not in card.text


@pytest.mark.parametrize('name', ['baseline', 'lico'])
def test_eval_results_equal_metrics_json_and_results_json(demo_run: DemoRun, name):  # noqa: F811
    card = ModelCard.load(_folder(demo_run, name) / 'README.md')
    got = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert got == pytest.approx(_expected(demo_run.result(name)['work_dir']), abs=1e-12)
    ins = next(r for r in card.data.eval_results if r.metric_type == 'explain_gradcam_insertion')
    args = ins.metric_args
    assert args['explainer'] == 'GradCAM' and args['target_layer'] == 'backbone.model.layer4'
    assert (args['substrate'], args['step'], args['scored_class'], args['n_images']) == ('blur', 512, 'predicted', 6)
    assert args['explain_class'] == 'predicted' and args['subset_seed'] == 0
    pg = next(r for r in card.data.eval_results if r.metric_type == 'explain_gradcam_pointing_game')
    assert pg.metric_args['tolerance'] == 4 and pg.metric_args['metric'] == 'PointingGame'


def test_push_dry_run_of_the_demo_work_dir(demo_run: DemoRun, tmp_path):  # noqa: F811
    from zoo.hub.publish import push_to_hub

    work = demo_run.result('lico')['work_dir']
    res = push_to_hub(work, 'me/lico-demo', dry_run=tmp_path / 'out')
    assert {'examples_gradcam.png', 'curves.png', 'README.md'} <= set(res.files) and res.notes == []
    card = ModelCard.load(tmp_path / 'out' / 'README.md')
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == pytest.approx(_expected(work))
    assert "zoo.load('hf-hub:me/lico-demo')" in card.text
    res = push_to_hub(work, 'me/lico-demo', dry_run=tmp_path / 'bare', evaluation=False)
    assert res.results == 0 and 'left out on request' in res.notes[0]
    assert 'examples_gradcam.png' not in res.files and 'No evaluation results' in (tmp_path / 'bare' /
                                                                                 'README.md').read_text()


def test_export_without_evaluation_outputs_says_so_and_dry_run_never_overwrites(trained, tmp_path):  # noqa: F811
    out = tmp_path / 'export'
    proc = run_tool('tools/push_to_hub.py', str(trained), '--repo-id', 'lab/tiny', '--dry-run', str(out),
                    timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'The card reports 0 evaluation result(s). No evaluation outputs in' in proc.stdout
    assert 'No evaluation results were supplied' in (out / 'README.md').read_text()
    assert zoo.load(f'local-dir:{out}').num_classes == 4  # and the export works
    config = (out / 'config.json').read_text()
    again = run_tool('tools/push_to_hub.py', str(trained), '--repo-id', 'lab/tiny', '--dry-run', str(out),
                     timeout=300)
    assert again.returncode == 2 and again.stderr.count('\n') == 1
    assert again.stderr.startswith('error: ') and 'already holds an export' in again.stderr
    assert '--overwrite' in again.stderr
    assert (out / 'config.json').read_text() == config
    forced = run_tool('tools/push_to_hub.py', str(trained), '--repo-id', 'lab/tiny2', '--dry-run', str(out),
                      '--overwrite', timeout=300)
    assert forced.returncode == 0, forced.stderr
    assert "hf-hub:lab/tiny2" in (out / 'README.md').read_text()  # the card was replaced too


def test_card_cites_the_index_paper_and_dataset_with_terms():
    from zoo.hub.card import build_card
    from zoo.hub.index import find_index_entry

    entry = find_index_entry('something-else', 'efficientnetlite0_baseline_clutteredfmnist.py')  # by recipe
    assert entry is not None and entry.name == 'baseline-efficientnetlite0-clutteredfmnist'
    assert find_index_entry(NAMES['lico'], 'tiny_lico.py') is None  # a name never lends another recipe's facts
    config = {'architecture': 'ImageClassifier', 'num_classes': 10, 'model_args': {'backbone': {
        'type': 'TimmBackbone', 'model_name': 'tf_efficientnet_lite0'}}, 'explainer': {'method': 'gradcam'},
        'preprocessing': {'input_size': [3, 128, 128], 'mean': [0.5] * 3, 'std': [0.5] * 3},
        'training': {'method': 'baseline', 'recipe': 'efficientnetlite0_baseline_clutteredfmnist.py'}}
    card = build_card(config, name=entry.name, dataset=entry.dataset, paper=entry.paper, license=entry.license)
    assert 'terms: Fashion-MNIST (MIT) items on CC0 textures' in card.text
    assert 'Fashion-MNIST: a Novel Image Dataset' in card.text and 'eprint       = {1708.07747}' in card.text
    assert 'The architecture: [EfficientNet' in card.text and card.data.license == 'apache-2.0'


def test_comparison_report_adds_confidence_intervals(tmp_path):
    """A ``tools/compare.py`` report (its ``report.json`` layout) adds this model's seed mean and paired difference."""
    from zoo.hub.card import build_card
    from zoo.hub.results import find_evaluation

    def est(mean, low, high, **kw):
        return dict(mean=mean, low=low, high=high, level=0.95, method='crossed', n_seeds=5, n_images=1000, **kw)

    report = tmp_path / 'report.json'
    report.write_text(json.dumps({
        'method': {'name': 'crossed', 'level': 0.95, 'statement': 'two-level (seeds x images) interval'},
        'runs': [{'arm': 'base', 'seed': 0, 'config': '/x/configs/tiny_baseline.py'},
                 {'arm': 'lico', 'seed': 0, 'config': '/x/configs/tiny_lico.py'}],
        'result': {'level': 0.95, 'arms': ['base', 'lico'], 'metrics': {'accuracy/top1': {
            'means': {'base': est(59.2, 58.1, 60.3), 'lico': est(58.5, 56.9, 60.1)},
            'differences': {'lico - base': est(-0.7, -1.5, 0.1, arm='lico', reference='base', p_value=0.09,
                                               p_holm=0.18)}}}}}))
    ev = find_evaluation(None, comparison=report, names=['tiny_lico.py'])
    mean, diff = ev.results
    assert (mean['key'], mean['value']) == ('accuracy/top1/seed_mean', 58.5)
    assert mean['conventions'] == {'ci_level': 0.95, 'ci_low': 56.9, 'ci_high': 60.1, 'n_seeds': 5, 'n_images': 1000,
                                   'method': 'crossed', 'interval': 'two-level (seeds x images) interval'}
    assert (diff['key'], diff['value'], diff['conventions']['p_value']) == ('accuracy/top1/minus_base', -0.7, 0.18)
    config = {'architecture': 'ImageClassifier', 'num_classes': 2, 'model_args': {'backbone': {}},
              'explainer': {'method': 'gradcam'}, 'preprocessing': {'input_size': [3, 8, 8], 'mean': [0.5] * 3,
                                                                      'std': [0.5] * 3}}
    card = ModelCard(str(build_card(config, results=ev.results)))
    first = card.data.eval_results[0]
    assert first.metric_args['ci_low'] == 56.9 and first.metric_name == 'Top-1 accuracy (mean over seeds)'
    assert card.data.eval_results[1].metric_name == 'Top-1 accuracy: lico − base'
    assert find_evaluation(None, comparison=report, names=['nothing.py']).notes[0].endswith('(nothing.py).')
    base = find_evaluation(None, comparison=report, names=['base'])
    assert [r['key'] for r in base.results] == ['accuracy/top1/seed_mean']  # the reference has no difference
    # a run of the comparison (OUT/runs/<arm>/seed_<s>/) finds OUT/report.json by itself
    run = tmp_path / 'runs' / 'lico' / 'seed_0'
    run.mkdir(parents=True)
    data = json.loads(report.read_text())
    data['runs'][1]['work_dir'] = str(run)
    report.write_text(json.dumps(data))
    assert [r['key'] for r in find_evaluation(run).results] == [
        'accuracy/top1/seed_mean', 'accuracy/top1/minus_base']
    assert find_evaluation(tmp_path / 'runs' / 'base' / 'seed_0').results == []  # not a run of that report


def test_card_names_the_parts_of_models_other_than_backbone_plus_head():
    from zoo.hub.card import _architecture_text
    assert _architecture_text({'architecture': 'ImageClassifier',
                               'model_args': {'backbone': {'model_name': 'resnet50'}}}) == '`resnet50` + linear head'
    towers = {'vision_cfg': {'timm_model_name': 'tf_efficientnet_lite0'},
              'text_cfg': {'hf_model_name': 'all-MiniLM-L6-v2'}}
    it = {'architecture': 'CLIPZeroShotClassifier',
          'model_args': {'image_text': {'model_name': None, 'model_cfg': towers}}}
    text = _architecture_text(it)
    assert 'CLIPZeroShotClassifier' in text and 'tf_efficientnet_lite0' in text and 'all-MiniLM-L6-v2' in text
    assert '?' not in text and 'linear head' not in text
    clip = {'architecture': 'CLIPZeroShotClassifier', 'model_args': {'image_text': {'model_name': 'ViT-B-32'}}}
    assert _architecture_text(clip) == 'a `CLIPZeroShotClassifier` model on image-text model `ViT-B-32`'
