# ProtoPNet on CUB-200-2011 as in the papers: ImageNet DenseNet-121 (timm), 224 px, 2,000 prototypes (10 per class)
# of 128 channels, regular add-on layers, log similarity, CE + 0.8 Clst - 0.08 Sep + 1e-4 L1 (ProtoPNet defaults),
# and the official schedule (settings.py / main.py): 5 warm-up epochs, joint epochs with the StepLR(5, 0.1) of the
# joint optimizer, a push every 10 epochs followed by 20 last-layer epochs; the 3rd push (epoch 30) is the model that
# "Explaining Prototypes" (Nauta et al.) analyses. Needs CUB: set data_root (see docs/getting_started.md).
#
# Differences from the official recipe (documented in docs/prototypes.md): the official images are cropped to the
# bird's bounding box and augmented offline 30x (rotation, skew, shear, flips); here the whole image is resized to
# 224 x 224 and augmented online, and each epoch goes 30 times over the training set (RepeatDataset) so that an epoch
# has as many steps as an official one. Batch 10 per process: 8 processes give the official 80.
_base_ = ['./_base_/default_runtime.py']

data_root = 'data/CUB_200_2011'
test_pipeline = [dict(type='Resize', size=(224, 224)), dict(type='PackInputs')]
train_pipeline = [
    dict(type='Resize', size=(224, 224)),
    dict(type='RandomAffine', degrees=15, shear=10),
    dict(type='RandomPerspective', distortion_scale=0.2, p=0.5),
    dict(type='RandomHorizontalFlip', p=0.5),
    dict(type='PackInputs'),
]

model = dict(
    type='ProtoPNet',
    num_classes=200,
    prototypes_per_class=10,
    prototype_dim=128,
    add_on='regular',
    backbone=dict(type='TimmBackbone', model_name='densenet121', pretrained=True),
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
)

train_dataloader = dict(
    batch_size=10,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='RepeatDataset', times=30, dataset=dict(type='CUB200', data_root=data_root, split='train',
                                                               pipeline=train_pipeline)),
)
push_dataloader = dict(
    batch_size=75,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CUB200', data_root=data_root, split='train', pipeline=test_pipeline),
)
val_dataloader = dict(
    batch_size=100,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='CUB200', data_root=data_root, split='test', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

# the official learning rates (features 1e-4, add-on and prototypes 3e-3, last layer 1e-4) through lr_mult of one
# Adam; weight decay 1e-3 on the backbone and add-on layers only
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=3e-3, weight_decay=1e-3),
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=1e-4 / 3e-3),
        'prototype_vectors': dict(decay_mult=0.0),
        'last_layer': dict(lr_mult=1e-4 / 3e-3, decay_mult=0.0),
    }),
)
param_scheduler = []
auto_scale_lr = dict(base_batch_size=80, enable=False)

# official epochs 0-4 warm, 5-10 joint, push; 20 last-layer; 11-20 joint, push; 20 last-layer; 21-30 joint, push;
# 20 last-layer: 91 epochs
stages = [
    dict(stage='warm', epochs=5), dict(stage='joint', epochs=6), dict(stage='push'),
    dict(stage='last_layer', epochs=20),
    dict(stage='joint', epochs=10), dict(stage='push'), dict(stage='last_layer', epochs=20),
    dict(stage='joint', epochs=10), dict(stage='push'), dict(stage='last_layer', epochs=20),
]
train_cfg = dict(by_epoch=True, max_epochs=91, val_interval=1)
val_cfg = dict()
test_cfg = dict()

custom_hooks = [
    dict(type='ClassNamesHook'),
    dict(type='ExactResumeHook'),
    dict(type='ProtoPNetStages', stages=stages, push_dataloader=push_dataloader, joint_lr_step=5,
         joint_lr_gamma=0.1, progress=False),
]
# stages freeze parts of the model between epochs: DDP must tolerate parameters without gradient
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=3, save_best='accuracy/top1', rule='greater'))
