#!/usr/bin/env python
"""Train a model from a config (mmpretrain's CLI, with mlrpl_mm registered).

Examples::

    python tools/train.py configs/dsrb_coco_p30.py
    python tools/train.py configs/hst_demo.py --work-dir work_dirs/demo --amp
    bash tools/dist_train.sh configs/hst_vg_p50.py 8
"""
import argparse
import os
import os.path as osp
import sys

# Works from a source checkout without `pip install -e .`.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402

import mlrpl_mm  # noqa: E402,F401  (registers the components)
from mlrpl_mm.apis import (apply_data_root, apply_trust_flag,  # noqa: E402
                           build_runner, set_dataloader_defaults,
                           setup_cpu_distributed)
from mlrpl_mm.utils import (CheckpointError, shutdown_distributed,  # noqa: E402
                            stuck_rank_errors)
from mlrpl_mm.utils.packaged_configs import resolve_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work directory')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the lr by actual batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument('--no-persistent-workers', action='store_true')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='load checkpoints with weights_only=False and let --resume '
        'parse the config text stored in the checkpoint (both can run code '
        'from the file: only for files you trust)')
    parser.add_argument(
        '--data-root', help='set the data_root of every dataset of the config '
        '(train, val, test; also --cfg-options data_root=DIR)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, e.g. '
        'train_dataloader.batch_size=8 model.backbone.depth=18')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args) -> Config:
    """Merge CLI arguments into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        import torch
        if torch.cuda.is_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:
            # mmengine's AmpOptimWrapper is CUDA-only: bf16 autocast on CPU.
            cfg.optim_wrapper.type = 'CPUAutocastOptimWrapper'
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    # before the other options, so that a dataset's own data_root option wins
    apply_data_root(cfg, getattr(args, 'data_root', None), args.cfg_options)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_dataloader_defaults(cfg, pin_memory=not args.no_pin_memory,
                            persistent_workers=not args.no_persistent_workers)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    apply_trust_flag(args.trust_checkpoint)
    # a file, or a shipped config name ('hst_demo.py', 'mlrpl_mm::hst_demo.py')
    args.config = resolve_config(args.config)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    setup_cpu_distributed(cfg, args.launcher)
    runner = build_runner(cfg)  # cfg.runner_type, default MLRPLRunner
    with stuck_rank_errors(cfg):
        runner.train()
    shutdown_distributed()


if __name__ == '__main__':
    try:
        main()
    except CheckpointError as err:  # one line naming the file, no traceback
        raise SystemExit(f'error: {err}')
