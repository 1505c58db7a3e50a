# L-CAM's official optimiser (bmezaris/L-CAM, my_optim.get_finetune_optimizer and reduce_lr): SGD with Nesterov
# momentum 0.9 and weight decay 5e-4, lr 1e-4 with biases at 2x (paramwise bias_lr_mult), lr x 0.95 at the start of
# epochs 1 to 12, 26 epochs (batch 64). Only the attention module has gradients: the frozen classifier's
# parameters join no update.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=1e-4, momentum=0.9, weight_decay=5e-4, nesterov=True),
    paramwise_cfg=dict(bias_lr_mult=2.0),
)
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=list(range(1, 13)), gamma=0.95)]

train_cfg = dict(by_epoch=True, max_epochs=26)
test_cfg = dict()
