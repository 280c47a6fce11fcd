# Runtime shared by every mlrpl-mm config.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mlrpl_mm'], allow_failed_imports=False)
# mmengine's Runner plus safe checkpoint loading (torch >= 2.6), a resume that
# executes nothing stored in the checkpoint, and atomic checkpoint writes
# (mlrpl_mm/engine/runner.py); import mlrpl_mm itself patches nothing
runner_type = 'MLRPLRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # keep the last checkpoints and the best one on the validation mAP
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3,
                    save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
    # refuse to train when dataset / head / class embeddings disagree on the
    # class count or the head cannot use the backbone's features; lives in
    # default_hooks (merged key by key) so method configs that set their
    # own custom_hooks keep it. Disable: default_hooks.class_count_check=None
    class_count_check=dict(type='ClassCountCheckHook'),
    # refuse to train when a hook that provides model state (label graph,
    # prototypes, blend clamp, ...) is missing from custom_hooks, or when the
    # training labels carry no supervision (no known label / positive)
    required_hooks=dict(type='RequiredHooksCheckHook'),
    supervision_check=dict(type='SupervisionCheckHook'),
    # random generator states in checkpoints, restored by --resume
    rng_state=dict(type='RandomStateHook'),
    # distributed: average the buffers (BN statistics) of the ranks at the
    # end of each epoch, so validation and the checkpoint use one model and
    # N processes report the metric of the saved checkpoint
    sync_buffers=dict(type='SyncBuffersHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # timeout: seconds a collective waits for the other ranks before the job
    # fails with an error (a stopped / deadlocked / dead rank); raise it if
    # one rank legitimately works alone longer (docs/failure_modes.md)
    dist_cfg=dict(backend='nccl', timeout=1800),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
