# L-CAM-Fm on a frozen ImageNet ResNet-50: configs/resnet50_lcam-img_imagenet.py with the attention masking the
# layer4 feature maps (logits = fc(GAP(A_c * F))) instead of the image. See docs/lcam.md.
_base_ = ['./resnet50_lcam-img_imagenet.py']

model = dict(variant='fm')
