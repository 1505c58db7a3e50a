# L-CAM-Img (Gkartzonika, Gkalelis & Mezaris, ECCV 2022 workshops) on a frozen ImageNet ResNet-50: the paper's
# setting. The classifier is torchvision's ResNet-50 (timm `resnet50.tv_in1k`, the weights L-CAM used); its weights
# come from `classifier_checkpoint`, timm-format weights of the whole model (fc included), which docs/lcam.md shows
# how to write once:
#   python -c "import timm; from safetensors.torch import save_file; save_file(timm.create_model(
#       'resnet50.tv_in1k', pretrained=True).state_dict(), 'data/weights/resnet50_tv_in1k.safetensors')"
# Data: ImageNet in data/imagenet (configs/_base_/datasets/imagenet_lcam.py). Schedule: the official optimiser,
# 26 epochs at batch 64. See docs/lcam.md.
_base_ = [
    './_base_/datasets/imagenet_lcam.py',
    './_base_/schedules/lcam_official.py',
    './_base_/default_runtime.py',
]

model = dict(
    type='LCAMClassifier',
    variant='img',
    classifier=dict(
        type='ImageClassifier',
        backbone=dict(type='TimmBackbone', model_name='resnet50.tv_in1k', pretrained=False),
        head=dict(type='LinearClsHead', num_classes=1000),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375]),
    ),
    classifier_checkpoint='data/weights/resnet50_tv_in1k.safetensors',
)

default_hooks = dict(logger=dict(interval=40), checkpoint=dict(interval=1, max_keep_ckpts=3))
