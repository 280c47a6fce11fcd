# DualCoOp on MS-COCO 2014 at the known-proportion protocol of this repository
# (seed-0 masks of PartialLabelDataset, VOC-style interpolated mAP on the
# full test labels: ../datasets/coco_partial.py), CLIP RN101 at 448 x 448 (the
# paper's input size for the partial-label setting). Per-proportion configs
# (configs/dualcoop_coco_pXX.py) only set the known ratio.
# Augmentation: the protocol's (resize 512, random side crop, resize 448,
# flip) shared with the other methods of the comparison; normalisation:
# CLIP's mean / std (the weights were trained with them).
_base_ = [
    '../datasets/coco_partial.py',
    '../models/dualcoop_clip_rn101.py',
    '../schedules/dualcoop_sgd_50e.py',
    '../default_runtime.py',
]
data_preprocessor = dict(
    mean=[122.770938, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
)
model = dict(head=dict(num_classes=80))
# batch 32 (see ../schedules/dualcoop_sgd_50e.py)
train_dataloader = dict(batch_size=32)
