# DualCoOp on Pascal VOC 2007 at the known-proportion protocol of this repository
# (seed-0 masks of PartialLabelDataset, VOC-style interpolated mAP on the
# full test labels: ../datasets/voc_partial.py), CLIP RN101 at 448 x 448 (the
# paper's input size for the partial-label setting). Per-proportion configs
# (configs/dualcoop_voc_pXX.py) only set the known ratio.
# Augmentation: the protocol's (resize 512, random side crop, resize 448,
# flip) shared with the other methods of the comparison; normalisation:
# CLIP's mean / std (the weights were trained with them).
_base_ = [
    '../datasets/voc_partial.py',
    '../models/dualcoop_clip_rn101.py',
    '../schedules/dualcoop_sgd_50e.py',
    '../default_runtime.py',
]
data_preprocessor = dict(
    mean=[122.770938, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
)
model = dict(head=dict(num_classes=20))
# batch 32 (see ../schedules/dualcoop_sgd_50e.py)
train_dataloader = dict(batch_size=32)
# lr 0.001 for VOC 2007 (the authors' README; 0.002 for MS-COCO); the
# warm-up keeps its absolute lr 1e-5 (WARMUP_CONS_LR)
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [
    dict(type='ConstantLR', factor=1e-5 / 0.001, by_epoch=True, begin=0,
         end=1),
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=50, eta_min=0.0,
         begin=1, end=50),
]
