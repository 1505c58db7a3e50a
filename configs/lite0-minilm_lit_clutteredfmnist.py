# The offline image-text model of the zoo (entry lit-lite0-minilm-clutteredfmnist): EfficientNet-Lite0 image tower +
# locked all-MiniLM-L6-v2 text tower, trained contrastively on ClutteredFashionMNIST train with captions built from
# the class names, templates, WordNet glosses and the shipped descriptors; evaluated zero-shot (class prompts) on
# 1,000 test images. A few minutes on 2 CPU cores. docs/image_text.md has the numbers and what it can/cannot show.
#   python tools/train.py configs/lite0-minilm_lit_clutteredfmnist.py
#   python tools/test.py configs/lite0-minilm_lit_clutteredfmnist.py \
#       work_dirs/lite0-minilm_lit_clutteredfmnist/epoch_1.pth
_base_ = [
    './_base_/models/lite0-minilm_image_text.py',
    './_base_/datasets/cluttered_fmnist.py',
    './_base_/default_runtime.py',
]

lit_captions = dict(templates='fashion', class_name=True, definitions='fashion_mnist', descriptors='fashion_mnist')

model = dict(
    type='CLIPZeroShotClassifier',
    image_text={{_base_.image_text}},
    num_classes=10,                      # names from the dataset (ClassNamesHook)
    templates='fashion',                 # zero-shot prompts: the caption templates
    # training only: every image paired with a caption of its class; same-class captions count as positives
    contrastive=dict(captions=lit_captions, positives='class'),
)

train_dataloader = dict(batch_size=32, dataset=dict(num_samples=3072))   # 96 steps

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=1))
