# Demo baseline: ImageNet EfficientNet-Lite0 fine-tuned on ClutteredFashionMNIST for one short epoch on CPU.
# `make demo` trains it (and its LICO twin) and evaluates both.
_base_ = [
    './_base_/models/efficientnetlite0_timm.py',
    './_base_/datasets/cluttered_fmnist.py',
    './_base_/schedules/demo_1epoch.py',
    './_base_/default_runtime.py',
]

# checkpoints: the last one, and the best on the validation split (best_accuracy_top1_epoch_N.pth)
default_hooks = dict(logger=dict(interval=10),
                     checkpoint=dict(interval=1, max_keep_ckpts=1, save_best='accuracy/top1', rule='greater'))
