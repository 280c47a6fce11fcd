# Open Images V6 / V7 image-level labels (docs/data_preparation.md): the
# human-verified labels are the partial labels (Confidence 1 / 0 -> +1 / -1,
# not verified -> unknown), in training and on the test split, where the
# metric scores the verified entries only (as the Open Images evaluation;
# classes without a verified positive left out). 601 boxable classes; set
# classes=[...] (MIDs or display names) for a subset and num_classes to match.
dataset_type = 'OpenImagesMultiLabel'
data_root = 'data/openimages'
num_classes = 601

data_preprocessor = dict(
    num_classes=num_classes,
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
train_dataloader = dict(
    batch_size=16,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=16,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='validation',
                 test_mode=True, pipeline=test_pipeline),
)
val_evaluator = dict(type='MultiLabelMAP', ap_style='sklearn',
                     no_positive='exclude')
test_dataloader = dict(
    batch_size=16,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 test_mode=True, pipeline=test_pipeline),
)
test_evaluator = val_evaluator
