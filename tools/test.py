#!/usr/bin/env python
"""Evaluate a checkpoint on the test split of a config.

Example::

    python tools/test.py configs/hst_demo.py work_dirs/hst_demo/epoch_6.pth
    python tools/test.py CONFIG CKPT --out results.pkl --show-dir vis/
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402

import mlrpl_mm  # noqa: E402,F401
from mlrpl_mm.apis import (apply_data_root, apply_trust_flag,  # noqa: E402
                           build_runner, set_dataloader_defaults,
                           setup_cpu_distributed)
from mlrpl_mm.utils import CheckpointError, shutdown_distributed  # noqa: E402
from mlrpl_mm.utils.packaged_configs import resolve_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for the evaluation logs')
    parser.add_argument('--out', help='dump the predictions to a pickle file')
    parser.add_argument('--out-item', choices=['metrics', 'pred'], default='pred',
                        help="'pred' dumps every sample's scores (pickle), "
                        "'metrics' dumps the metrics (json)")
    parser.add_argument('--show-dir', help='draw test images with their ground '
                        'truth and predicted labels (score >= 0.5) into this '
                        'folder (relative: under the work dir)')
    parser.add_argument('--interval', type=int, default=1,
                        help='--show-dir: draw every INTERVAL-th test image '
                        '(default 1: all)')
    parser.add_argument('--data-root', help='set the data_root of every '
                        'dataset of the config (also --cfg-options '
                        'data_root=DIR)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load with weights_only=False (trusted files only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


#: short edge (px) the --show-dir images are drawn at (the demo's are 64 px)
SHOW_SHORT_EDGE = 384


def setup_show_dir(cfg, show_dir: str, interval: int) -> str:
    """``--show-dir``: mmpretrain's ``VisualizationHook`` draws every
    ``interval``-th test image, short edge resized to
    :data:`SHOW_SHORT_EDGE`, with its ground truth and ``pred_label`` into
    ``show_dir`` (a relative one under the work dir). Returns that folder."""
    if interval < 1:
        raise ValueError(f'--interval must be >= 1, got {interval}')
    out_dir = show_dir if osp.isabs(show_dir) else \
        osp.join(cfg.work_dir, show_dir)
    cfg.default_hooks.visualization = dict(
        type='VisualizationHook', enable=True, interval=interval,
        out_dir=out_dir, resize=SHOW_SHORT_EDGE)
    return out_dir


def main(argv=None):
    args = parse_args(argv)
    apply_trust_flag(args.trust_checkpoint)
    # a file, or a shipped config name ('hst_demo.py', 'mlrpl_mm::hst_demo.py')
    args.config = resolve_config(args.config)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    apply_data_root(cfg, args.data_root, args.cfg_options)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        show_dir = setup_show_dir(cfg, args.show_dir, args.interval)
        print(f'--show-dir: drawing the test images (every {args.interval}) into '
              f'{show_dir}', flush=True)
    set_dataloader_defaults(cfg)
    setup_cpu_distributed(cfg, args.launcher)
    runner = build_runner(cfg)  # cfg.runner_type, default MLRPLRunner
    if args.out and args.out_item == 'pred':
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    from mmengine.dist import is_main_process
    if args.out and args.out_item == 'metrics' and is_main_process():
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)
    shutdown_distributed()
    return metrics


if __name__ == '__main__':
    try:
        main()
    except CheckpointError as err:  # one line naming the file, no traceback
        raise SystemExit(f'error: {err}')
