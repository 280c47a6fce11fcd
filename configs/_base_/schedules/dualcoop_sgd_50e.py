# DualCoOp's optimisation of the prompt contexts (partial-label setting):
# SGD with initial lr 0.002 and cosine annealing (paper, Sec. 4.1 as quoted
# in issue 16); momentum 0.9 and weight decay 5e-4 are CoOp's SGD settings
# (Zhou et al., IJCV 2022), on which DualCoOp builds; 50 epochs and batch 32
# (set in the dataset bases) are our reading of the paper, NOT verified
# against its PDF in this repository: check Sec. 4.1 before reporting a
# reproduction. No warm-up.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4),
)
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, T_max=50,
                       eta_min=0.0, convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=50, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)
