# Pascal VOC 2012, single-positive protocol (docs/equations/protocol.md): 80%
# of the official train split with one known positive per image
# (RandomState(1200)), the other 20% with full labels for model selection, the
# official val split as test set. Non-interpolated (sklearn) mAP. 448 px
# (ResNet-50 baselines).
dataset_type = 'VOCMultiLabel'
data_root = 'data/VOCdevkit/VOC2012'
num_classes = 20

data_preprocessor = dict(
    num_classes=num_classes,
    # ImageNet mean / std, RGB (CLIP's: mean=[122.77, 116.75, 104.09],
    # std=[68.50, 66.63, 70.32])
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=False),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
_spml_source = dict(type=dataset_type, data_root=data_root, split='train')
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='PartialLabelDataset', mode='single_positive',
                 subset='train', dataset=_spml_source,
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=4,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='PartialLabelDataset', mode='single_positive',
                 subset='val', dataset=_spml_source, pipeline=test_pipeline),
)
val_evaluator = dict(type='MultiLabelMAP', ap_style='sklearn',
                     no_positive='zero', topk=3)
test_dataloader = dict(
    batch_size=16,
    num_workers=4,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 test_mode=True, pipeline=test_pipeline),
)
test_evaluator = val_evaluator
