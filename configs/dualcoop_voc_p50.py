# DualCoOp, CLIP RN101, Pascal VOC 2007, 50% known labels (seed-0 protocol).
_base_ = ['./_base_/dualcoop/dualcoop_voc.py']
train_dataloader = dict(dataset=dict(known_ratio=0.5))
