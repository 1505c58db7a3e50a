# LICO preset "official code": what github.com/ymLeiFDU/LICO (HEAD 12fee2a, Oct 2024) runs, minus its crashes and
# indexing bugs (docs/lico.md lists each difference from the paper, the switch that controls it and why).
#   text side : CLIP ViT-B/32 text tower with OpenAI weights, TRAINABLE (the code never freezes it); 12 copies of a
#               12-token generic context, each copy rolled by 1 (so all start identical), class name at the end.
#   manifold  : alpha = 10, softmax(+d / tau), L2-normalised pooled image features vs the EOT feature of copy 0,
#               learnable tau initialised at log(1/0.07) and used as a divisor; under distributed training the
#               global batch (gather with gradient: the code runs one process with batch 128).
#   OT        : beta = 1, channel maps vs the 12 copies' EOT features projected to H*W, eps 0.1, <= 100 iterations,
#               WITHOUT gradient (the code wraps it in torch.no_grad(): logged, trains nothing).
#   optimiser : SGD lr 0.1, momentum 0.9, wd 5e-4 on every parameter (CLIP included), cosine per epoch, EMA 0.999
#               (the code always evaluates the EMA model).
# Use it as lico_paper.py (the keys are prefixed 'lico_'):
#   model = dict(text_branch={{_base_.lico_text_branch}}, alignment_heads={{_base_.lico_alignment_heads}},
#                alignment_defaults=dict(spatial_size=H * W))
#   custom_hooks = [dict(type='ClassNamesHook'), dict(type='ExactResumeHook'), *lico_custom_hooks]   (EMA below)
lico_text_encoder = dict(type='OpenCLIPTextEncoder', model_name='ViT-B-32', pretrained='openai', frozen=False)
lico_prompt = dict(type='RolledPromptLearner', n_ctx=12, init_std=0.02, class_position='end', shuffle=False,
                   n_variants=12, distinct_rolls=False)
lico_text_branch = dict(type='LICOTextBranch', encoder=lico_text_encoder, prompt=lico_prompt, suffix='.')

lico_manifold_head = dict(type='ManifoldAlignmentHead', weight=10.0, sign=1, normalize=True,
                          temperature_init=2.659260036932778,  # log(1 / 0.07)
                          learn_temperature=True, temperature_mode='divide', image_feature='pooled', variant=0,
                          gather=True)
lico_ot_head = dict(type='OTAlignmentHead', weight=1.0, eps=0.1, max_iter=100, tol=1e-6, grad=False,
                    text_points='eot_variants', hidden_dim=512, dropout=0.5, solver='native')
lico_alignment_heads = [lico_manifold_head, lico_ot_head]

lico_optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False))
lico_param_scheduler = [
    # CosineAnnealingLR(T_max=epochs) stepped per epoch; no `end`/T_max: both follow the recipe's max_epochs
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0),
]
# the code's EMA: ema = 0.999 * ema + 0.001 * param, buffers copied; and each LICO term's share of the backbone's
# gradient norm, logged every 50 iterations (zoo/engine/grad_share.py)
lico_custom_hooks = [dict(type='EMAHook', momentum=0.001, update_buffers=False),
                     dict(type='GradientShareHook', interval=50)]
