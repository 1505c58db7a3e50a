# LICO twin of resnet50_baseline_cub.py: the same ResNet-50 (ImageNet-pretrained), data (train / val carved from
# the official training split / test), 448-px pipeline, schedule and runtime, plus LICO's text branch and alignment
# heads from the lico_paper preset (frozen CLIP ViT-B/32 text tower with OpenAI weights, 12 learnable context tokens
# after the class name, CE + 10 * manifold + 1 * OT) and the hook that logs each term's share of the backbone's
# gradient. The CUB-200 class names come from the dataset (ClassNamesHook). See docs/lico.md.
_base_ = [
    './resnet50_baseline_cub.py',
    './_base_/models/lico_paper.py',
]

model = dict(
    text_branch={{_base_.lico_text_branch}},
    alignment_heads={{_base_.lico_alignment_heads}},
    # the OT projection's width: ResNet-50's last feature map at 448 px is 14 x 14
    alignment_defaults=dict(spatial_size=14 * 14),
)
# the runtime's hooks + GradientShareHook (grad_share/{cls,mm,ot} in the log every 50 iterations)
custom_hooks = [dict(type='ClassNamesHook'), dict(type='ExactResumeHook'), dict(type='GradientShareHook', interval=50)]
