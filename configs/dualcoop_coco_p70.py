# DualCoOp, CLIP RN101, MS-COCO 2014, 70% known labels (seed-0 protocol).
_base_ = ['./_base_/dualcoop/dualcoop_coco.py']
train_dataloader = dict(dataset=dict(known_ratio=0.7))
