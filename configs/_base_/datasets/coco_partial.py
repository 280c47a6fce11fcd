# MS-COCO 2014, known-proportion protocol (docs/equations/protocol.md):
# train2014 with the seed-0 partial labels at `known_ratio`, evaluated on all
# 40,504 val2014 images (reference order, images without annotation kept) with
# the VOC-style interpolated mAP. Method configs override
# train_dataloader.dataset.known_ratio.
dataset_type = 'CocoMultiLabel'
data_root = 'data/coco'
num_classes = 80

data_preprocessor = dict(
    num_classes=num_classes,
    # ImageNet mean / std, RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

# resize 512 (bicubic) -> random square crop with a side in {512..256} ->
# resize 448 -> horizontal flip
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=False,
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomSideCrop', sides=(512, 448, 384, 320, 256)),
    dict(type='Resize', scale=(448, 448), keep_ratio=False,
         interpolation='bilinear', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=False,
         interpolation='bilinear', backend='pillow'),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    # restarted every epoch so --resume continues the augmentation stream
    # (mlrpl_mm/datasets/worker_seed.py)
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='PartialLabelDataset',
        mode='proportion',
        known_ratio=0.5,
        seed=0,
        dataset=dict(type=dataset_type, data_root=data_root, split='train',
                     pipeline=train_pipeline),
    ),
)
# every test image counts once: no drop_last, sampler padding removed by the
# metric (sample_idx)
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='val',
                 drop_empty=False, test_mode=True, pipeline=test_pipeline),
)
val_evaluator = dict(type='MultiLabelMAP', ap_style='voc', thr=0.5, topk=3)
test_dataloader = val_dataloader
test_evaluator = val_evaluator
