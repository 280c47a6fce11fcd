#!/usr/bin/env python
"""``make demo``: build the demo data, train a partial-label model, evaluate.

Steps:
1. write the embedded digit-mosaic dataset in the MS-COCO 2014 format
   (``tools/data/make_demo_dataset.py``) to ``data/demo``;
2. train ``--config`` (default: HST on 30% known labels) with
   ``tools/train.py`` into ``--work-dir``;
3. evaluate the last checkpoint with ``tools/test.py``;
4. draw the training curves and the per-class AP of the checkpoint
   (``dump_per_class_ap=True`` is set for the validation and the test);
5. print the mAP and where the checkpoint, the training log, its scalars
   (``vis_data/scalars.json``) and the plots are.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def _run(cmd):
    print('+ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def _map_key(metrics: dict) -> str:
    keys = [k for k in metrics if 'mAP' in k]
    if not keys:
        raise KeyError(f'no mAP in the metrics {sorted(metrics)}')
    return sorted(keys)[0]


def training_log_paths(work_dir: str):
    """(text log, ``vis_data/scalars.json``) of the newest training run in
    ``work_dir`` (not of a ``tools/test.py`` run into the same folder)."""
    from mlrpl_mm.visualization.plots import find_scalars_file
    scalars = find_scalars_file(work_dir)
    run_dir = osp.dirname(osp.dirname(scalars))
    logs = sorted(glob.glob(osp.join(run_dir, '*.log')))
    if not logs:
        raise FileNotFoundError(f'no training log (*.log) in {run_dir}')
    return logs[-1], scalars


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/hst_demo.py')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--num-train', type=int, default=1500,
                        help='training images of the demo dataset')
    parser.add_argument('--num-val', type=int, default=500,
                        help='validation images of the demo dataset')
    parser.add_argument('--cfg-options', nargs='*', default=[],
                        help='key=value overrides for training and testing')
    args = parser.parse_args(argv)
    t0 = time.time()
    py = sys.executable

    _run([py, 'tools/data/make_demo_dataset.py', '--out', args.data_root,
          '--num-train', str(args.num_train), '--num-val', str(args.num_val)])

    work_dir = osp.join(ROOT, args.work_dir)
    data = ['--data-root', args.data_root]
    # per-class AP of the validation and test runs (for the per-class plot)
    _run([py, 'tools/train.py', args.config, '--work-dir', work_dir] + data +
         ['--cfg-options', 'val_evaluator.dump_per_class_ap=True'] +
         args.cfg_options)
    train_log, scalars = training_log_paths(work_dir)

    last = osp.join(work_dir, 'last_checkpoint')
    with open(last) as f:
        ckpt = f.read().strip()
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    _run([py, 'tools/test.py', args.config, ckpt, '--work-dir', work_dir,
          '--out', metrics_file, '--out-item', 'metrics'] + data +
         ['--cfg-options', 'test_evaluator.dump_per_class_ap=True'] +
         args.cfg_options)
    with open(metrics_file) as f:
        test_metrics = json.load(f)

    # the validation mAP logged at the end of training, for comparison
    from mlrpl_mm.visualization import (load_scalars, plot_per_class_ap,
                                        plot_training_curves)
    rows = load_scalars(scalars)
    key = _map_key(test_metrics)
    val_rows = [r for r in rows if key in r]
    train_map = val_rows[-1][key] if val_rows else float('nan')

    plots = []
    plots.append(plot_training_curves(
        scalars, osp.join(work_dir, 'plots', 'training_curves.png')))
    per_class = sorted(glob.glob(osp.join(work_dir, '**', 'per_class_ap*.json'),
                               recursive=True), key=osp.getmtime)
    if per_class:
        with open(per_class[-1]) as f:
            pc = json.load(f)
        plots.append(plot_per_class_ap(
            pc['ap'], pc['classes'], osp.join(work_dir, 'plots', 'per_class_ap.png')))

    print('\n' + '=' * 72)
    print(f'demo finished in {time.time() - t0:.0f} s  ({args.config})')
    print(f'final validation {key}: {train_map:.2f}  (chance level is about '
          'the positive rate, ~20)')
    print(f'tools/test.py on the checkpoint: {key} = {test_metrics[key]:.2f}')
    for k in sorted(test_metrics):
        if k != key:
            print(f'    {k}: {test_metrics[k]:.2f}')
    print(f'checkpoint : {ckpt}')
    print(f'train log  : {train_log}')
    print(f'scalars    : {scalars}')
    for p in plots:
        print(f'plot       : {p}')
    print('=' * 72)


if __name__ == '__main__':
    main()
