# HST (IST + CST) on the embedded demo dataset (64 px digit mosaics, 10
# classes '0'..'9', 30% known labels). Trains in a few minutes on 2 CPU cores:
#   python tools/train.py configs/hst_demo.py
# Scaled down from the protocol: ResNet-18 (random init) with layer4 at stride
# 1 so a 64 px image gives a 4x4 map (no 2x2 pooling), D = 256, and the phases
# moved earlier (pseudo labels and prototypes from epoch 3, recomputed every
# 2 epochs) to fit 8 epochs.
_base_ = [
    './_base_/datasets/demo_digits.py',
    './_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet', depth=18, num_stages=4, out_indices=(3, ),
                  strides=(1, 2, 2, 1), style='pytorch'),
    neck=None,
    head=dict(
        type='HSTHead',
        num_classes=10,
        in_channels=512,
        trunk=dict(
            type='SemanticTrunk',
            feat_channels=256,
            inter_channels=128,
            out_channels=256,
            avg_pool=False,
            class_embedding=dict(type='LearnableClassEmbedding',
                                 embed_dims=64)),
        ist=dict(type='IntraSemanticTransfer'),
        cst=dict(type='CrossSemanticTransfer', num_prototypes=10, seed=0),
        instance_loss=dict(type='InstanceContrastiveLoss'),
        prototype_loss=dict(type='PrototypeContrastiveLoss', mode='reference',
                            average='all'),
        pseudo_label_epoch=3,
        ramp_epochs=1,
    ),
)
custom_hooks = [
    dict(type='LabelGraphHook'),
    # un-augmented training images (the protocol configs use the reference's
    # pipeline='train')
    dict(type='CSTPrototypeHook', start_epoch=3, interval=2, batch_size=64,
         pipeline='test'),
    dict(type='PseudoLabelPrecisionHook'),
]
model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                         find_unused_parameters=True)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-4))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[6],
                       gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=8, val_interval=2)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=10))
