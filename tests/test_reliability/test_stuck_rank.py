"""A stuck rank (SIGSTOP) no longer hangs a distributed job forever: the
other rank's collective fails after ``env_cfg.dist_cfg.timeout`` seconds
with an error naming the rank, the timeout and the config key, and the
process exits (no hang at exit)."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from mlrpl_mm.apis.launch import DEFAULT_DIST_TIMEOUT, collective_timeout

from .conftest import ROOT, tiny_options, write_user_config

TIMEOUT = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_stopped_rank_fails_the_job_within_the_timeout(rel_data, tmp_path):
    work = str(tmp_path / 'w')
    cfg = write_user_config(str(tmp_path / 'stuck.py'), 'configs/pbce_demo.py',
                            [dict(type='KillAtHook', epoch=1, inner_iter=1,
                                  sig='SIGSTOP', rank=1)])
    args = [sys.executable, 'tools/train.py', cfg, '--launcher', 'pytorch'] \
        + tiny_options(rel_data, work, 2, [
            'train_dataloader.batch_size=4',
            f'env_cfg.dist_cfg.timeout={TIMEOUT}'])
    port = str(_free_port())
    procs, logs = [], []
    try:
        for rank in (0, 1):
            env = dict(os.environ, OMP_NUM_THREADS='1', RANK=str(rank),
                       LOCAL_RANK=str(rank), WORLD_SIZE='2',
                       LOCAL_WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                       MASTER_PORT=port,
                       PYTHONPATH=ROOT + os.pathsep +
                       os.environ.get('PYTHONPATH', ''))
            logs.append(open(tmp_path / f'rank{rank}.log', 'w+'))
            procs.append(subprocess.Popen(args, cwd=ROOT, env=env,
                                          stdout=logs[-1],
                                          stderr=subprocess.STDOUT))
        marker = osp.join(work, '.killed')  # written just before SIGSTOP
        rc = procs[0].wait(timeout=300)
        ended = time.time()
        logs[0].seek(0)
        out = logs[0].read()
        assert osp.exists(marker), out[-3000:]
        # rank 1 is still stopped: nothing but the timeout ended rank 0
        assert procs[1].poll() is None
        stopped = osp.getmtime(marker)
        assert rc != 0, out[-3000:]
        assert ended - stopped >= TIMEOUT - 1, (ended - stopped, out[-3000:])
        assert ended - stopped < TIMEOUT + 60, ended - stopped  # loaded CI
        assert (f'rank 0: a distributed collective did not complete within '
                f'env_cfg.dist_cfg.timeout = {TIMEOUT} s') in out, out[-3000:]
        assert 'Another rank is stuck' in out
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        for f in logs:
            f.close()


def test_timeout_setting_is_checked():
    assert collective_timeout(Config(dict())).total_seconds() == \
        DEFAULT_DIST_TIMEOUT
    base = Config.fromfile(osp.join(ROOT, 'configs/_base_/default_runtime.py'))
    assert base.env_cfg.dist_cfg.timeout == DEFAULT_DIST_TIMEOUT
    assert collective_timeout(Config(dict(env_cfg=dict(dist_cfg=dict(
        timeout=20))))).total_seconds() == 20
    for bad in (0, -5, '30', True, None):
        with pytest.raises(ValueError, match='env_cfg.dist_cfg.timeout'):
            collective_timeout(Config(dict(env_cfg=dict(dist_cfg=dict(
                timeout=bad)))))
