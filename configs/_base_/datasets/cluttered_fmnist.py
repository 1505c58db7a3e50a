# ClutteredFashionMNIST: real Fashion-MNIST items on CC0 textures (128 px), exact boxes and masks.
# train and val come from Fashion-MNIST's training items (disjoint: val is a seeded 10 % hold-out), test from its
# test items. Checkpoints are selected on val (the recipes' save_best); results are reported on test.
dataset_type = 'ClutteredFashionMNIST'

train_pipeline = [dict(type='RandomHorizontalFlip', p=0.5), dict(type='PackInputs')]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, split='train', num_samples=1536, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='val', num_samples=500, pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

test_dataloader = dict(
    batch_size=64,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, split='test', num_samples=1000, pipeline=test_pipeline),
)
test_evaluator = val_evaluator
