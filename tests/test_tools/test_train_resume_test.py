"""tools/train.py, --resume, tools/test.py and a 2-process CPU dist_train."""
import json
import os
import os.path as osp
import re
import sys

import pytest
import torch

import mlrpl_mm  # noqa: F401  (allow-list for weights_only loading)
from mlrpl_mm.utils import safe_torch_load

from .conftest import ROOT, run_tool, tiny_options

CFG = 'configs/pbce_demo.py'
# deterministic training pipeline: this test isolates the resume of the
# weights, optimizer, scheduler and loop counters (the random streams of a
# random pipeline are restored by RandomStateHook, tested with random
# augmentation in tests/test_reliability/test_method_state_resume.py)
DET_CFG = """
_base_ = [{base!r}]
train_dataloader = dict(dataset=dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64)),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label'])])))
"""


def _det_config(tmp_path):
    path = tmp_path / 'pbce_demo_det.py'
    path.write_text(DET_CFG.format(base=osp.join(ROOT, CFG)))
    return str(path)


def _weights(path):
    ck = safe_torch_load(path, map_location='cpu')  # weights_only + allow-list
    return ck['state_dict'], ck['meta']


def test_resume_matches_straight_training(demo_data, tmp_path):
    straight = str(tmp_path / 'straight')
    resumed = str(tmp_path / 'resumed')
    cfg = _det_config(tmp_path)
    run_tool([sys.executable, 'tools/train.py', cfg] +
             tiny_options(demo_data, straight, 3))
    run_tool([sys.executable, 'tools/train.py', cfg] +
             tiny_options(demo_data, resumed, 2))
    first = osp.join(resumed, 'epoch_1.pth')
    stamp = os.stat(first).st_mtime_ns
    # resume from the epoch-2 checkpoint and go on to epoch 3
    proc = run_tool([sys.executable, 'tools/train.py', cfg, '--resume',
                     osp.join(resumed, 'epoch_2.pth')] +
                    tiny_options(demo_data, resumed, 3))
    # it really resumed (a run that ignored --resume and trained 3 epochs
    # from scratch would end with the same weights): the checkpoint was
    # loaded, only epoch 3 was trained, the earlier files are untouched
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 2, iter: 12' in log, log[-3000:]
    assert re.search(r'Epoch\(train\)\s*\[3\]', log)
    assert not re.search(r'Epoch\(train\)\s*\[[12]\]', log)
    assert os.stat(first).st_mtime_ns == stamp
    a, meta_a = _weights(osp.join(straight, 'epoch_3.pth'))
    b, meta_b = _weights(osp.join(resumed, 'epoch_3.pth'))
    assert meta_a['epoch'] == meta_b['epoch'] == 3
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_test_tool_reproduces_validation_map(demo_data, tmp_path):
    work = str(tmp_path / 'w')
    run_tool([sys.executable, 'tools/train.py', CFG] +
             tiny_options(demo_data, work, 1))
    out = str(tmp_path / 'metrics.json')
    run_tool([sys.executable, 'tools/test.py', CFG, osp.join(work, 'epoch_1.pth'),
              '--out', out, '--out-item', 'metrics'] +
             tiny_options(demo_data, str(tmp_path / 't'), 1))
    with open(out) as f:
        test_metrics = json.load(f)
    key = [k for k in test_metrics if 'mAP' in k][0]
    from mlrpl_mm.visualization import load_scalars
    val = [r for r in load_scalars(work) if key in r][-1]
    assert test_metrics[key] == pytest.approx(val[key], abs=1e-6)
    assert 0.0 < test_metrics[key] <= 100.0
    # tools/dist_test.sh: 2 CPU processes give the same metrics exactly
    # (every image once); the JSON is written by rank 0 only
    dist_out = str(tmp_path / 'metrics_dist.json')
    proc = run_tool(['bash', 'tools/dist_test.sh', CFG,
                     osp.join(work, 'epoch_1.pth'), '2', '--out', dist_out,
                     '--out-item', 'metrics'] +
                    tiny_options(demo_data, str(tmp_path / 'td'), 1),
                    env=dict(PYTHON=sys.executable, PORT='29519'))
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    with open(dist_out) as f:
        dist_metrics = json.load(f)
    assert dist_metrics.keys() == test_metrics.keys()
    for k, v in test_metrics.items():
        assert dist_metrics[k] == pytest.approx(v, rel=1e-12, abs=1e-12), k


def test_dist_train_two_cpu_processes(demo_data, tmp_path):
    work = str(tmp_path / 'dist')
    proc = run_tool(['bash', 'tools/dist_train.sh', CFG, '2'] +
                    tiny_options(demo_data, work, 1),
                    env=dict(PYTHON=sys.executable, PORT='29517'))
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    log = proc.stdout + proc.stderr
    assert 'Distributed training: True' in log
    # 48 training images, batch 8: each of the 2 ranks runs 3 iterations
    # (one process alone would run 6)
    assert re.search(r'Epoch\(train\)\s*\[1\]\[3/3\]', log), log[-3000:]
    assert not re.search(r'\[\s*\d/6\]', log)
