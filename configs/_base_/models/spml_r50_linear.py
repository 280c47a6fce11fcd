# SPML baselines (Cole et al. CVPR 2021; Zhou et al. ECCV 2022; Kim et al.
# CVPR 2022): ImageNet-pretrained ResNet-50 at 448 px, global average pooling
# and a linear classifier, the whole network trained. The loss is set by the
# method config (AssumeNegativeLoss, SPMLEMLoss, LargeLossRejectionLoss...).
# The torchvision weights are downloaded on first use; set
# model.backbone.init_cfg=None for a random init (offline tests).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='PartialLabelClsHead',
        num_classes=20,
        in_channels=2048,
        loss=dict(type='AssumeNegativeLoss')),
)
