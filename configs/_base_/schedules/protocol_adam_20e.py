# The SSGRL-family protocol (docs/equations/protocol.md): Adam lr 1e-5, wd
# 5e-4, 20 epochs, lr x0.1 at epoch 10. Batch size lives in the dataset base /
# method config.
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1e-5, weight_decay=5e-4),
)
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[10], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr was tuned for this total batch size (used by --auto-scale-lr)
auto_scale_lr = dict(base_batch_size=32)
