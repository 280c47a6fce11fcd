# SigRL, zero-shot multi-label recognition on NUS-WIDE
# (docs/equations/sigrl.md): trained on the 925 seen tags (full labels),
# evaluated without retraining on the 81 unseen concepts (ZSL) and on all 1006
# classes (GZSL) with mAP and F1@3/@5; the label set is swapped by
# SigRLLabelSetHook (text embeddings of the test classes). Loss: ranking loss
# on the scores + L1 distillation of g towards a frozen copy of the initial
# image tower. Only the last 2 ViT blocks, ln_post, the projection and the
# heads train; AdamW lr 1e-4, wd 0.05 on >= 2-D parameters, layer-wise lr decay
# 0.65, 2-epoch linear warm-up then cosine to 1e-7, 20 epochs, batch 32,
# RandAugment (magnitude 9), 224 px.
_base_ = [
    './_base_/models/sigrl_clip_vit_b16.py',
    './_base_/default_runtime.py',
]
dataset_type = 'NUSWideMultiLabel'
data_root = 'data/nus_wide'

data_preprocessor = dict(
    # ImageNet mean / std, RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)
model = dict(
    backbone=dict(trainable=2, with_teacher=True),
    head=dict(
        num_classes=925,  # seen classes; names from the dataset (hook)
        loss=dict(_delete_=True, type='SPMLRankingLoss', margin=1.0),
        distill_loss=dict(type='SigRLL1DistillLoss', loss_weight=1.0),
        score_activation='none',
        # as the reference: training images without any positive seen tag
        # leave the batch before the losses (their ranking term is 0, but
        # they would count in the means and in the L1 term); the test set
        # keeps every image. False keeps them
        drop_no_positive=True),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
# training labels: full labels of the seen tags (partial_label == full_label
# for a plain dataset)
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 label_set='seen', pipeline=train_pipeline),
)
# GZSL test set (seen + unseen); the head also scores the unseen subset
# alone, so ZSL and GZSL come from one pass
test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 label_set='all', test_mode=True, pipeline=test_pipeline),
)
# a test class without any positive counts with AP 0 in the mean (the
# reference's compute_AP); no_positive='exclude' leaves it out
test_evaluator = dict(type='ZeroShotMultiLabelMetric', mode='both',
                      topks=(3, 5), ap_style='sklearn', no_positive='zero')
# The zero-shot split of NUS-WIDE has no validation set: validation runs on
# the test split, so best_*.pth is selected on the test set. Report the last
# checkpoint (epoch_20.pth, tools/test.py) for a selection-free figure.
val_dataloader = test_dataloader
val_evaluator = test_evaluator

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-7, by_epoch=True, begin=2,
         end=20, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(checkpoint=dict(save_best='zero-shot/ZSL_mAP',
                                     rule='greater', max_keep_ckpts=1))
