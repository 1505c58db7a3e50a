# Baseline: timm ResNet-50 (ImageNet-pretrained) fine-tuned on CUB-200-2011 at 448 px, cross-entropy only.
# Its LICO twin is configs/resnet50_lico_cub.py (identical in everything else).
_base_ = [
    './_base_/models/resnet50_timm.py',
    './_base_/datasets/cub_bs8_448.py',
    './_base_/schedules/cub_bs64.py',
    './_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=200))
# select the checkpoint on the validation split (carved from the official training split; test stays unseen)
default_hooks = dict(checkpoint=dict(save_best='accuracy/top1', rule='greater'))
