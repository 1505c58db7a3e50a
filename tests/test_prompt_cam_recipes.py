"""Prompt-CAM recipes: the paper's CUB configuration, and the embedded two-stage recipe (a ViT trained as a plain
classifier, then frozen under Prompt-CAM) run end to end with the real Runner on a shrunken copy."""
from __future__ import annotations

import pytest
import torch

from zoo.apis.config import load_config

from .conftest import ROOT

CUB = ROOT / 'configs/vit-b16-dino_promptcam_cub.py'
STAGE1 = ROOT / 'configs/vit-tiny_baseline_clutteredfmnist.py'
STAGE2 = ROOT / 'configs/vit-tiny_promptcam_clutteredfmnist.py'


def test_cub_recipe_is_the_papers_configuration():
    cfg = load_config(CUB)
    model = cfg.model
    assert model.type == 'PromptCAMViT' and model.num_classes == 200 and model.prompt_dropout == 0.1
    assert model.backbone.model_name == 'vit_base_patch16_224.dino' and model.backbone.pretrained is True
    assert model.backbone.drop_path_rate == 0.1 and model.prompt_init == 'xavier_uniform'
    assert cfg.train_dataloader.batch_size == 16 and cfg.train_dataloader.dataset.type == 'CUB200'
    assert cfg.optim_wrapper.optimizer == dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=0.001)
    warmup, cosine = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == 130 and warmup.end == 20 == cosine.begin and cosine.end == 130
    assert cosine.eta_min == 1e-6 and cosine.T_max == 110
    assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline][:1] == ['Resize']


def test_stage2_freezes_the_stage1_vit_and_names_its_checkpoint():
    one, two = load_config(STAGE1), load_config(STAGE2)
    assert one.model.type == 'ImageClassifier' and two.model.type == 'PromptCAMViT'
    assert two.model.backbone == one.model.backbone  # the same ViT
    assert two.model.num_classes == one.model.head.num_classes == 10
    expected = f'work_dirs/{STAGE1.stem}/epoch_{one.train_cfg.max_epochs}.pth'  # tools/train.py's default work_dir
    assert two.model.backbone_checkpoint == expected
    same = {k: v for k, v in one.train_dataloader.dataset.items() if k != 'num_samples'}
    assert {k: v for k, v in two.train_dataloader.dataset.items() if k != 'num_samples'} == same  # a subset
    assert two.train_dataloader.dataset.num_samples <= one.train_dataloader.dataset.num_samples
    assert two.test_dataloader.dataset.num_samples == 1000


@pytest.mark.slow
def test_two_stage_recipe_end_to_end(fashion_mnist_dir, tmp_path):
    import zoo
    from zoo.apis.inference import init_model
    from zoo.apis.training import train

    small = ['train_dataloader.dataset.num_samples=8', '+train_dataloader.dataset.canvas_size=32',
             '+train_dataloader.dataset.object_size=[16,24]', '+train_dataloader.dataset.clutter_size=[6,10]',
             'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False', 'val_dataloader=None', 'val_cfg=None', 'val_evaluator=None',
             'train_cfg.max_epochs=1', 'model.backbone.img_size=32', 'model.backbone.embed_dim=32',
             'model.backbone.num_heads=2', 'model.backbone.depth=2']
    train(str(STAGE1), work_dir=str(tmp_path / 'one'), cfg_options=small)
    stage1 = tmp_path / 'one' / 'epoch_1.pth'
    runner = train(str(STAGE2), work_dir=str(tmp_path / 'two'),
                   cfg_options=small + [f'model.backbone_checkpoint={stage1}'])
    first = torch.load(stage1, map_location='cpu', weights_only=False)
    second = torch.load(tmp_path / 'two' / 'epoch_1.pth', map_location='cpu', weights_only=False)
    vit = {k: v for k, v in first['state_dict'].items() if k.startswith('backbone.')}
    assert vit and all(torch.equal(second['state_dict'][k], v) for k, v in vit.items())  # frozen through training
    names = [n for n, _ in runner.model.named_parameters()]
    moved = {names[i] for i in second['optimizer']['state']}  # the optimizer stepped these only
    assert moved == {'prompts', 'head.weight', 'head.bias'}

    model = init_model(str(STAGE2), str(tmp_path / 'two' / 'epoch_1.pth'),
                       cfg_options=small[-4:] + ['+test_dataloader.dataset.canvas_size=32'])
    assert model.preprocessing.input_size == (3, 32, 32) and model.class_names[0] == 'T-shirt/top'
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    traits = model.explain(pixels, method='native', top_traits=2)
    assert len(traits.records[0]['traits']) == 2
    model.save_pretrained(tmp_path / 'export')
    loaded = zoo.load(f'local-dir:{tmp_path / "export"}')
    assert torch.equal(model(model.prepare(pixels)), loaded(loaded.prepare(pixels)))
    assert torch.equal(model.explain(pixels, method='promptcam', top_traits=1),
                       loaded.explain(pixels, method='promptcam', top_traits=1))
