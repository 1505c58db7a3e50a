# Prompt-CAM on CUB-200-2011 as the paper's official configuration (Imageomics/Prompt_CAM,
# experiment/config/prompt_cam/dino/cub/args.yaml): a frozen DINO ViT-B/16 with 200 class prompts at every block,
# prompt dropout 0.1, drop-path 0.1 in the frozen ViT, batch 16, SGD lr 0.005 (momentum 0.9, weight decay 0.001),
# 130 epochs with 20 warm-up epochs, cosine to 1e-6. Needs CUB (data/CUB_200_2011) and the timm DINO weights
# (vit_base_patch16_224.dino, downloaded from the Hugging Face Hub).
#   python tools/train.py configs/vit-b16-dino_promptcam_cub.py
# Differences from the official code, each on purpose (see docs/prompt_cam.md):
#   - warm-up: mmengine's LinearLR from lr/20 at epoch 0 (the code's timm scheduler starts at 0, so its first epoch
#     learns nothing); the cosine then restarts from lr at epoch 20, where timm's non-prefixed cosine is at 0.94 lr;
#   - mean/std: 0.5/0.5 as the official code (timm's Inception constants), not the ImageNet mean/std of DINO's
#     timm config; set model.data_preprocessor.mean/std to [123.675, 116.28, 103.53]/[58.395, 57.12, 57.375] for it.
_base_ = ['./_base_/default_runtime.py']

dataset_type = 'CUB200'
data_root = 'data/CUB_200_2011'
train_pipeline = [
    dict(type='Resize', size=(240, 240)),
    dict(type='RandomCrop', size=224),
    dict(type='RandomHorizontalFlip', p=0.5),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='Resize', size=(224, 224)), dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='PromptCAMViT',
    backbone=dict(type='TimmBackbone', model_name='vit_base_patch16_224.dino', pretrained=True, drop_path_rate=0.1),
    num_classes=200,
    prompt_dropout=0.1,
    prompt_init='xavier_uniform',
    backbone_train_mode=True,  # the official code trains with the whole model in train mode (drop-path acts)
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
)

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=0.001))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0, end=20),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=20, end=130, T_max=110, eta_min=1e-6),
]
train_cfg = dict(by_epoch=True, max_epochs=130, val_interval=10)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2))
