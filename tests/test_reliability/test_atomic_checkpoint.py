"""Atomic checkpoint writes (mlrpl_mm/utils/atomic_save.py) and a training run
killed with SIGKILL mid-epoch that ``--resume`` (auto) finishes."""
import glob
import os
import os.path as osp
import signal
import sys

import pytest
import torch

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks import AtomicCheckpointHook
from mlrpl_mm.utils import safe_torch_load
from mlrpl_mm.utils.atomic_save import (ATOMIC_BACKEND, AtomicLocalBackend,
                                        atomic_open, atomic_write)

from .conftest import read_scalars, run_tool, tiny_options, write_user_config

# Writes a good checkpoint, then dies (SIGKILL) half-way through writing a
# second one to the same path. argv: path, 'atomic' (the backend that
# AtomicCheckpointHook saves through) | 'inplace' (mmengine's own backend).
_DIE_MID_WRITE = r'''
import builtins, os, signal, sys
import torch
import mlrpl_mm
from mmengine.runner.checkpoint import save_checkpoint
from mlrpl_mm.utils.atomic_save import ATOMIC_BACKEND
path, mode = sys.argv[1], sys.argv[2]
backend_args = dict(backend=ATOMIC_BACKEND) if mode == 'atomic' else None
save_checkpoint({'w': torch.zeros(4096)}, path, backend_args=backend_args)
real_open = builtins.open

class Dying:
    def __init__(self, f):
        self._f = f
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._f.__exit__(*exc)
    def write(self, data):
        self._f.write(data[:len(data) // 2])
        self._f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    def __getattr__(self, name):
        return getattr(self._f, name)

def dying_open(file, mode='r', *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    return Dying(f) if 'w' in mode else f

builtins.open = dying_open
save_checkpoint({'w': torch.ones(4096)}, path, backend_args=backend_args)
'''


@pytest.mark.parametrize('mode', ['atomic', 'inplace'])
def test_kill_during_write_keeps_previous_checkpoint(tmp_path, mode):
    path = str(tmp_path / 'epoch_1.pth')
    proc = run_tool([sys.executable, '-c', _DIE_MID_WRITE, path, mode],
                    check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    if mode == 'inplace':
        # mmengine's in-place write leaves a truncated file: the failure
        # this module exists to prevent (and proof that the test can fail)
        with pytest.raises(Exception):
            torch.load(path, map_location='cpu')
        return
    ck = torch.load(path, map_location='cpu')
    torch.testing.assert_close(ck['w'], torch.zeros(4096))
    # the partial temporary file is hidden and removed by the next write
    tmps = glob.glob(str(tmp_path / '.epoch_1.pth.*.tmp'))
    assert len(tmps) == 1
    atomic_write(b'x', path)
    assert not glob.glob(str(tmp_path / '.epoch_1.pth.*.tmp'))


def test_atomic_open_leaves_target_on_error(tmp_path):
    path = str(tmp_path / 'last_checkpoint')
    with atomic_open(path, 'w') as f:
        f.write('old')
    with pytest.raises(RuntimeError):
        with atomic_open(path, 'w') as f:
            f.write('new, half written')
            raise RuntimeError('killed')
    with open(path) as f:
        assert f.read() == 'old'
    assert os.listdir(tmp_path) == ['last_checkpoint']
    # read modes are plain open
    with atomic_open(path) as f:
        assert f.read() == 'old'


class _SavingRunner:
    """What CheckpointHook needs of a runner: a work dir, a message hub, a
    logger and save_checkpoint (which writes through the given backend)."""

    def __init__(self, work_dir):
        from mmengine.logging import MMLogger, MessageHub
        self.work_dir = work_dir
        self.message_hub = MessageHub.get_instance('atomic-hook-test')
        self.logger = MMLogger.get_instance('atomic-hook-test')
        self.backends = []

    def save_checkpoint(self, out_dir, filename, file_client_args=None,
                        backend_args=None, **kwargs):
        from mmengine.fileio import get_file_backend
        backend = get_file_backend(out_dir, backend_args=backend_args)
        self.backends.append(type(backend))
        backend.put(b'checkpoint bytes', osp.join(out_dir, filename))


def test_atomic_checkpoint_hook_writes_atomically(tmp_path):
    """The hook saves through AtomicLocalBackend and replaces (never writes
    through) work_dir/last_checkpoint; upstream's module is untouched."""
    from mmengine.hooks import checkpoint_hook
    work = tmp_path / 'work'
    work.mkdir()
    outside = tmp_path / 'outside.txt'
    outside.write_text('keep me')
    # a planted symlink: a plain open('w') would overwrite its target
    os.symlink(outside, work / 'last_checkpoint')
    runner = _SavingRunner(str(work))
    hook = AtomicCheckpointHook(interval=1)
    hook.before_train(runner)
    assert hook.backend_args == dict(backend=ATOMIC_BACKEND)
    hook._save_checkpoint_with_step(runner, 1, dict(epoch=1, iter=1))
    assert runner.backends == [AtomicLocalBackend]
    assert (work / 'epoch_1.pth').read_bytes() == b'checkpoint bytes'
    assert not (work / 'last_checkpoint').is_symlink()
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    assert outside.read_text() == 'keep me'
    assert sorted(os.listdir(work)) == ['epoch_1.pth', 'last_checkpoint']
    # nothing of mmengine was replaced
    assert 'open' not in vars(checkpoint_hook)  # builtins.open, upstream's
    # permissions follow the umask like a plain open()
    umask = os.umask(0)
    os.umask(umask)
    mode = os.stat(work / 'epoch_1.pth').st_mode & 0o777
    assert mode == 0o666 & ~umask


def test_sigkill_mid_epoch_then_auto_resume(rel_data, tmp_path):
    """Kill (SIGKILL) in epoch 2 after its first iteration was logged: only
    loadable checkpoints remain and ``--resume`` continues to the end."""
    work = str(tmp_path / 'w')
    cfg = write_user_config(str(tmp_path / 'cfg.py'), 'configs/pbce_demo.py',
                            [dict(type='KillAtHook', epoch=2, inner_iter=1,
                                  sig='SIGKILL')])
    proc = run_tool([sys.executable, 'tools/train.py', cfg] +
                    tiny_options(rel_data, work, 3), check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert sorted(p for p in os.listdir(work) if p.endswith('.pth')) == \
        ['best_multi-label_mAP_voc_epoch_1.pth', 'epoch_1.pth']
    rows = read_scalars(work)
    assert rows[-1]['iter'] == 3 and rows[-1]['epoch'] == 2  # [2][1/2] logged
    for p in glob.glob(osp.join(work, '*.pth')):
        safe_torch_load(p, map_location='cpu')
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work, 'epoch_1.pth')

    proc = run_tool([sys.executable, 'tools/train.py', cfg, '--resume'] +
                    tiny_options(rel_data, work, 3))
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1, iter: 2' in log
    ck = safe_torch_load(osp.join(work, 'epoch_3.pth'), map_location='cpu')
    assert ck['meta']['epoch'] == 3 and ck['meta']['iter'] == 6
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read().strip() == osp.join(work, 'epoch_3.pth')
    assert not glob.glob(osp.join(work, '.*.tmp'))
    iters = [r['iter'] for r in read_scalars(work) if 'loss' in r]
    assert iters == [1, 2, 3, 3, 4, 5, 6]  # epoch 2 redone from its start
