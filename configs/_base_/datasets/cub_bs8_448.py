# CUB-200-2011 at 448 px, batch 8 per process (mmpretrain's cub_bs8_448 recipe, torchvision v2 transforms).
# train/val divide the official training split class by class (a seeded 10 % hold-out, ~600 images; CUB200's
# val_fraction and split_seed); test is the official test split. Select checkpoints on val, report on test.
dataset_type = 'CUB200'
data_root = 'data/CUB_200_2011'

train_pipeline = [
    dict(type='Resize', size=(510, 510)),
    dict(type='RandomCrop', size=448),
    dict(type='RandomHorizontalFlip', p=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', size=(510, 510)),
    dict(type='CenterCrop', size=448),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
)
test_evaluator = val_evaluator
