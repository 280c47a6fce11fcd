"""Plots from a work dir: training curves, per-class AP, label graphs.

All functions write PNG files with matplotlib's Agg backend (no display).
"""
import glob
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def find_scalars_file(work_dir: str) -> str:
    """The newest ``<timestamp>/vis_data/scalars.json`` under ``work_dir``
    that holds training rows (a ``loss``): a ``tools/test.py`` run into the
    same work dir adds a newer folder with the test metrics only. The
    newest file when none has training rows.

    Raises:
        FileNotFoundError: names the work dir when no log is there.
    """
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(
            f'no */vis_data/scalars.json under {work_dir!r}: is it an mmengine '
            'work dir with LocalVisBackend enabled?')
    for path in reversed(files):
        with open(path) as f:
            if any('"loss"' in line for line in f):
                return path
    return files[-1]


def load_scalars(work_dir_or_file: str) -> List[Dict]:
    """Read mmengine's JSON-lines scalar log (one dict per logged step)."""
    path = work_dir_or_file if work_dir_or_file.endswith('.json') \
        else find_scalars_file(work_dir_or_file)
    rows = []
    with open(path) as f:
        for i, line in enumerate(f):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}: line {i + 1} is not JSON: {err}')
    return rows


def plot_training_curves(work_dir: str, out_file: str,
                         keys: Optional[Sequence[str]] = None) -> str:
    """Plot every loss term and learnable scalar vs iteration, and the
    validation metrics vs epoch, into one PNG.

    Args:
        work_dir: mmengine work dir (or a scalars.json path).
        out_file: PNG path.
        keys: training keys to plot; default: every numeric key except
            time/lr bookkeeping.

    Returns:
        ``out_file``.
    """
    rows = load_scalars(work_dir)
    train = [r for r in rows if 'loss' in r]
    val = [r for r in rows if 'loss' not in r and any(
        'mAP' in k or 'AP' in k for k in r)]
    skip = {'step', 'iter', 'epoch', 'time', 'data_time', 'memory', 'lr',
            'base_lr', 'eta'}
    if keys is None:
        keys = sorted({k for r in train for k, v in r.items()
                       if k not in skip and isinstance(v, (int, float))})
    val_keys = sorted({k for r in val for k, v in r.items()
                       if k not in skip and isinstance(v, (int, float))})
    plt = _plt()
    n = len(keys) + (1 if val_keys else 0)
    if n == 0:
        raise ValueError(f'nothing to plot in {work_dir!r}')
    cols = min(3, n)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.2 * rows_n),
                             squeeze=False)
    for ax, k in zip(axes.flat, keys):
        pts = [(r.get('step', i), r[k]) for i, r in enumerate(train) if k in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(k, fontsize=9)
        ax.set_xlabel('iteration', fontsize=8)
    if val_keys:
        ax = axes.flat[len(keys)]
        for k in val_keys:
            if 'mAP' not in k and 'F1' not in k:
                continue
            pts = [(r.get('step', i), r[k]) for i, r in enumerate(val) if k in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o', label=k)
        ax.set_title('validation', fontsize=9)
        ax.set_xlabel('epoch', fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis('off')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def plot_per_class_ap(ap: Sequence[float], class_names: Sequence[str],
                      out_file: str, title: str = 'per-class AP') -> str:
    """Horizontal bar chart of the AP (percent) of every class, sorted."""
    ap = np.asarray(ap, dtype=float)
    if len(ap) != len(class_names):
        raise ValueError(f'{len(ap)} AP values for {len(class_names)} classes')
    order = np.argsort(ap)
    plt = _plt()
    h = max(3.0, 0.18 * len(ap) + 1)
    fig, ax = plt.subplots(figsize=(6, h))
    ax.barh(np.arange(len(ap)), ap[order], color='tab:blue')
    ax.set_yticks(np.arange(len(ap)))
    ax.set_yticklabels([class_names[i] for i in order],
                       fontsize=max(4, 9 - len(ap) // 40))
    ax.set_xlabel('AP (%)')
    ax.set_title(f'{title} (mAP {np.nanmean(ap):.2f})')
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def plot_label_graph(adj: np.ndarray, class_names: Sequence[str],
                     out_file: str, title: str = 'label co-occurrence') -> str:
    """Heatmap of a (C, C) label graph (e.g. A[i, j] = P(j | i))."""
    adj = np.asarray(adj, dtype=float)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or \
            adj.shape[0] != len(class_names):
        raise ValueError(f'label graph of shape {adj.shape} does not fit '
                         f'{len(class_names)} classes')
    plt = _plt()
    s = min(12, max(4, 0.12 * len(class_names) + 2))
    fig, ax = plt.subplots(figsize=(s + 1, s))
    im = ax.imshow(adj, cmap='viridis', vmin=0, vmax=1)
    if len(class_names) <= 40:
        ax.set_xticks(range(len(class_names)))
        ax.set_yticks(range(len(class_names)))
        ax.set_xticklabels(class_names, rotation=90, fontsize=7)
        ax.set_yticklabels(class_names, fontsize=7)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file


def plot_map_vs_proportion(rows: Sequence[Dict], out_file: str,
                           metric: str = 'mAP',
                           title: str = 'label efficiency') -> str:
    """mAP vs known-label proportion, one curve per method (the MLR-PL figure).

    Args:
        rows: dicts with ``method`` (str), ``known_ratio`` (float in (0, 1])
            and ``value`` (the metric, percent).
        out_file: PNG path.
        metric: y-axis label.
        title: Figure title.

    Returns:
        ``out_file``.
    """
    if not rows:
        raise ValueError('plot_map_vs_proportion: no row to plot')
    for r in rows:
        missing = {'method', 'known_ratio', 'value'} - set(r)
        if missing:
            raise KeyError(f'plot_map_vs_proportion: row {r} lacks '
                           f'{sorted(missing)}')
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in sorted({r['method'] for r in rows}):
        pts = sorted((100 * float(r['known_ratio']), float(r['value']))
                     for r in rows if r['method'] == method)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker='o',
                label=method)
    ratios = sorted({100 * float(r['known_ratio']) for r in rows})
    ax.set_xticks(ratios)
    ax.set_xticklabels([f'{p:g}' for p in ratios])
    ax.set_xlabel('known labels (%)')
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=100)
    plt.close(fig)
    return out_file
