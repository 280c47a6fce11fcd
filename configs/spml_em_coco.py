# Entropy maximisation (EM, Zhou et al. ECCV 2022) on MS-COCO 2014, single
# positive: ResNet-50 448 px, alpha 0.1, Adam 1e-5, batch 16, 10 epochs.
# Published: 70.70 mAP.
_base_ = [
    './_base_/datasets/spml_coco2014.py',
    './_base_/models/spml_r50_linear.py',
    './_base_/schedules/sigrl_spml_adam_10e.py',
    './_base_/default_runtime.py',
]
model = dict(
    head=dict(
        num_classes=80,
        loss=dict(_delete_=True, type='SPMLEMLoss', alpha=0.1)))
train_dataloader = dict(batch_size=16)
auto_scale_lr = dict(base_batch_size=16)
# epoch selection on the val mAP (full labels of the 20% split)
default_hooks = dict(checkpoint=dict(save_best='multi-label/mAP_sklearn',
                                     rule='greater', max_keep_ckpts=1))
