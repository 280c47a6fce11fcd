"""benchmarks/bench_scale.py in CI size: the generated annotation files load
through the real dataset classes, every part reports time and memory, and
the growth exponents are the log-log slopes."""
import importlib.util
import json
import os.path as osp

import numpy as np
import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'benchmarks', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_files_are_the_real_formats(tmp_path):
    bench = _load('bench_scale')
    for kind, C in (('coco', 80), ('vg', 200), ('nus', 1006)):
        root = dict(coco=bench.write_coco, vg=bench.write_vg,
                    nus=bench.write_nus)[kind](str(tmp_path / kind), 50)
        ds = bench._partial(bench.dataset_cfg(kind, root))
        assert len(ds) == 50 and ds.partial_labels.shape == (50, C)
        known = float((ds.partial_labels != 0).mean())
        assert 0.25 < known < 0.35  # the 30% known protocol
        assert (ds.dataset.full_labels == 1).sum(1).mean() > 1
    nus = ds.dataset
    assert len(nus.metainfo['unseen_classes']) == 81
    assert len(nus.metainfo['seen_classes']) == 925


def test_parts_and_exponents(tmp_path):
    bench = _load('bench_scale')
    bench.DIMS = 16
    out = tmp_path / 'scale.json'
    rows, exps = bench.main([
        '--sizes', '100', '300', '--in-process', '--dims', '16',
        '--parts', 'kmeans', 'map', 'buffers',
        '--work', str(tmp_path / 'work'), '--json', str(out),
        '--md', str(tmp_path / 'scale.md')])
    names = {r['name'] for r in rows}
    assert 'MultiLabelMAP (C=80)' in names
    assert 'ROLE estimator step (every iteration, B=32)' in names
    assert all('time_s' in r and r['time_s'] >= 0 for r in rows), rows
    # checkpoint file of the per-sample state: linear in N (exponent 1)
    ent = {e['name']: e for e in exps}
    role = ent['ROLE state (C=1006): checkpoint save']
    assert role['size_mib_exp'] == pytest.approx(1.0, abs=0.05)
    sizes = [r['size_mib'] for r in rows
             if r['name'] == 'ROLE state (C=1006): checkpoint save']
    assert sizes[1] / sizes[0] == pytest.approx(3.0, rel=0.05)
    assert 3 * 100 * 1006 * 4 / 2**20 < sizes[0]
    # exponents: the slope of log(value) on log(N)
    for e in exps:
        rs = [r for r in rows if r['name'] == e['name']]
        if 'time_s_exp' in e and all(r['time_s'] > 0 for r in rs):
            t = [r['time_s'] for r in sorted(rs, key=lambda r: r['n'])]
            assert e['time_s_exp'] == pytest.approx(
                np.log(t[1] / t[0]) / np.log(3.0))
    data = json.loads(out.read_text())
    assert len(data['rows']) == len(rows)
    md = (tmp_path / 'scale.md').read_text()
    assert '| quantity | sizes | time exponent' in md


def test_exponent_fit():
    bench = _load('bench_scale')
    rows = [dict(name='q', n=n, time_s=2e-6 * n ** 2, peak_mib=0.5 * n)
            for n in (1000, 10000, 100000)]
    (e, ) = bench.exponents(rows)
    assert e['time_s_exp'] == pytest.approx(2.0)
    assert e['peak_mib_exp'] == pytest.approx(1.0)
    assert e['time_s_exp_last'] == pytest.approx(2.0)
