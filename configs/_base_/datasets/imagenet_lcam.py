# ImageNet for L-CAM (the official data_loader): resize the shorter side to 256, random 224 crop + flip for
# training; resize 256 + centre crop 224 for testing. Layout: zoo.datasets.ImageNetFolder (docs/lcam.md):
#   data/imagenet/train/<wnid>/*.JPEG and data/imagenet/val/<wnid>/*.JPEG
# The paper evaluates on 2000 validation images (bmezaris/L-CAM datalist/ILSVRC/Evaluation_2000.txt, "<file> <label>"
# lines naming the flat official validation folder): put that folder at data/imagenet/val_flat and pass
#   --cfg-options test_dataloader.dataset.split=val_flat test_dataloader.dataset.ann_file=Evaluation_2000.txt
dataset_type = 'ImageNetFolder'
data_root = 'data/imagenet'

train_pipeline = [
    dict(type='Resize', size=256),
    dict(type='RandomCrop', size=224),
    dict(type='RandomHorizontalFlip', p=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='Resize', size=256),
    dict(type='CenterCrop', size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val', pipeline=test_pipeline),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
