# Partial BCE on your own partially labelled data (docs/own_data.md): the
# light demo network (ResNet-18, 16 base channels, random init) on the data of
# configs/_base_/datasets/own_data.py. For real images, take the model of a
# protocol config (e.g. configs/pbce_coco_p30.py: ImageNet ResNet-101, 448 px)
# and set num_classes in the head and the data preprocessor.
_base_ = [
    './_base_/datasets/own_data.py',
    './_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ),
                  style='pytorch', stem_channels=16, base_channels=16),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='PartialLabelClsHead', num_classes={{_base_.num_classes}},
              in_channels=128, loss=dict(type='PartialBCELoss')),
)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[5],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=6)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=10))
