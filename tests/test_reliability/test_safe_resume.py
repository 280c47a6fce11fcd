"""Safe checkpoint loading on resume: ``tools/train.py --resume`` refuses a
checkpoint that holds a pickled callable (nothing of it runs), names the file
and the refused global, and says how to trust a file explicitly."""
import os
import os.path as osp
import sys

import torch

from .conftest import run_tool, tiny_options


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_resume_refuses_pickled_callable(rel_data, tmp_path):
    marker = str(tmp_path / 'code_ran')
    ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1, iter=2), state_dict={},
                    message_hub={}, payload=_Payload(marker)), ckpt)
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/pbce_demo.py',
                     '--resume', ckpt] +
                    tiny_options(rel_data, str(tmp_path / 'w'), 2),
                    check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert not osp.exists(marker), 'the pickled callable was executed'
    assert f'Refusing to load checkpoint {ckpt!r}' in log, log[-3000:]
    assert 'system' in log  # the refused global is named
    assert 'MLRPL_TRUST_CHECKPOINTS=1' in log and '--trust-checkpoint' in log
    assert 'Epoch(train)' not in log


#: Python stored as a checkpoint's config text: running it creates MARKER.
_CONFIG_PAYLOAD = ("gpu_ids = [0]\n"
                   "open({marker!r}, 'w').write('config text executed')\n")


def _data_only_checkpoint(path: str, marker: str) -> str:
    """A checkpoint of plain data only (dicts, ints, a str): it passes
    torch's own weights_only allow-list, yet its meta.config is Python
    that mmengine's Runner.resume would execute (Config.fromstring)."""
    torch.save(dict(meta=dict(epoch=1, iter=2,
                              config=_CONFIG_PAYLOAD.format(marker=marker)),
                    state_dict={},
                    message_hub=dict(log_scalars={}, runtime_info={},
                                     resumed_keys={})), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    return path


def test_resume_does_not_execute_the_config_text(rel_data, tmp_path):
    marker = str(tmp_path / 'config_text_ran')
    ckpt = _data_only_checkpoint(str(tmp_path / 'epoch_1.pth'), marker)
    work = str(tmp_path / 'w')
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/pbce_demo.py',
                     '--resume', ckpt] + tiny_options(rel_data, work, 2),
                    check=False)
    log = proc.stdout + proc.stderr
    assert not osp.exists(marker), 'the checkpoint config text was executed'
    # resume works: epoch / iter come from the checkpoint, epoch 2 trains
    assert proc.returncode == 0, log[-3000:]
    assert 'resumed epoch: 1, iter: 2' in log
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))
    assert not osp.isfile(osp.join(work, 'epoch_1.pth'))


def test_auto_resume_refuses_last_checkpoint_outside_work_dir(rel_data,
                                                              tmp_path):
    marker = str(tmp_path / 'config_text_ran')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    ckpt = _data_only_checkpoint(str(elsewhere / 'epoch_1.pth'), marker)
    work = tmp_path / 'w'
    work.mkdir()
    (work / 'last_checkpoint').write_text(ckpt)
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/pbce_demo.py',
                     '--resume'] + tiny_options(rel_data, str(work), 2),
                    check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert not osp.exists(marker)
    assert f"{work / 'last_checkpoint'} names {ckpt!r}, which is outside " \
        f'the work dir {str(work)!r}' in proc.stderr, log[-3000:]
    assert f'--resume {ckpt}' in proc.stderr  # the explicit way, if trusted
    assert 'Traceback' not in proc.stderr
    assert 'Epoch(train)' not in log


def test_stored_gpu_ids_are_read_without_executing(tmp_path):
    from mlrpl_mm.engine.runner import stored_gpu_ids
    marker = str(tmp_path / 'ran')
    text = _CONFIG_PAYLOAD.format(marker=marker).replace(
        'gpu_ids = [0]', 'gpu_ids = [0, 1]')
    assert stored_gpu_ids(text) == [0, 1]
    assert stored_gpu_ids('gpu_ids = list(range(8))') is None  # not literal
    assert stored_gpu_ids('model = dict(type="X")') is None
    assert stored_gpu_ids('def (') is None                     # not Python
    assert not osp.exists(marker)
