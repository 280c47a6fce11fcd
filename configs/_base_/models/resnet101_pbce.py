# Baseline of the known-proportion protocol: ResNet-101 (ImageNet-1k,
# stem and stages 1-3 frozen with their BN in eval mode, layer4 and its BN
# trained, as in the SSGRL-family reference) + global average pooling + linear
# classifier trained with partial BCE on the known labels only.
# The ImageNet weights are mmpretrain's ResNet-101 checkpoint, downloaded by
# init_weights() when training starts. Offline runs without them:
#   --cfg-options model.backbone.init_cfg=None
# Partial ASL instead of partial BCE:
#   --cfg-options model.head.loss.type=PartialAsymmetricLoss
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=101,
        num_stages=4,
        out_indices=(3, ),
        frozen_stages=3,
        norm_eval=False,  # layer4's BN trains; stages 1-3 frozen in eval
        style='pytorch',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet101_8xb32_in1k_20210831-539c63f8.pth',
            prefix='backbone'),
    ),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='PartialLabelClsHead',
        num_classes=80,
        in_channels=2048,
        loss=dict(type='PartialBCELoss'),
    ),
)
