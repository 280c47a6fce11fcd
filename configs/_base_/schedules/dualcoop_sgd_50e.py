# DualCoOp's optimisation of the prompt contexts (partial-label setting), as
# the authors' published code runs it (sunxm2357/DualCoOp,
# configs/models/rn101_ep50.yaml and its README's partial-label command):
# SGD, lr 0.002 for MS-COCO (0.001 for VOC 2007: set in
# ../dualcoop/dualcoop_voc.py), 50 epochs, batch 32 (set in the dataset
# bases), input 448 (--input_size 448), cosine annealing stepped once per
# epoch after one constant warm-up epoch at lr 1e-5 (WARMUP_EPOCH: 1,
# WARMUP_TYPE: constant, WARMUP_CONS_LR: 1e-5). Momentum 0.9 and weight decay
# 5e-4 are the defaults of Dassl / CoOp (Zhou et al., IJCV 2022), which that
# code builds on. Not reproduced: its per-proportion loss weight `--loss_w`
# ("larger for smaller pp"; only 0.03 at pp = 0.5 is published), which
# rescales the summed ASL, i.e. the effective SGD step: model.head.loss.loss_weight
# (1.0 here).
lr = 0.002
warmup_lr = 1e-5
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=lr, momentum=0.9, weight_decay=5e-4),
)
param_scheduler = [
    # epoch 0: constant lr 1e-5 (factor = warm-up lr / base lr)
    dict(type='ConstantLR', factor=warmup_lr / lr, by_epoch=True, begin=0,
         end=1),
    # then cosine over T_max = 50 epochs, counted from the end of warm-up
    dict(type='CosineAnnealingLR', by_epoch=True, T_max=50, eta_min=0.0,
         begin=1, end=50),
]
train_cfg = dict(by_epoch=True, max_epochs=50, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
