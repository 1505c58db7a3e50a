# L-CAM-Img on the demo classifier: the EfficientNet-Lite0 of efficientnetlite0_baseline_clutteredfmnist.py, frozen,
# explained by an attention module trained on ClutteredFashionMNIST. Train the classifier first:
#   python tools/train.py configs/efficientnetlite0_baseline_clutteredfmnist.py
# then L-CAM on top of its checkpoint (the newest one of its work dir, or --cfg-options
# model.classifier_checkpoint=PATH):
#   python tools/train.py configs/efficientnetlite0_lcam-img_clutteredfmnist.py
# The official optimiser, except the learning rate: lr 1e-4 is tuned for 26 epochs x 20,000 ImageNet iterations;
# three epochs of 48 iterations here need lr 0.05 (docs/lcam.md shows the comparison).
_base_ = [
    './_base_/models/efficientnetlite0_timm.py',  # the classifier of efficientnetlite0_baseline_clutteredfmnist.py
    './_base_/datasets/cluttered_fmnist.py',
    './_base_/schedules/lcam_official.py',
    './_base_/default_runtime.py',
]

model = dict(
    _delete_=True,
    type='LCAMClassifier',
    variant='img',
    classifier={{_base_.model}},
    classifier_checkpoint='work_dirs/efficientnetlite0_baseline_clutteredfmnist',
)

optim_wrapper = dict(optimizer=dict(lr=0.05))
train_cfg = dict(by_epoch=True, max_epochs=3)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[1, 2], gamma=0.95)]
# the classifier is frozen: validating its accuracy during training would repeat one number
val_dataloader = None
val_cfg = None
val_evaluator = None
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=1, max_keep_ckpts=1))
