#!/usr/bin/env python
"""Label-efficiency sweep: mAP vs known-label proportion, one curve per method.

Trains every config (method) at every known proportion p of the training
labels (the seed-0 known-proportion protocol of ``PartialLabelDataset``:
``train_dataloader.dataset.known_ratio = p``), evaluates the final (or best)
checkpoint on the test split, and writes

- ``WORK_DIR/sweep.csv``: one row per (method, p) with every test metric;
- ``WORK_DIR/sweep.png``: test mAP vs known proportion, one curve per method;
- ``WORK_DIR/<method>/p<pct>/``: the run (config, logs, checkpoints,
  ``test_metrics.json``, ``result.json``).

Resumable: a run with a ``result.json`` is skipped; a run that stopped
before (a ``last_checkpoint`` but no result) continues with ``--resume`` from
its last checkpoint. A run directory made with different settings (another
config text) is refused unless ``--overwrite`` is given.

Examples::

    # the light demo methods (pbce_demo_lite, hst_demo_lite) at
    # p = 0.1 .. 0.9 on the demo dataset (built here if missing): minutes
    python tools/sweep.py
    # the full demo configs (longer)
    python tools/sweep.py --configs configs/pbce_demo.py configs/hst_demo.py \
        configs/dsrb_demo.py --work-dir work_dirs/sweep_full
    # some methods, proportions and fewer epochs
    python tools/sweep.py --configs configs/pbce_demo.py configs/hst_demo.py \\
        --ratios 0.1 0.5 0.9 --epochs 4 --work-dir work_dirs/sweep_quick
    # only redraw the CSV and the plot from finished runs
    python tools/sweep.py --report-only
"""
import argparse
import csv
import glob
import hashlib
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

# default methods: light versions of the demo configs (a 4x narrower
# ResNet-18, 6 epochs) so that the default sweep takes minutes on 2 CPU cores
DEMO_CONFIGS = ('configs/pbce_demo_lite.py', 'configs/hst_demo_lite.py')
DEMO_DATA = 'data/demo'
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
RUN_CONFIG = 'sweep_config.py'
RUN_INFO = 'sweep_run.json'
RESULT = 'result.json'


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='mAP vs known-label proportion for one or more methods')
    parser.add_argument('--configs', nargs='+', default=None,
                        help='method configs (default: the demo configs '
                        'present among ' + ', '.join(DEMO_CONFIGS) + ')')
    parser.add_argument('--ratios', nargs='+', type=float,
                        default=list(DEFAULT_RATIOS),
                        help='known proportions in (0, 1] (default 0.1 .. 0.9)')
    parser.add_argument('--work-dir', default='work_dirs/sweep')
    parser.add_argument('--epochs', type=int, default=None,
                        help='override train_cfg.max_epochs of every run')
    parser.add_argument('--data-root', default=None,
                        help='set data_root of every dataset of the configs')
    parser.add_argument('--checkpoint', choices=['last', 'best'],
                        default='last',
                        help="checkpoint evaluated on the test split: 'last' "
                        "(default, no selection on the test set) or 'best' "
                        '(best validation mAP)')
    parser.add_argument('--metric', default=None,
                        help='metric plotted (default: the first key '
                        "containing 'mAP')")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={}, help='overrides applied to every run')
    parser.add_argument('--keep-going', action='store_true',
                        help='continue with the other runs when one fails')
    parser.add_argument('--overwrite', action='store_true',
                        help='delete run dirs made with other settings '
                        'instead of refusing them')
    parser.add_argument('--report-only', action='store_true',
                        help='do not train: write the CSV and plot from the '
                        'finished runs')
    parser.add_argument('--in-process', action='store_true',
                        help='run every run in this interpreter (faster '
                        'start; default: one fresh interpreter per run)')
    parser.add_argument('--run-one', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for r in args.ratios:
        if not 0 < r <= 1:
            raise SystemExit(f'--ratios: {r} is not in (0, 1]')
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f'--epochs must be >= 1, got {args.epochs}')
    return args


def default_configs() -> List[str]:
    """The demo configs present in this checkout."""
    return [c for c in DEMO_CONFIGS if osp.isfile(osp.join(ROOT, c))]


def ensure_demo_data(data_root: str = DEMO_DATA) -> None:
    """Build the embedded demo dataset (tools/data/make_demo_dataset.py)
    when the default configs run and it is not there yet."""
    ann = osp.join(ROOT, data_root, 'annotations', 'instances_val2014.json')
    if osp.isfile(ann):
        return
    print(f'[sweep] building the demo dataset in {data_root}', flush=True)
    subprocess.run([sys.executable,
                    osp.join(ROOT, 'tools', 'data', 'make_demo_dataset.py'),
                    '--out', osp.join(ROOT, data_root)], check=True)


def method_name(config: str) -> str:
    """``configs/hst_demo.py`` -> ``hst_demo``."""
    return osp.splitext(osp.basename(config))[0]


def ratio_tag(ratio: float) -> str:
    """0.1 -> ``p10``; 0.25 -> ``p25``; 1.0 -> ``p100``."""
    pct = ratio * 100
    return f'p{int(round(pct))}' if abs(pct - round(pct)) < 1e-6 \
        else f'p{pct:g}'.replace('.', '_')


def build_run_config(config: str, ratio: float, epochs: Optional[int],
                     data_root: Optional[str], cfg_options: Dict):
    """The full config of one run (bases resolved, overrides applied).

    Raises:
        ValueError: the training dataset is not a ``PartialLabelDataset``
            in ``'proportion'`` mode (the ratio would have no effect).
    """
    from mmengine.config import Config

    from mlrpl_mm.apis.launch import set_dataset_data_root
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    train_ds = cfg.train_dataloader.dataset
    if train_ds.get('type') != 'PartialLabelDataset' or \
            train_ds.get('mode', 'proportion') != 'proportion':
        raise ValueError(
            f'{config}: train_dataloader.dataset must be a PartialLabelDataset '
            f"with mode='proportion' for a known-proportion sweep, got "
            f"type={train_ds.get('type')!r}, mode={train_ds.get('mode')!r}")
    cfg.merge_from_dict({'train_dataloader.dataset.known_ratio': float(ratio)})
    if epochs is not None:
        cfg.merge_from_dict({'train_cfg.max_epochs': int(epochs)})
    if data_root is not None:
        n = sum(set_dataset_data_root(cfg.get(k), data_root) for k in (
            'train_dataloader', 'val_dataloader', 'test_dataloader'))
        if n == 0:
            raise ValueError(f'{config}: --data-root given but no dataset of '
                             'the config has a data_root')
    return cfg


def config_signature(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------
# one run (in a fresh interpreter: python tools/sweep.py --run-one DIR)
def _load_train_tool():
    spec = importlib.util.spec_from_file_location(
        'mlrpl_train_tool', osp.join(ROOT, 'tools', 'train.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_one(run_dir: str) -> Dict:
    """Train (or resume) the run in ``run_dir``, test, write ``result.json``.

    The model tested is the final one (``--checkpoint last``) or the best
    validation checkpoint (``best``), recorded in ``result.json``.
    """
    import mlrpl_mm  # noqa: F401
    from mmengine.config import Config

    from mlrpl_mm.apis import build_runner

    with open(osp.join(run_dir, RUN_INFO)) as f:
        info = json.load(f)
    train_tool = _load_train_tool()
    argv = [osp.join(run_dir, RUN_CONFIG), '--work-dir', run_dir]
    resumed = osp.isfile(osp.join(run_dir, 'last_checkpoint'))
    if resumed:
        argv.append('--resume')
    args = train_tool.parse_args(argv)
    cfg = train_tool.merge_args(Config.fromfile(args.config), args)
    # a unique name: mmengine keys its logger and visualizer instances by it
    cfg.experiment_name = '{}_{}_{}_{}'.format(
        info['method'], ratio_tag(info['known_ratio']),
        time.strftime('%Y%m%d_%H%M%S'), os.getpid())
    t0 = time.time()
    runner = build_runner(cfg)  # cfg.runner_type, default MLRPLRunner
    runner.train()
    train_s = time.time() - t0
    with open(osp.join(run_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    if info['checkpoint'] == 'best':
        best = sorted(glob.glob(osp.join(run_dir, 'best_*.pth')),
                      key=osp.getmtime)
        if not best:
            raise FileNotFoundError(
                f'{run_dir}: no best_*.pth (is validation enabled and '
                "CheckpointHook(save_best='auto') set?)")
        ckpt = best[-1]
        runner.load_checkpoint(ckpt)
    t1 = time.time()
    metrics = {k: float(v) for k, v in runner.test().items()}
    result = dict(method=info['method'], config=info['config'],
                  known_ratio=info['known_ratio'], checkpoint=ckpt,
                  checkpoint_kind=info['checkpoint'], resumed=resumed,
                  metrics=metrics, train_s=round(train_s, 1),
                  test_s=round(time.time() - t1, 1),
                  signature=info['signature'])
    with open(osp.join(run_dir, 'test_metrics.json'), 'w') as f:
        json.dump(metrics, f, indent=1)
    with open(osp.join(run_dir, RESULT), 'w') as f:
        json.dump(result, f, indent=1)
    return result


# ----------------------------------------------------------------------
def prepare_run(config: str, ratio: float, args) -> str:
    """Create (or check) the run dir; return its path."""
    method = method_name(config)
    run_dir = osp.join(args.work_dir, method, ratio_tag(ratio))
    cfg = build_run_config(config, ratio, args.epochs, args.data_root,
                           args.cfg_options)
    text = cfg.pretty_text
    sig = config_signature(text)
    info_file = osp.join(run_dir, RUN_INFO)
    if osp.isfile(info_file):
        with open(info_file) as f:
            old = json.load(f)
        if old.get('signature') != sig or \
                old.get('checkpoint') != args.checkpoint:
            if not args.overwrite:
                raise SystemExit(
                    f'{run_dir} was made with other settings (config '
                    f"signature {old.get('signature')} / checkpoint "
                    f"{old.get('checkpoint')}, now {sig} / {args.checkpoint})"
                    ': use another --work-dir, or --overwrite to redo it')
            shutil.rmtree(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    if not osp.isfile(info_file):
        with open(osp.join(run_dir, RUN_CONFIG), 'w') as f:
            f.write(text)
        with open(info_file, 'w') as f:
            json.dump(dict(method=method, config=config, known_ratio=ratio,
                           checkpoint=args.checkpoint, signature=sig), f,
                      indent=1)
    return run_dir


def launch_run(run_dir: str) -> None:
    """``python tools/sweep.py --run-one RUN_DIR`` with its output in
    ``RUN_DIR/sweep.log``.

    Raises:
        RuntimeError: the run failed (the end of its log is in the message).
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    log = osp.join(run_dir, 'sweep.log')
    with open(log, 'a') as f:
        proc = subprocess.run(
            [sys.executable, osp.abspath(__file__), '--run-one', run_dir],
            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env)
    if proc.returncode != 0:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'run {run_dir} failed (exit {proc.returncode}); '
                           f'end of {log}:\n{tail}')


def pick_metric(metrics: Dict[str, float], metric: Optional[str]) -> str:
    if metric is not None:
        if metric not in metrics:
            raise KeyError(f'--metric {metric!r} not among {sorted(metrics)}')
        return metric
    keys = sorted(k for k in metrics if 'mAP' in k)
    if not keys:
        raise KeyError(f'no mAP among the test metrics {sorted(metrics)}; '
                       'give --metric')
    return keys[0]


def collect(run_dirs: Sequence[str]) -> List[Dict]:
    results = []
    for d in run_dirs:
        f = osp.join(d, RESULT)
        if osp.isfile(f):
            with open(f) as fh:
                r = json.load(fh)
            r['work_dir'] = d
            results.append(r)
    return results


def write_report(results: List[Dict], work_dir: str,
                 metric: Optional[str]) -> Dict[str, str]:
    """Write ``sweep.csv`` and ``sweep.png``; return their paths."""
    from mlrpl_mm.visualization import plot_map_vs_proportion
    if not results:
        raise RuntimeError(f'no finished run under {work_dir!r}')
    key = pick_metric(results[0]['metrics'], metric)
    metric_keys = sorted({k for r in results for k in r['metrics']})
    order = sorted(results, key=lambda r: (r['method'], r['known_ratio']))
    csv_file = osp.join(work_dir, 'sweep.csv')
    with open(csv_file, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['method', 'known_ratio', key] +
                   [k for k in metric_keys if k != key] +
                   ['config', 'checkpoint', 'train_s', 'work_dir'])
        for r in order:
            m = r['metrics']
            w.writerow([r['method'], r['known_ratio'], f'{m[key]:.4f}'] +
                       [f'{m[k]:.4f}' if k in m else ''
                        for k in metric_keys if k != key] +
                       [r['config'], r['checkpoint'], r['train_s'],
                        r['work_dir']])
    png = plot_map_vs_proportion(
        [dict(method=r['method'], known_ratio=r['known_ratio'],
              value=r['metrics'][key]) for r in order],
        osp.join(work_dir, 'sweep.png'), metric=key)
    return dict(csv=csv_file, png=png, metric=key)


def main(argv=None):
    args = parse_args(argv)
    if args.run_one:
        run_one(args.run_one)
        return None
    configs = args.configs or default_configs()
    if not configs:
        raise SystemExit('no config: give --configs')
    if not args.configs and args.data_root is None and not args.report_only:
        ensure_demo_data()
    for c in configs:
        if not osp.isfile(c):
            raise SystemExit(f'config not found: {c}')
    if len({method_name(c) for c in configs}) != len(configs):
        raise SystemExit('two configs share a file name: '
                         + ', '.join(configs))
    os.makedirs(args.work_dir, exist_ok=True)
    run_dirs, failed = [], []
    t0 = time.time()
    for config in configs:
        for ratio in args.ratios:
            method = method_name(config)
            if args.report_only:
                run_dirs.append(osp.join(args.work_dir, method,
                                         ratio_tag(ratio)))
                continue
            run_dir = prepare_run(config, ratio, args)
            run_dirs.append(run_dir)
            tag = f'{method} p={ratio:g}'
            if osp.isfile(osp.join(run_dir, RESULT)):
                print(f'[sweep] {tag}: done, skipped ({run_dir})', flush=True)
                continue
            state = 'resuming' if osp.isfile(
                osp.join(run_dir, 'last_checkpoint')) else 'training'
            print(f'[sweep] {tag}: {state} ({run_dir}) ...', flush=True)
            t = time.time()
            try:
                if args.in_process:
                    run_one(run_dir)
                else:
                    launch_run(run_dir)
            except Exception as err:  # noqa: B902 (reported, --keep-going)
                if not args.keep_going:
                    raise
                failed.append(run_dir)
                print(f'[sweep] {tag}: FAILED\n{err}', flush=True)
                continue
            res = collect([run_dir])[0]
            key = pick_metric(res['metrics'], args.metric)
            print(f'[sweep] {tag}: {key} = {res["metrics"][key]:.2f} '
                  f'({time.time() - t:.0f} s)', flush=True)
    results = collect(run_dirs)
    out = write_report(results, args.work_dir, args.metric)
    print(f'[sweep] {len(results)} run(s) in {time.time() - t0:.0f} s')
    key = out['metric']
    methods = sorted({r['method'] for r in results})
    ratios = sorted({r['known_ratio'] for r in results})
    table = {(r['method'], r['known_ratio']): r['metrics'][key]
             for r in results}
    print(f'{key} on the test split:')
    print('method'.ljust(14) + ''.join(f'{ratio_tag(p):>8}' for p in ratios))
    for m in methods:
        print(m.ljust(14) + ''.join(
            f'{table[(m, p)]:8.2f}' if (m, p) in table else f'{"-":>8}'
            for p in ratios))
    print(f"csv : {out['csv']}\nplot: {out['png']}")
    if failed:
        raise SystemExit(f'{len(failed)} run(s) failed: ' + ', '.join(failed))
    return out


if __name__ == '__main__':
    main()
