# SigRL, single-positive multi-label learning on Pascal VOC 2012
# (docs/equations/sigrl.md): CLIP ViT-B/16 (OpenAI, QuickGELU), whole image
# tower trained, EM loss (alpha 0.2), Adam lr 1e-5, no weight decay, no
# schedule, 10 epochs, batch 1 as the reference (any batch works: --cfg-options
# train_dataloader.batch_size=8 and --auto-scale-lr). Images: resize 448 +
# flip, then 224; ImageNet mean/std (CLIP's in the dataset base's comment).
# Epoch selected on the val mAP (full labels of the 20% split, best
# checkpoint), test mAP reported at that epoch with tools/test.py.
_base_ = [
    './_base_/datasets/spml_voc2012.py',
    './_base_/models/sigrl_clip_vit_b16.py',
    './_base_/schedules/sigrl_spml_adam_10e.py',
    './_base_/default_runtime.py',
]
_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(448, 448), keep_ratio=False),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label']),
]
train_dataloader = dict(batch_size=1, dataset=dict(pipeline=_train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_test_pipeline))

model = dict(
    head=dict(
        # prompt-friendly spellings of the 20 VOC classes (dataset order)
        class_names=[
            'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
            'cat', 'chair', 'cow', 'dining table', 'dog', 'horse',
            'motorbike', 'person', 'potted plant', 'sheep', 'sofa', 'train',
            'tv monitor'
        ],
        loss=dict(type='SPMLEMLoss', alpha=0.2)))

auto_scale_lr = dict(base_batch_size=1)
# epoch selection on the val mAP: keep the best checkpoint
default_hooks = dict(checkpoint=dict(save_best='multi-label/mAP_sklearn',
                                     rule='greater', max_keep_ckpts=1))
