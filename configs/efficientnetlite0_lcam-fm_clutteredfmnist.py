# L-CAM-Fm on the demo classifier: configs/efficientnetlite0_lcam-img_clutteredfmnist.py with the attention masking
# the classifier's last feature maps (logits = head(GAP(A_c * F))) instead of the image. Train the baseline first
# (see that file). See docs/lcam.md.
_base_ = ['./efficientnetlite0_lcam-img_clutteredfmnist.py']

model = dict(variant='fm')
