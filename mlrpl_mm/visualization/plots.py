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


def _save_figure(fig, out_file: str) -> str:
    """Write ``fig`` to the PNG ``out_file`` (100 dpi; its folder created)
    and close it; returns ``out_file``."""
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fig.savefig(out_file, dpi=100)
    _plt().close(fig)
    return out_file


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


#: Panel groups of :func:`plot_training_curves`, in figure order.
CURVE_GROUPS = ('losses', 'pseudo labels', 'learnable scalars',
                'learning rate', 'validation')
#: Substrings of the pseudo-label diagnostics the heads and
#: ``PseudoLabelPrecisionHook`` log (counts, precision, blended fraction).
PSEUDO_LABEL_KEYS = ('new_pos', 'pseudo', 'precision', 'recall', 'blended')
_BOOKKEEPING = {'step', 'iter', 'epoch', 'time', 'data_time', 'memory',
                'base_lr', 'eta'}


def curve_group(key: str) -> str:
    """The panel group of a training key: ``'losses'`` (``loss*``),
    ``'pseudo labels'`` (counts / precision of the pseudo labels),
    ``'learning rate'`` (``lr``), else ``'learnable scalars'`` (the heads'
    margins, IPRB alpha, PPRB beta, ...)."""
    if key == 'lr' or key.endswith('/lr'):
        return 'learning rate'
    if key.startswith('loss'):
        return 'losses'
    if any(t in key for t in PSEUDO_LABEL_KEYS):
        return 'pseudo labels'
    return 'learnable scalars'


def phase_starts_from_config(cfg) -> Dict[int, List[str]]:
    """0-based epochs at which a method phase starts, from a config: the
    head's ``pseudo_label_epoch`` (HST) / ``blend_start_epoch`` (DSRB) and
    the ``start_epoch`` of the ``custom_hooks`` (prototype hooks). Epoch 0
    (from the start) is left out. ``{5: ['pseudo labels', ...]}``."""
    out: Dict[int, List[str]] = {}

    def add(epoch, name):
        if isinstance(epoch, int) and epoch > 0:
            out.setdefault(epoch, []).append(name)

    head = (cfg.get('model', None) or {}).get('head', None) or {}
    add(head.get('pseudo_label_epoch', None), 'pseudo labels')
    add(head.get('blend_start_epoch', None), 'blending')
    for hook in cfg.get('custom_hooks', None) or []:
        add(hook.get('start_epoch', None), str(hook.get('type', 'hook')))
    return out


def _phase_starts_of(work_dir_or_file: str) -> Dict[int, List[str]]:
    """Phase starts of a run's config: the ``vis_data/config.py`` that
    ``LocalVisBackend`` writes next to the scalars, else the config dumped
    at the top of the work dir (none when neither is there)."""
    from mmengine.config import Config

    from .work_dir import find_work_dir_config
    path = work_dir_or_file if work_dir_or_file.endswith('.json') else \
        find_scalars_file(work_dir_or_file)
    candidates = [osp.join(osp.dirname(path), 'config.py')]
    if osp.isdir(work_dir_or_file):
        try:
            candidates.append(find_work_dir_config(work_dir_or_file))
        except FileNotFoundError:
            pass
    for cfg_file in candidates:
        if osp.isfile(cfg_file):
            return phase_starts_from_config(Config.fromfile(cfg_file))
    return {}


def training_curves_figure(rows: Sequence[Dict],
                           keys: Optional[Sequence[str]] = None,
                           phase_starts: Optional[Dict[int, List[str]]] = None):
    """The figure of :func:`plot_training_curves` from scalar rows.

    One figure row per group of :data:`CURVE_GROUPS` that has data, one
    panel per key (training keys vs iteration; the validation mAP / F1 vs
    epoch with a marker on every evaluation); a dashed vertical line at
    each phase start (0-based epoch e: after the last iteration of epoch e
    on the training panels, at epoch e on the validation panel).

    Returns:
        (figure, dict group -> list of (key, Axes)).
    """
    train = [r for r in rows if 'loss' in r]
    val = [r for r in rows if 'loss' not in r and any(
        'mAP' in k or 'AP' in k for k in r)]
    if keys is None:
        keys = sorted({k for r in train for k, v in r.items()
                       if k not in _BOOKKEEPING and
                       isinstance(v, (int, float))})
    groups: Dict[str, List[str]] = {g: [] for g in CURVE_GROUPS}
    for k in keys:
        groups[curve_group(k)].append(k)
    val_keys = sorted({k for r in val for k in r
                       if 'mAP' in k or k.endswith('F1')})
    if val_keys:
        groups['validation'] = ['validation']
    groups = {g: ks for g, ks in groups.items() if ks}
    if not groups:
        raise ValueError('nothing to plot (no training or validation row)')
    phase_starts = phase_starts or {}
    # iteration at the end of each (1-based) logged epoch: LoggerHook logs
    # the last iteration of every epoch
    epoch_end: Dict[int, float] = {}
    for r in train:
        if 'epoch' in r and 'step' in r:
            epoch_end[int(r['epoch'])] = max(epoch_end.get(int(r['epoch']), 0),
                                             r['step'])

    max_step = max([r.get('step', 0) for r in train] or [0])
    cols = min(4, max(len(ks) for ks in groups.values()))
    layout = [(g, ks[i:i + cols]) for g, ks in groups.items()
              for i in range(0, len(ks), cols)]
    plt = _plt()
    fig, axes = plt.subplots(len(layout), cols,
                             figsize=(4.2 * cols, 3.0 * len(layout)),
                             squeeze=False)
    out: Dict[str, list] = {g: [] for g in groups}
    for row_axes, (group, row_keys) in zip(axes, layout):
        for j, ax in enumerate(row_axes):
            if j >= len(row_keys):
                ax.axis('off')
                continue
            key = row_keys[j]
            if group == 'validation':
                for k in val_keys:
                    pts = [(r.get('step', i), r[k]) for i, r in enumerate(val)
                           if k in r]
                    ax.plot([p[0] for p in pts], [p[1] for p in pts],
                            marker='o', markersize=6, lw=1.2, label=k)
                ax.set_xlabel('epoch', fontsize=8)
                ax.legend(fontsize=7)
                ax.set_title('validation', fontsize=9)
                phase_x = {e: float(e) for e in phase_starts}
            else:
                pts = [(r.get('step', i), r[key]) for i, r in enumerate(train)
                       if key in r]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1,
                        marker='o' if len(pts) == 1 else None)
                ax.set_title(key, fontsize=9)
                ax.set_xlabel('iteration', fontsize=8)
                if max_step > 0:  # one iteration axis for every panel
                    ax.set_xlim(0, max_step * 1.02)
                phase_x = {e: epoch_end[e] for e in phase_starts
                           if e in epoch_end}
            for e, x in sorted(phase_x.items()):
                ax.axvline(x, color='tab:red', ls='--', lw=1)
                ax.text(x, 0.98, f' epoch {e}: ' + ', '.join(phase_starts[e]),
                        transform=ax.get_xaxis_transform(), color='tab:red',
                        fontsize=6, va='top', rotation=90)
            if j == 0:
                ax.set_ylabel(group, fontsize=10, fontweight='bold')
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            out[group].append((key, ax))
    fig.tight_layout()
    return fig, out


def plot_training_curves(work_dir: str, out_file: str,
                         keys: Optional[Sequence[str]] = None,
                         phase_starts: Optional[Dict[int, List[str]]] = None
                         ) -> str:
    """Plot the training curves of a run into one PNG, grouped in rows:
    losses, pseudo-label diagnostics, learnable scalars, learning rate
    (vs iteration) and validation metrics (vs epoch, a marker per
    evaluation), with the method's phase starts marked
    (:func:`training_curves_figure`).

    Args:
        work_dir: mmengine work dir (or a scalars.json path).
        out_file: PNG path.
        keys: training keys to plot; default: every numeric key except
            time bookkeeping.
        phase_starts: ``{0-based epoch: [names]}``; default: read from the
            config dumped in ``work_dir`` (:func:`phase_starts_from_config`;
            none for a scalars.json path).

    Returns:
        ``out_file``.
    """
    rows = load_scalars(work_dir)
    if phase_starts is None:
        phase_starts = _phase_starts_of(work_dir)
    try:
        fig, _ = training_curves_figure(rows, keys, phase_starts)
    except ValueError as err:
        raise ValueError(f'{work_dir!r}: {err}') from None
    return _save_figure(fig, out_file)


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
    return _save_figure(fig, out_file)


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
    return _save_figure(fig, out_file)


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
    return _save_figure(fig, out_file)
