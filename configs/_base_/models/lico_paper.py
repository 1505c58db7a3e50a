# LICO preset "paper": LICO as the paper describes it (docs/lico.md lists every difference from the released code,
# the switch that controls it and why this default).
#   text side : CLIP ViT-B/32 text tower with OpenAI weights, FROZEN (paper Fig. 2); one learnable 12-token context
#               shared by all classes, N(0, 0.02^2), class name at the end, shuffled every step (both reproductions).
#   manifold  : alpha = 10, softmax(-d / tau) (the paper's Eq. 1 as reproduction 1 reads it), L2-normalised
#               features, learnable tau initialised at log(1/0.07) and used as a divisor.
#   OT        : beta = 1, channel maps vs the prompt's per-token features projected to H*W (the paper's figure:
#               g(t_i) -> h(.)), eps 0.1, <= 100 log-domain Sinkhorn iterations, WITH gradient.
#   optimiser : SGD lr 0.03, momentum 0.9, wd 1e-4, per-step lr * cos(7 pi k / 16 K) (both reproductions).
# Backbone-agnostic: the keys are prefixed 'lico_' so a recipe can list this file next to its own bases and add
#   model = dict(text_branch={{_base_.lico_text_branch}}, alignment_heads={{_base_.lico_alignment_heads}},
#                alignment_defaults=dict(spatial_size=H * W))   # the backbone's last feature map at the recipe's size
# and, for the paper's schedule, optim_wrapper={{_base_.lico_optim_wrapper}} etc. (end = the recipe's max_epochs).
lico_text_encoder = dict(type='OpenCLIPTextEncoder', model_name='ViT-B-32', pretrained='openai', frozen=True)
lico_prompt = dict(type='SharedPromptLearner', n_ctx=12, init_std=0.02, class_position='end', shuffle=True)
lico_text_branch = dict(type='LICOTextBranch', encoder=lico_text_encoder, prompt=lico_prompt, suffix='.')

lico_manifold_head = dict(type='ManifoldAlignmentHead', weight=10.0, sign=-1, normalize=True,
                          temperature_init=2.659260036932778,  # log(1 / 0.07)
                          learn_temperature=True, temperature_mode='divide', image_feature='pooled')
lico_ot_head = dict(type='OTAlignmentHead', weight=1.0, eps=0.1, max_iter=100, tol=1e-6, grad=True,
                    text_points='per_token', hidden_dim=512, dropout=0.5, solver='native')
lico_alignment_heads = [lico_manifold_head, lico_ot_head]

lico_optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.03, momentum=0.9, weight_decay=1e-4, nesterov=False))
lico_param_scheduler = [
    # per-iteration lr * cos(7 pi k / 16 K); set end to the recipe's max_epochs
    dict(type='FixMatchCosineLR', by_epoch=True, begin=0, end=200, convert_to_iter_based=True),
]
lico_custom_hooks = []
