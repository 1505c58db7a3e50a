# Classification by description (Menon & Vondrick, ICLR 2023) with the offline image-text model trained by
# configs/lite0-minilm_lit_clutteredfmnist.py: the shipped Fashion-MNIST descriptors, "{c}, which ... {d}"
# sentences, score = mean cosine. No training step: evaluate it with
#   python tools/test.py configs/lite0-minilm_descriptors_clutteredfmnist.py none
#   python tools/explain.py configs/lite0-minilm_descriptors_clutteredfmnist.py none IMAGES --method native --out DIR
# (the image-text weights come from `pretrained`: the LiT recipe's checkpoint, or any xzoo/open_clip checkpoint).
_base_ = ['./lite0-minilm_lit_clutteredfmnist.py']

lit_checkpoint = 'work_dirs/lite0-minilm_lit_clutteredfmnist/epoch_1.pth'

model = dict(
    _delete_=True,
    type='DescriptorClassifier',
    image_text=dict(type='ImageTextModel', model_cfg={{_base_.image_text.model_cfg}}, pretrained=lit_checkpoint,
                    lock_text=True),
    descriptors='fashion_mnist',
    inclusion='prepend',
    connective='official',
)
