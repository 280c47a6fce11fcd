# Your own partially labelled data (docs/own_data.md): annotation files in
# the PartialLabelAnnotations format (tools/data/convert_labels.py writes
# them), image paths relative to data_root/images. The example data comes
# from tools/data/make_own_data_demo.py (10 classes '0'..'9'); for yours, set
# data_root, num_classes (here and in the model's head) and the image size.
dataset_type = 'PartialLabelAnnotations'
data_root = 'data/own_demo'
num_classes = 10

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64)),
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64)),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]

# the known labels are the training labels: no PartialLabelDataset wrapper
# (nothing to hide); every unlisted entry is unknown
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='train.json', data_prefix='images',
                 pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='test.json', data_prefix='images', test_mode=True,
                 pipeline=test_pipeline),
)
# a test set may be partially labelled too: the metric scores the known
# entries only (target 0 ignored); a class without a known positive is left
# out of the mean
val_evaluator = dict(type='MultiLabelMAP', ap_style='voc',
                     no_positive='exclude')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
