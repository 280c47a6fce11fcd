# Light HST on the demo dataset, for label-efficiency sweeps (tools/sweep.py's
# default methods): hst_demo with a 4x narrower ResNet-18 (16 base channels,
# 128 output channels), D = 128, and 6 epochs (pseudo labels and prototypes
# from epoch 3, prototypes recomputed every 2 epochs).
_base_ = ['./hst_demo.py']

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(in_channels=128,
              trunk=dict(feat_channels=128, inter_channels=64,
                         out_channels=128)),
)
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[5],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=6)
