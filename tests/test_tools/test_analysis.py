"""tools/analysis/*: non-empty PNGs from a real (tiny) work dir, and the
plotted values are those of the run."""
import importlib.util
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch

from mlrpl_mm.utils import safe_torch_load

from .conftest import ROOT
from .tiny_run import tiny_run


@pytest.fixture(scope='module')
def run(tmp_path_factory, demo_data):
    return tiny_run(tmp_path_factory, demo_data)


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'analysis_{name}', osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _assert_png(path):
    assert osp.isfile(path), path
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert np.ptp(img[..., :3]) > 0      # not a blank canvas


def _naive_voc_ap(scores, targets):
    """All-point interpolated AP of one class, written out directly."""
    keep = targets != 0
    s, t = scores[keep], targets[keep] == 1
    order = np.argsort(-s, kind='stable')
    t = t[order]
    ap, tp = 0.0, 0
    prec = []
    for k in range(len(t)):
        tp += t[k]
        prec.append(tp / (k + 1))
    for k in range(len(t)):
        if t[k]:
            ap += max(prec[k:]) / t.sum()
    return 100 * ap


def test_plot_curves(run, tmp_path):
    from mlrpl_mm.visualization import load_scalars
    out = _tool('plot_curves').main([run['work_dir'],
                                     '--out', str(tmp_path / 'c.png')])
    _assert_png(out)
    default = _tool('plot_curves').main([run['work_dir']])
    assert default == osp.join(run['work_dir'], 'plots', 'training_curves.png')
    _assert_png(default)
    rows = load_scalars(run['work_dir'])
    assert sum('loss' in r for r in rows) >= 2      # logged every iteration
    with pytest.raises(SystemExit, match='not_a_key'):
        _tool('plot_curves').main([run['work_dir'], '--keys', 'not_a_key'])


def test_plot_per_class_ap_from_work_dir_and_predictions(run, tmp_path):
    from mlrpl_mm.visualization import load_per_class_ap, load_scalars
    out = _tool('plot_per_class_ap').main([run['work_dir'], '--out',
                                           str(tmp_path / 'ap.png')])
    _assert_png(out)
    ap, classes, src = load_per_class_ap(run['work_dir'])
    assert classes == [str(d) for d in range(10)] and src.endswith('.json')
    # the file is the last validation: its mean is the logged mAP
    val = [r for r in load_scalars(run['work_dir'])
           if 'multi-label/mAP_voc' in r]
    assert np.nanmean(ap) == pytest.approx(val[-1]['multi-label/mAP_voc'],
                                           abs=1e-3)
    # predictions .pkl (tools/test.py --out): AP computed here
    rng = np.random.RandomState(0)
    scores = rng.rand(30, 4).astype(np.float32)
    labels = np.where(rng.rand(30, 4) < 0.4, 1, -1).astype(np.int8)
    labels[:3, 2] = 0                                   # ignored entries
    pkl = tmp_path / 'preds.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump([dict(pred_score=torch.from_numpy(s), full_label=t)
                     for s, t in zip(scores, labels)], f)
    ap2, names, _ = load_per_class_ap(str(pkl))
    np.testing.assert_allclose(
        ap2, [_naive_voc_ap(scores[:, c], labels[:, c]) for c in range(4)],
        rtol=1e-10)
    out2 = _tool('plot_per_class_ap').main([str(pkl), '--classes', 'a,b,c,d'])
    _assert_png(out2)
    with pytest.raises(SystemExit, match='3 names for 4 classes'):
        _tool('plot_per_class_ap').main([str(pkl), '--classes', 'a,b,c'])
    empty = tmp_path / 'empty_wd'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='dump_per_class_ap=True'):
        load_per_class_ap(str(empty))


def test_plot_label_graph_from_dataset_and_checkpoint(run, tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    from mlrpl_mm.datasets import get_partial_labels
    from mlrpl_mm.visualization import (adjacency_from_checkpoint,
                                        label_graph_from_config)
    tool = _tool('plot_label_graph')
    # a work dir of a model without graph buffer: the training set's graph
    out = tool.main([run['work_dir'], '--out', str(tmp_path / 'g.png')])
    _assert_png(out)
    adj, classes = label_graph_from_config(run['config'])
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(run['config'])
    y = get_partial_labels(DATASETS.build(cfg.train_dataloader.dataset))
    assert (y == 0).any()                      # partial labels, not full
    naive = np.zeros((10, 10))
    for i in range(10):
        rows = y[:, i] == 1
        for j in range(10):
            naive[i, j] = (y[rows, j] == 1).sum() / rows.sum() \
                if rows.any() else 0.0
    np.testing.assert_allclose(adj, naive, rtol=1e-6)
    assert classes == [str(d) for d in range(10)]
    with pytest.raises(SystemExit, match='no label-graph buffer'):
        tool.main([run['work_dir'], '--source', 'checkpoint'])

    # a checkpoint holding a head graph buffer (as HST/SSGRL heads store it)
    ck = safe_torch_load(run['checkpoint'], map_location='cpu')
    graph = torch.rand(10, 10)
    ck['state_dict']['head.trunk.adj'] = graph
    path = str(tmp_path / 'with_graph.pth')
    torch.save(ck, path)
    got, key, meta = adjacency_from_checkpoint(path)
    assert key == 'head.trunk.adj'
    np.testing.assert_allclose(got, graph.numpy())
    out2 = tool.main([path])
    assert out2 == str(tmp_path / 'plots' / 'label_graph.png')
    _assert_png(out2)
    wd = tmp_path / 'wd_graph'
    shutil.copytree(run['work_dir'], wd)
    torch.save(ck, str(wd / osp.basename(run['checkpoint'])))
    (wd / 'last_checkpoint').write_text(str(wd / osp.basename(
        run['checkpoint'])))
    _assert_png(tool.main([str(wd), '--source', 'checkpoint']))
    with pytest.raises(KeyError, match='head.missing'):
        adjacency_from_checkpoint(path, key='head.missing')
    from mlrpl_mm.visualization import class_names_from_meta
    assert class_names_from_meta(meta, 10) == [str(d) for d in range(10)]
    assert class_names_from_meta(meta, 3) == ['0', '1', '2']


def test_plot_curves_of_an_hst_run_shows_pseudo_labels(demo_data,
                                                       tmp_path_factory):
    """A real (tiny) HST work dir through its pseudo-label phase: the curves
    include the pseudo-label counts and their precision vs the hidden labels
    (PseudoLabelPrecisionHook) and the HST loss terms."""
    import sys

    from mlrpl_mm.visualization import load_scalars

    from .conftest import run_tool, tiny_options
    work = str(tmp_path_factory.mktemp('hst_run') / 'wd')
    run_tool([sys.executable, 'tools/train.py', 'configs/hst_demo.py'] +
             tiny_options(demo_data, work, max_epochs=2, extra=[
                 'model.head.trunk.feat_channels=16', 'model.head.trunk.inter_channels=8',
                 'model.head.trunk.out_channels=16',
                 'model.head.trunk.class_embedding.embed_dims=8',
                 'model.head.pseudo_label_epoch=1',
                 'custom_hooks.1.start_epoch=1', 'custom_hooks.1.batch_size=8',
                 'train_cfg.val_interval=1']))
    rows = load_scalars(work)
    keys = {k for r in rows for k in r}
    for k in ('loss_cls', 'loss_cooc', 'loss_instance', 'loss_cls_ist',
              'loss_margin_ist', 'loss_cls_cst', 'loss_margin_cst',
              'loss_prototype', 'ist_new_pos', 'cst_new_pos', 'ist_margin',
              'cst_margin'):
        assert k in keys, (k, sorted(keys))
    # PseudoLabelPrecisionHook: counts every iteration of the phase; the
    # precision once a pseudo positive exists (undefined before)
    assert {'ist_pseudo_pos', 'cst_pseudo_pos'} <= keys, sorted(keys)
    for name in ('ist', 'cst'):
        if any(r.get(f'{name}_pseudo_pos', 0) > 0 for r in rows):
            assert f'{name}_precision' in keys, sorted(keys)
    tool = _tool('plot_curves')
    _assert_png(tool.main([work]))
    # grouped panels, the lr, and the phase start (epoch 1 here) read from
    # the run's config
    from mlrpl_mm.visualization.plots import (_phase_starts_of,
                                              training_curves_figure)
    phases = _phase_starts_of(work)
    assert phases == {1: ['pseudo labels', 'CSTPrototypeHook']}, phases
    fig, groups = training_curves_figure(rows, phase_starts=phases)
    assert list(groups) == ['losses', 'pseudo labels', 'learnable scalars',
                            'learning rate', 'validation']
    assert {k for k, _ in groups['pseudo labels']} >= {
        'ist_new_pos', 'cst_new_pos', 'ist_pseudo_pos', 'cst_pseudo_pos'}
    assert {k for k, _ in groups['learnable scalars']} == {'ist_margin',
                                                          'cst_margin'}
    end_of_epoch_1 = max(r['step'] for r in rows
                         if 'loss' in r and r['epoch'] == 1)
    for _, ax in groups['losses']:
        assert end_of_epoch_1 in _vlines(ax)
    assert _vlines(groups['validation'][0][1]) == [1.0]
    import matplotlib.pyplot as plt
    plt.close(fig)
    chosen = ['loss_cooc', 'ist_new_pos', 'cst_new_pos', 'ist_margin',
              'cst_margin'] + sorted(
        k for k in keys if k.endswith(('_precision', '_pseudo_pos')))
    _assert_png(tool.main([work, '--keys'] + chosen +
                          ['--out', str(tmp_path_factory.mktemp('p') / 'c.png')]))


def _vlines(ax):
    """x of the vertical lines (axvline) of an Axes."""
    return [float(ln.get_xdata()[0]) for ln in ax.lines
            if len(set(map(float, ln.get_xdata()))) == 1 and
            len(ln.get_xdata()) == 2]


def test_training_curves_grouped_phase_marked_lr_and_val_points(tmp_path):
    """Issue 18/7 on a synthetic log of the protocol's shape: 8 epochs of 4
    iterations, pseudo labels and the CST prototypes from epoch 5."""
    import json

    import matplotlib.pyplot as plt
    from mmengine.config import Config

    from mlrpl_mm.visualization import plot_training_curves
    from mlrpl_mm.visualization.plots import (phase_starts_from_config,
                                              training_curves_figure)
    rows = []
    for step in range(1, 33):
        epoch = (step - 1) // 4 + 1
        r = dict(loss=1.0 / step, loss_cls=0.5 / step, lr=1e-3 * 0.1 ** (
            epoch > 6), epoch=epoch, iter=step, step=step, time=0.1)
        if epoch > 5:
            r.update(ist_new_pos=3.0 * step, ist_precision=0.8,
                     cst_margin=0.5 + step / 100)
        rows.append(r)
        if step % 4 == 0:
            rows.append({'multi-label/mAP_voc': 20.0 + epoch,
                         'multi-label/CF1': 10.0 + epoch, 'step': epoch})
    cfg = Config(dict(
        model=dict(head=dict(type='HSTHead', pseudo_label_epoch=5)),
        custom_hooks=[dict(type='LabelGraphHook'),
                      dict(type='CSTPrototypeHook', start_epoch=5)]))
    phases = phase_starts_from_config(cfg)
    assert phases == {5: ['pseudo labels', 'CSTPrototypeHook']}
    fig, groups = training_curves_figure(rows, phase_starts=phases)
    assert list(groups) == ['losses', 'pseudo labels', 'learnable scalars',
                            'learning rate', 'validation']
    assert [k for k, _ in groups['losses']] == ['loss', 'loss_cls']
    assert [k for k, _ in groups['pseudo labels']] == ['ist_new_pos',
                                                      'ist_precision']
    assert [k for k, _ in groups['learnable scalars']] == ['cst_margin']
    (key, lr_ax), = groups['learning rate']
    lr_line = [ln for ln in lr_ax.lines if len(ln.get_xdata()) == 32][0]
    np.testing.assert_allclose(lr_line.get_ydata(), [r['lr'] for r in rows
                                                     if 'lr' in r])
    # the phase start: after iteration 20 (end of epoch 5) on every
    # training panel, at epoch 5 on the validation panel
    for g in ('losses', 'pseudo labels', 'learnable scalars',
              'learning rate'):
        for _, ax in groups[g]:
            assert _vlines(ax) == [20.0], (g, _vlines(ax))
    val_ax = groups['validation'][0][1]
    assert _vlines(val_ax) == [5.0]
    val_lines = [ln for ln in val_ax.lines if len(ln.get_xdata()) == 8]
    assert len(val_lines) == 2      # mAP and CF1, 8 evaluations each
    for ln in val_lines:
        assert ln.get_marker() == 'o' and ln.get_markersize() >= 6
    plt.close(fig)
    # through the file API: scalars.json + the run's vis_data/config.py
    vis = tmp_path / 'work' / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    with open(vis / 'scalars.json', 'w') as f:
        f.write('\n'.join(json.dumps(r) for r in rows) + '\n')
    cfg.dump(str(vis / 'config.py'))
    _assert_png(plot_training_curves(str(tmp_path / 'work'),
                                     str(tmp_path / 'c.png')))
