# Stage 1 of the embedded Prompt-CAM recipe: a small timm ViT (vit_tiny_patch16_224 narrowed to 128 channels, 4 blocks
# of 4 heads, 16-px patches on the 128-px canvas: an 8 x 8 patch grid) trained as a plain ImageClassifier on
# ClutteredFashionMNIST. No ViT weights exist offline, so it starts from random init; stage 2
# (vit-tiny_promptcam_clutteredfmnist.py) freezes it and trains Prompt-CAM's class prompts on top.
#   python tools/train.py configs/vit-tiny_baseline_clutteredfmnist.py
# Sized for a 2-core CPU: 2 epochs over 20,000 rendered training images (1,250 steps), about 21 min on a busy shared
# 2-core machine with one torch thread (OMP_NUM_THREADS=1); see docs/prompt_cam.md for its accuracy.
_base_ = [
    './_base_/datasets/cluttered_fmnist.py',
    './_base_/default_runtime.py',
]

vit = dict(type='TimmBackbone', model_name='vit_tiny_patch16_224', pretrained=False, img_size=128, embed_dim=128,
           depth=4, num_heads=4)
model = dict(
    type='ImageClassifier',
    backbone=vit,
    head=dict(type='LinearClsHead', num_classes=10),
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
)

train_dataloader = dict(batch_size=32, dataset=dict(num_samples=20000))

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05), clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=2, T_max=1, eta_min=1e-5,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=2, max_keep_ckpts=1))
