"""tools/sweep.py on the demo dataset with tiny settings: CSV + PNG, the
known ratio reaching the training set, skip / resume, settings checks."""
import csv
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest

from mlrpl_mm.utils import safe_torch_load

from .conftest import ROOT, tiny_options


def _sweep_tool():
    spec = importlib.util.spec_from_file_location(
        'tool_sweep', osp.join(ROOT, 'tools', 'sweep.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _tiny_cfg_options(data_root):
    """tiny_options without the work dir, data roots and epochs (the sweep
    sets those itself)."""
    opts = tiny_options(data_root, 'unused', 1)
    opts = opts[opts.index('--cfg-options') + 1:]
    return [o for o in opts if 'data_root' not in o and 'max_epochs' not in o]


def test_ratio_tag_and_config_checks(tmp_path):
    sweep = _sweep_tool()
    assert [sweep.ratio_tag(r) for r in (0.1, 0.5, 0.9, 1.0, 0.25)] == \
        ['p10', 'p50', 'p90', 'p100', 'p25']
    assert sweep.ratio_tag(0.125) == 'p12_5'
    bad = tmp_path / 'spml.py'
    bad.write_text(f"_base_ = ['{ROOT}/configs/pbce_demo.py']\n"
                   "train_dataloader = dict(dataset=dict(mode='single_positive'))\n")
    with pytest.raises(ValueError, match="mode='proportion'"):
        sweep.build_run_config(str(bad), 0.5, None, None, {})
    cfg = sweep.build_run_config(osp.join(ROOT, 'configs/pbce_demo.py'), 0.4,
                                 3, '/data/x', {})
    assert cfg.train_dataloader.dataset.known_ratio == 0.4
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.train_dataloader.dataset.dataset.data_root == '/data/x'
    assert cfg.test_dataloader.dataset.data_root == '/data/x'
    with pytest.raises(SystemExit, match='not in'):
        sweep.parse_args(['--ratios', '0', '0.5'])


def test_sweep_writes_csv_and_plot_and_resumes(demo_data, tmp_path, capsys):
    sweep = _sweep_tool()
    work = str(tmp_path / 'sweep')
    argv = ['--configs', osp.join(ROOT, 'configs/pbce_demo.py'),
            '--ratios', '0.2', '0.8', '--epochs', '1', '--data-root',
            demo_data, '--work-dir', work, '--cfg-options'] + \
        _tiny_cfg_options(demo_data)
    out = sweep.main(['--in-process'] + argv)
    assert out['metric'] == 'multi-label/mAP_voc'

    # CSV: one row per proportion, values = each run's test metrics
    with open(out['csv']) as f:
        rows = list(csv.DictReader(f))
    assert [(r['method'], float(r['known_ratio'])) for r in rows] == \
        [('pbce_demo', 0.2), ('pbce_demo', 0.8)]
    for r in rows:
        run_dir = r['work_dir']
        with open(osp.join(run_dir, 'test_metrics.json')) as f:
            metrics = json.load(f)
        assert float(r['multi-label/mAP_voc']) == pytest.approx(
            metrics['multi-label/mAP_voc'], abs=1e-4)
        assert 0 < metrics['multi-label/mAP_voc'] <= 100
        # the ratio reached the training set (the dataset's metainfo is in
        # the checkpoint) and the run trained the requested epochs
        ck = safe_torch_load(r['checkpoint'], map_location='cpu')
        assert ck['meta']['dataset_meta']['known_ratio'] == \
            float(r['known_ratio'])
        assert ck['meta']['epoch'] == 1
    # PNG: a real, non-empty image
    with open(out['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    import matplotlib.image as mpimg
    img = mpimg.imread(out['png'])
    assert img.shape[0] > 100 and img.shape[1] > 100 and np.ptp(img) > 0

    # second call: everything done, nothing retrained
    p20, p80 = rows[0]['work_dir'], rows[1]['work_dir']
    stamps = {p: os.stat(osp.join(p, 'epoch_1.pth')).st_mtime_ns
              for p in (p20, p80)}
    capsys.readouterr()
    sweep.main(['--in-process'] + argv)
    assert capsys.readouterr().out.count('done, skipped') == 2

    # an interrupted run (checkpoint, no result) resumes instead of
    # retraining; here in a fresh interpreter (the default mode)
    os.remove(osp.join(p80, 'result.json'))
    os.remove(osp.join(p80, 'test_metrics.json'))
    sweep.main(argv)
    assert 'pbce_demo p=0.8: resuming' in capsys.readouterr().out
    with open(osp.join(p80, 'result.json')) as f:
        res = json.load(f)
    assert res['resumed'] is True
    assert res['metrics']['multi-label/mAP_voc'] == pytest.approx(
        float(rows[1]['multi-label/mAP_voc']), abs=1e-4)
    assert {p: os.stat(osp.join(p, 'epoch_1.pth')).st_mtime_ns
            for p in (p20, p80)} == stamps

    # other settings in the same work dir are refused
    with pytest.raises(SystemExit, match='other settings'):
        sweep.main(['--in-process'] + argv[:argv.index('--epochs')] +
                   ['--epochs', '2'] + argv[argv.index('--epochs') + 2:])
    # report only: the CSV again from the finished runs
    os.remove(out['csv'])
    sweep.main(argv + ['--report-only'])
    assert osp.isfile(out['csv'])


def test_sweep_several_methods_one_curve_each(demo_data, tmp_path,
                                              monkeypatch):
    """Two methods (partial BCE and partial ASL on the demo model): one CSV
    row per (method, p) with each run's own test metrics, and the plot gets
    one curve per method."""
    import mlrpl_mm.visualization as vis
    sweep = _sweep_tool()
    asl = tmp_path / 'pasl_demo.py'
    asl.write_text(f"_base_ = ['{ROOT}/configs/pbce_demo.py']\n"
                   "model = dict(head=dict(loss=dict(\n"
                   "    _delete_=True, type='PartialAsymmetricLoss')))\n")
    plotted = []
    real_plot = vis.plot_map_vs_proportion

    def spy(rows, out_file, **kwargs):
        plotted.append([dict(r) for r in rows])
        return real_plot(rows, out_file, **kwargs)

    monkeypatch.setattr(vis, 'plot_map_vs_proportion', spy)
    work = str(tmp_path / 'sweep2')
    out = sweep.main(['--in-process', '--configs',
                      osp.join(ROOT, 'configs/pbce_demo.py'), str(asl),
                      '--ratios', '0.5', '--epochs', '1', '--data-root',
                      demo_data, '--work-dir', work, '--cfg-options'] +
                     _tiny_cfg_options(demo_data))
    with open(out['csv']) as f:
        rows = list(csv.DictReader(f))
    assert [r['method'] for r in rows] == ['pasl_demo', 'pbce_demo']
    for r in rows:
        with open(osp.join(r['work_dir'], 'result.json')) as f:
            res = json.load(f)
        assert res['method'] == r['method']
        assert float(r['multi-label/mAP_voc']) == pytest.approx(
            res['metrics']['multi-label/mAP_voc'], abs=1e-4)
        cfg_text = open(osp.join(r['work_dir'], 'sweep_config.py')).read()
        assert ('PartialAsymmetricLoss' in cfg_text) == \
            (r['method'] == 'pasl_demo')
    (pts, ) = plotted
    assert sorted({p['method'] for p in pts}) == ['pasl_demo', 'pbce_demo']
    assert all(p['known_ratio'] == 0.5 for p in pts)
    with open(out['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_default_sweep_uses_the_light_demo_configs_and_builds_the_data(
        tmp_path, monkeypatch):
    """With no --configs the sweep trains the light demo configs (existing,
    proportion-protocol training sets, cheaper than the demo configs), and
    the demo dataset is generated when it is missing, not when present."""
    from mmengine.config import Config
    sweep = _sweep_tool()
    configs = sweep.default_configs()
    assert [sweep.method_name(c) for c in configs] == ['pbce_demo_lite',
                                                       'hst_demo_lite']
    for c in configs:
        cfg = sweep.build_run_config(osp.join(ROOT, c), 0.5, None, None, {})
        assert cfg.train_dataloader.dataset.known_ratio == 0.5
        full = Config.fromfile(osp.join(ROOT, c.replace('_lite', '')))
        assert cfg.train_cfg.max_epochs < full.train_cfg.max_epochs
        assert cfg.model.backbone.base_channels < full.model.backbone.get(
            'base_channels', 64)
    calls = []
    monkeypatch.setattr(sweep.subprocess, 'run',
                        lambda cmd, **kw: calls.append(cmd))
    sweep.ensure_demo_data(str(tmp_path / 'demo'))
    assert len(calls) == 1 and 'make_demo_dataset.py' in calls[0][1]
    assert calls[0][-1] == str(tmp_path / 'demo')
    ann = tmp_path / 'demo' / 'annotations'
    ann.mkdir(parents=True)
    (ann / 'instances_val2014.json').write_text('{}')
    sweep.ensure_demo_data(str(tmp_path / 'demo'))
    assert len(calls) == 1
