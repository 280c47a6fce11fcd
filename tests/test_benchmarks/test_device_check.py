"""benchmarks/device_check.sh in tiny mode on CPU: every stage runs (the
training step of each case, the data-loading rate, a short tools/train.py
with every phase on from epoch 0) and the results table gets one row per
stage."""
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.slow
def test_device_check_tiny_cpu(tmp_path):
    out = tmp_path / 'device_results.md'
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               PYTHONPATH=ROOT)
    proc = subprocess.run(
        ['bash', 'benchmarks/device_check.sh', '--device', 'cpu', '--tiny',
         '--methods', 'hst', '--work', str(tmp_path / 'work'),
         '--out', str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'failed' not in proc.stdout, proc.stdout[-3000:]
    text = out.read_text()
    assert '- device: CPU' in text and 'torch ' in text
    for case in ('plain_r101', 'hst'):  # (tiny mode: the ViT cases of
        # bench_step are tested in test_bench_step.py)
        assert f'| {case} | 80 | 2 |' in text
    assert '| hst | 80 | 2 | 448 |' in text and 'x |' in text  # a ratio
    assert 'head.trunk.gnn' in text  # the profile table
    assert 'img/s per worker' in text
    row = [line for line in text.splitlines()
           if line.startswith('| hst | 2 |')]
    assert row, text  # the 2-iteration tools/train.py run
    log = (tmp_path / 'work' / 'train_hst.log').read_text()
    assert 'CSTPrototypeHook: epoch 0' in log
    assert 'CPUAutocastOptimWrapper' in log  # --amp on CPU
