# Baseline of ECOR (docs/ecor.md): zero-shot on the offline image-text model — the category from the bare class names,
# the rationales from the bare rationale texts (P(r | I) without a learned context); nothing to train:
#   python tools/test.py configs/lite0-minilm_ecor-zeroshot_clutteredfmnist.py none
_base_ = ['./lite0-minilm_ecor_clutteredfmnist.py']

model = dict(rationale_prompt=None, category_prompt=None, condition='none', class_template='{c}')
