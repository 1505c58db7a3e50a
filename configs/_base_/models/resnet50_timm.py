# timm ResNet-50 (ImageNet weights from the Hugging Face Hub) + linear head.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='TimmBackbone', model_name='resnet50', pretrained=True),
    head=dict(type='LinearClsHead', num_classes=1000, loss=dict(type='CrossEntropyLoss')),
    # ImageNet mean/std in 0-255 (None would take them from timm's pretrained config)
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
)
