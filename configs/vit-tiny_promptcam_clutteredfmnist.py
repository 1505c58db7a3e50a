# Stage 2 of the embedded Prompt-CAM recipe: the ViT of stage 1 (vit-tiny_baseline_clutteredfmnist.py, same data,
# runtime and backbone settings) frozen, with 10 class prompts at each of its 4 blocks and the shared one-unit head
# on top; only those train.
#   python tools/train.py configs/vit-tiny_baseline_clutteredfmnist.py     # stage 1 first: its checkpoint is read
#   python tools/train.py configs/vit-tiny_promptcam_clutteredfmnist.py
# The paper's SGD at lr 0.005 runs 130 epochs. For a CPU budget of 6 epochs this recipe uses AdamW (lr 5e-3, the
# paper's weight decay 0.001, gradient clipping): in short pilots SGD learned nothing at lr 0.05 and diverged at
# 0.15 and above (see docs/prompt_cam.md).
_base_ = ['./vit-tiny_baseline_clutteredfmnist.py']

# the last checkpoint of stage 1 (its work_dir and max_epochs); --cfg-options model.backbone_checkpoint=... to change
stage1_checkpoint = 'work_dirs/vit-tiny_baseline_clutteredfmnist/epoch_2.pth'

model = dict(
    _delete_=True,
    type='PromptCAMViT',
    backbone={{_base_.vit}},
    num_classes=10,
    prompt_dropout=0.1,
    backbone_checkpoint=stage1_checkpoint,
    data_preprocessor=dict(type='ClsDataPreprocessor', mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
)

# the prompts train on 5,000 of stage 1's 20,000 training images (6 epochs, 942 steps)
train_dataloader = dict(dataset=dict(num_samples=5000))

optim_wrapper = dict(_delete_=True, optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.001),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.05, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=6, T_max=5, eta_min=1e-6, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=6)
default_hooks = dict(checkpoint=dict(interval=6, max_keep_ckpts=1))
