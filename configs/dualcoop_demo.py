# DualCoOp on the embedded demo dataset (64 px digit mosaics, 10 classes
# '0'..'9', 30% known labels): a tiny random-init CLIP ResNet
# ('mlrpl-tiny-rn', registered by mlrpl_mm: one bottleneck per stage, 64-d
# joint space, 2-layer 64-wide text transformer), so it runs offline on a
# CPU in about a minute:
#   python tools/train.py configs/dualcoop_demo.py
# As the method, only the class-specific positive / negative contexts train;
# both towers stay frozen (random weights here: the demo shows that the
# prompt learning trains, not CLIP's transfer). Inputs upsampled to 128 px
# for a 4 x 4 map of regions.
_base_ = [
    './_base_/datasets/demo_digits.py',
    './_base_/default_runtime.py',
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(128, 128)),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
model = dict(
    type='ImageClassifier',
    backbone=dict(type='OpenCLIPBackbone', model_name='mlrpl-tiny-rn',
                  pretrained=None, trainable='none',
                  fallback_to_random=True),
    neck=None,
    head=dict(
        type='DualCoOpHead',
        num_classes=10,
        prompt_learner=dict(
            type='DualPromptLearner',
            text_encoder=dict(model_name='mlrpl-tiny-rn', pretrained=None,
                              fallback_to_random=True),
            n_ctx=16, class_specific=True, class_chunk=None),
        tau=0.02,
        loss=dict(type='PartialAsymmetricLoss', gamma_pos=1.0, gamma_neg=2.0,
                  clip=0.05, reduction='sum')),
)
custom_hooks = [dict(type='PromptClassNamesHook')]
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, T_max=6,
                       convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=6, val_interval=2)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(logger=dict(interval=10))
