# ECOR (Rasekh et al., arXiv 2404.12839) on the offline image-text model trained by
# configs/lite0-minilm_lit_clutteredfmnist.py: two learned prompt contexts (Prompt_R shared by every rationale,
# Prompt_{c|R} for the category given a rationale) on the frozen towers, the shipped Fashion-MNIST rationales,
# P(c, r | I) = P(r | I) P(c | r, I); the category marginalises over the 3 most probable rationales.
# Evaluated with top-1 and doubly-right accuracy (RR/RW/WR/WW) on 1,000 test images. docs/ecor.md.
#   python tools/train.py configs/lite0-minilm_ecor_clutteredfmnist.py
#   python tools/test.py configs/lite0-minilm_ecor_clutteredfmnist.py \
#       work_dirs/lite0-minilm_ecor_clutteredfmnist/epoch_1.pth
#   python tools/explain.py configs/lite0-minilm_ecor_clutteredfmnist.py CHECKPOINT IMAGES --method native --out DIR
# The image-text weights come from `lit_checkpoint` (override: --cfg-options model.image_text.pretrained=PATH).
_base_ = ['./lite0-minilm_lit_clutteredfmnist.py']

lit_checkpoint = 'work_dirs/lite0-minilm_lit_clutteredfmnist/epoch_1.pth'

model = dict(
    _delete_=True,
    type='ECOR',
    image_text=dict(type='ImageTextModel', model_cfg={{_base_.image_text.model_cfg}}, pretrained=lit_checkpoint,
                    lock_text=True),
    rationales='fashion_mnist',                                  # 27 rationales over the 10 classes
    rationale_prompt=dict(type='SharedPromptLearner', n_ctx=4),  # Prompt_R: one context for every rationale
    category_prompt=dict(type='SharedPromptLearner', n_ctx=4),   # Prompt_{c|R}: context ⊕ "c, which r"
    condition='rationale',
    top_k=3,
    category_template='{c}, which {r}',
    # training only: each step conditions the category on at most 4 distinct right rationales (text-tower cost)
    max_conditions=4,
)

train_dataloader = dict(batch_size=32, dataset=dict(num_samples=3072))   # 96 steps

optim_wrapper = dict(_delete_=True, optimizer=dict(type='AdamW', lr=5e-3, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=1, convert_to_iter_based=True)]

val_evaluator = [dict(type='Accuracy', topk=(1, 5)), dict(type='DoublyRightAccuracy', criterion='top1')]
test_evaluator = val_evaluator

default_hooks = dict(logger=dict(interval=4))
