# Runtime shared by every recipe (mmengine Runner settings).
default_scope = 'zoo'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # mmengine's CheckpointHook with crash-safe files (zoo/engine/checkpoint_hook.py)
    checkpoint=dict(type='AtomicCheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # stop with a clear error when the loss becomes NaN/Inf (zoo/engine/nonfinite.py); None switches it off
    nonfinite_loss=dict(type='NonFiniteLossHook'),
)
# ClassNamesHook: checks that the dataset's classes fit the head and gives the model their names
# ExactResumeHook: random-generator states in checkpoints, so a resumed run equals an uninterrupted one
custom_hooks = [dict(type='ClassNamesHook'), dict(type='ExactResumeHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # tools switch to 'gloo' when no GPU is present
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
# deterministic=True (+ num_workers=0 or persistent_workers=False for epoch-based loops) makes a resumed run
# bit-identical to an uninterrupted one; see docs/getting_started.md "Resuming"
randomness = dict(seed=0, deterministic=False)
