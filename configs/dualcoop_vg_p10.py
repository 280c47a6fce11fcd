# DualCoOp, CLIP RN101, VG-200, 10% known labels (seed-0 protocol).
_base_ = ['./_base_/dualcoop/dualcoop_vg.py']
train_dataloader = dict(dataset=dict(known_ratio=0.1))
