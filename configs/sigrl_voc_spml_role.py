# SigRL with ROLE (regularised online label estimation, Cole et al. CVPR
# 2021) on Pascal VOC 2012, single positive: as sigrl_voc_spml.py with the
# ROLE loss: per-entry label estimates learnt jointly with the model
# (expected 1.5 positives per image for VOC as the reference; estimator
# Adam lr 1e-4 = the reference's lr 1e-5 x lr_mult 10). The estimates live in
# the loss's buffers (indexed by sample_idx), so they reach checkpoints and
# --resume.
_base_ = ['./sigrl_voc_spml.py']
model = dict(
    head=dict(
        loss=dict(_delete_=True, type='ROLELoss', expected_num_pos=1.5,
                  estimator_lr=1e-4)))
