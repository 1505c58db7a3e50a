# A short schedule for the CPU demo: AdamW, linear warm-up then cosine, one epoch, validation at the end.
# The cosine has no `end`: mmengine ends it at train_cfg.max_epochs, so `--cfg-options train_cfg.max_epochs=N`
# alone gives an N-epoch cosine.
optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
