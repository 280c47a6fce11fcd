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
