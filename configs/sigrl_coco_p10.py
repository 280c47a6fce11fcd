# SigRL on MS-COCO 2014 with 10% known labels (the known-proportion protocol
# of docs/equations/protocol.md, seed 0; no published code offers SigRL in this
# setting). CLIP ViT-B/16 (OpenAI, QuickGELU) with GMC + SVFR, partial BCE on
# the known labels (positives and negatives) over the SigRL scores (logit scale
# 1 as the reference; a larger model.head.logit_scale sharpens the sigmoid).
# The protocol's augmentation with a final 224 px (ViT-B/16 input); Adam 1e-5,
# 20 epochs, x0.1 at epoch 10, batch 32, but no weight decay (decaying the
# CLIP weights towards 0 is not the protocol's intent for a ResNet). VOC-style
# mAP on all 40,504 val2014 images.
_base_ = [
    './_base_/datasets/coco_partial.py',
    './_base_/models/sigrl_clip_vit_b16.py',
    './_base_/schedules/protocol_adam_20e.py',
    './_base_/default_runtime.py',
]
known_ratio = 0.1
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512), keep_ratio=False,
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomSideCrop', sides=(512, 448, 384, 320, 256)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False,
         interpolation='bicubic', backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False,
         interpolation='bicubic', backend='pillow'),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
train_dataloader = dict(
    batch_size=32,
    dataset=dict(known_ratio=known_ratio,
                 dataset=dict(pipeline=_train_pipeline)))
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
# class names from the dataset (SigRLLabelSetHook)
model = dict(
    head=dict(num_classes=80,
              loss=dict(_delete_=True, type='PartialBCELoss')))
optim_wrapper = dict(optimizer=dict(weight_decay=0.0))
