# Light partial-BCE baseline on the demo dataset, for label-efficiency sweeps
# (tools/sweep.py's default methods): pbce_demo with a 4x narrower ResNet-18
# (16 base channels, 128 output channels) and 6 epochs, so that a
# 9-proportion sweep of several methods takes minutes on 2 CPU cores.
_base_ = ['./pbce_demo.py']

model = dict(
    backbone=dict(stem_channels=16, base_channels=16),
    head=dict(in_channels=128),
)
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[5],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=6)
