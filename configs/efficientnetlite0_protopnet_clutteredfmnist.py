# ProtoPNet (Chen et al., NeurIPS 2019) on ClutteredFashionMNIST, sized for a CPU: the baseline's ImageNet
# EfficientNet-Lite0 (output stride 16: an 8 x 8 latent grid on the 128-px canvas; stem and first four block stages
# frozen), 10 prototypes per class (100), 128-d, the paper's loss. Stages (ProtoPNetStages): warm-up 1 epoch, joint
# 5 epochs, push, last layer 2 epochs (8 epochs of 1,536 images). Its baseline is
# efficientnetlite0_baseline_clutteredfmnist.py (one epoch).
# Deviations from the paper's CUB schedule, for a few CPU epochs: backbone and last-layer learning rates 1e-3 (paper:
# 1e-4), one push, two last-layer epochs (paper: 20). See docs/prototypes.md.
_base_ = [
    './_base_/datasets/cluttered_fmnist.py',
    './_base_/default_runtime.py',
]

model = dict(
    type='ProtoPNet',
    num_classes=10,
    prototypes_per_class=10,
    prototype_dim=128,
    backbone=dict(type='TimmBackbone', model_name='tf_efficientnet_lite0',
                  pretrained='data/weights/tf_efficientnet_lite0.safetensors', output_stride=16,
                  freeze_until='blocks.4'),
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    source_patch_size=32,
)

# the push searches the training images through the test pipeline (no flip), in a fixed order
push_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ClutteredFashionMNIST', split='train', num_samples=1536, pipeline=[dict(type='PackInputs')]),
)

# one Adam, the paper's per-part rates through lr_mult (base 3e-3: add-on layers and prototypes); weight decay 1e-3
# on the backbone and add-on layers only, as the official optimizers
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3e-3, weight_decay=1e-3),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=1e-3 / 3e-3),
        'prototype_vectors': dict(decay_mult=0.0),
        'last_layer': dict(lr_mult=1e-3 / 3e-3, decay_mult=0.0),
    }),
)
param_scheduler = []

train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=8)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [
    dict(type='ClassNamesHook'),
    dict(type='ExactResumeHook'),
    dict(type='ProtoPNetStages', push_dataloader=push_dataloader, stages=[
        dict(stage='warm', epochs=1),
        dict(stage='joint', epochs=5),
        dict(stage='push'),
        dict(stage='last_layer', epochs=2),
    ]),
]
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=3))
