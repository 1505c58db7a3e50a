# Baseline of ECOR (docs/ecor.md): a single CoOp prompt without rationales (Zhou et al., IJCV 2022) — one learned
# context ⊕ class name on the same frozen towers, the same steps; its rationales are the zero-shot ones (untrained).
#   python tools/train.py configs/lite0-minilm_ecor-coop_clutteredfmnist.py
_base_ = ['./lite0-minilm_ecor_clutteredfmnist.py']

model = dict(rationale_prompt=None, condition='none', class_template='{c}')
