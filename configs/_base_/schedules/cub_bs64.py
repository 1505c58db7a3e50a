# mmpretrain's CUB schedule: SGD (nesterov) lr 0.01 for a total batch of 64, 5 warm-up epochs, cosine to 100.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005, nesterov=True))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=95, by_epoch=True, begin=5, end=100),
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr is for 8 processes x 8 images; `--cfg-options auto_scale_lr.enable=True` rescales it to your batch
auto_scale_lr = dict(base_batch_size=64, enable=False)
