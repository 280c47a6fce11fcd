import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mlrpl_mm.utils.checkpoint import (SAFE_GLOBALS, TRUST_ENV, CheckpointError,
                                       CheckpointNotFoundError,
                                       CorruptCheckpointError,
                                       UnsafeCheckpointError,
                                       data_only_message_hub, safe_torch_load)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class _Evil:
    """Unpickling this calls os.system: a malicious checkpoint."""

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_history_buffer_and_numpy_roundtrip_weights_only(tmp_path):
    hub = MessageHub('ckpt-test')
    for v in (1.0, 2.0, 4.0):
        hub.update_scalar('train/loss', v)
    hub.update_info('seed', np.int64(7))
    path = str(tmp_path / 'ok.pth')
    torch.save(dict(message_hub=data_only_message_hub(hub.state_dict()),
                    meta=dict(seed=np.int64(7), arr=np.arange(3, dtype=np.float32)),
                    state_dict=dict(w=torch.ones(2))), path)
    # nothing outside the allow-list is needed (no builtins.getattr)
    needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in SAFE_GLOBALS}
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in needed
    assert needed <= allowed
    ck = safe_torch_load(path, map_location='cpu')
    buf = ck['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.current() == 4.0 and buf.mean() == pytest.approx(7 / 3)
    assert ck['meta']['seed'] == 7
    np.testing.assert_array_equal(ck['meta']['arr'], [0, 1, 2])
    # the allow-list was added for that call only
    assert HistoryBuffer not in torch.serialization.get_safe_globals()
    # re-saved with plain torch.save, it stays loadable
    torch.save(ck, str(tmp_path / 'again.pth'))
    again = safe_torch_load(str(tmp_path / 'again.pth'))
    assert again['message_hub']['log_scalars']['train/loss'].current() == 4.0


def test_upstream_history_buffer_pickle_is_refused(tmp_path):
    """mmengine's own HistoryBuffer pickle references builtins.getattr."""
    hub = MessageHub('ckpt-test-upstream')
    hub.update_scalar('train/loss', 1.0)
    path = str(tmp_path / 'upstream.pth')
    torch.save(dict(message_hub=hub.state_dict()), path)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        safe_torch_load(path)


def test_pickled_callable_is_refused_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = str(tmp_path / 'evil.pth')
    torch.save(dict(state_dict={}, payload=_Evil()), path)
    with pytest.raises(pickle.UnpicklingError) as err:
        safe_torch_load(path, map_location='cpu')
    assert isinstance(err.value, UnsafeCheckpointError)
    msg = str(err.value)
    assert 'evil.pth' in msg and 'system' in msg and TRUST_ENV in msg
    assert '--trust-checkpoint' in msg


def test_explicit_trust_loads_unsafe_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'legacy.pth')
    torch.save(dict(state_dict={}, obj=HistoryBuffer.__init__), path)
    with pytest.raises(UnsafeCheckpointError):
        safe_torch_load(path, map_location='cpu')
    assert safe_torch_load(path, trust=True)['obj'] is HistoryBuffer.__init__
    monkeypatch.setenv(TRUST_ENV, '1')
    ck = safe_torch_load(path, map_location='cpu')
    assert ck['obj'] is HistoryBuffer.__init__


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match='nope.pth'):
        safe_torch_load(str(tmp_path / 'nope.pth'))
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


def _corrupt_files(tmp_path):
    good = str(tmp_path / 'good.pth')
    torch.save(dict(state_dict=dict(w=torch.ones(64))), good)
    data = open(good, 'rb').read()
    files = {}
    files['zero'] = tmp_path / 'zero.pth'
    files['zero'].write_bytes(b'')
    files['truncated'] = tmp_path / 'truncated.pth'
    files['truncated'].write_bytes(data[:len(data) // 2])
    files['text'] = tmp_path / 'text.pth'
    files['text'].write_text('<html>404 Not Found</html>\n')
    files['bad-pickle'] = tmp_path / 'badpickle.pth'
    files['bad-pickle'].write_bytes(b'\x80\x02garbage, not a pickle')
    return {k: str(v) for k, v in files.items()}


@pytest.mark.parametrize('kind, why', [
    ('zero', 'empty (0 bytes)'), ('truncated', 'zip archive is truncated'),
    ('text', 'neither a torch.save zip archive nor a pickle'),
    ('bad-pickle', 'not a usable checkpoint')])
def test_corrupt_checkpoint_is_named_and_not_called_unsafe(tmp_path, kind,
                                                           why):
    path = _corrupt_files(tmp_path)[kind]
    with pytest.raises(CorruptCheckpointError) as err:
        safe_torch_load(path)
    msg = str(err.value)
    assert repr(path) in msg and why in msg and 'corrupt' in msg
    assert 'allow-list' not in msg
    assert isinstance(err.value, CheckpointError)


_SCOPE = r'''
import builtins, copyreg, json, sys
import torch
from mmengine.fileio.io import backends, prefix_to_backends
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.hooks import checkpoint_hook
# upstream packages mlrpl_mm builds on (importing them adds torch's own
# distributed-tensor classes to the weights_only allow-list)
import mmengine.runner, mmpretrain.datasets, mmpretrain.engine  # noqa
import mmpretrain.evaluation, mmpretrain.models  # noqa

def state():
    return dict(
        backends={k: repr(v) for k, v in backends.items()},
        prefixes={k: repr(v) for k, v in prefix_to_backends.items()},
        loaders={k: repr(v) for k, v in CheckpointLoader._schemes.items()},
        hook_open=repr(vars(checkpoint_hook).get('open', builtins.open)),
        copyreg=sorted(repr(k) for k in copyreg.dispatch_table),
        safe_globals=sorted(repr(g) for g in
                            torch.serialization.get_safe_globals()))

before = state()
import mlrpl_mm  # noqa
from mlrpl_mm.utils.atomic_save import ATOMIC_BACKEND
after = state()

# a plain mmengine Runner next to MLRPLRunner, on a data-only checkpoint
# holding a message hub (what our runs write)
import pickle, tempfile, os.path as osp
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mlrpl_mm.engine import MLRPLRunner
from mlrpl_mm.utils.checkpoint import CheckpointError, data_only_message_hub

class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
    def forward(self, x, mode='tensor'):
        return self.fc(x)

tmp = tempfile.mkdtemp()
hub = MessageHub('scope-test')
hub.update_scalar('train/loss', 1.0)
ckpt = osp.join(tmp, 'ours.pth')
torch.save(dict(state_dict=Toy().state_dict(), meta=dict(epoch=1, iter=1),
                message_hub=data_only_message_hub(hub.state_dict())), ckpt)
out = {}
for cls in (Runner, MLRPLRunner):
    runner = cls(model=Toy(), work_dir=osp.join(tmp, cls.__name__),
                 default_scope='mmengine', experiment_name=cls.__name__)
    hook = [h for h in runner.hooks if 'Checkpoint' in type(h).__name__][0]
    try:
        runner.load_checkpoint(ckpt)
        err = None
    except Exception as e:
        err = 'ours' if isinstance(e, CheckpointError) else type(e).__name__
    out[cls.__name__] = [type(hook).__module__ + '.' + type(hook).__name__,
                         err]
print(json.dumps(dict(before=before, after=after, atomic=ATOMIC_BACKEND,
                      runners=out)))
'''


def test_import_changes_nothing_of_mmengine_or_torch():
    """A fresh interpreter: ``import mlrpl_mm`` leaves mmengine's file
    backends, checkpoint loaders, CheckpointHook's open, the pickling of
    HistoryBuffer and torch's weights_only allow-list as upstream made them
    (it only adds the named backend the atomic checkpoint hook selects), and
    a plain mmengine Runner built there uses upstream's objects."""
    import json
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    out = subprocess.run([sys.executable, '-c', _SCOPE], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    before, after = res['before'], res['after']
    added = set(after['backends']) - set(before['backends'])
    assert added == {res['atomic']}
    after['backends'].pop(res['atomic'])
    assert after == before
    # a plain Runner: upstream's CheckpointHook and loader (torch's
    # weights_only refusal of HistoryBuffer); MLRPLRunner: ours
    assert res['runners']['Runner'] == [
        'mmengine.hooks.checkpoint_hook.CheckpointHook', 'UnpicklingError']
    assert res['runners']['MLRPLRunner'] == [
        'mlrpl_mm.engine.hooks.atomic_checkpoint_hook.AtomicCheckpointHook',
        None]
