"""Files from strangers given to the tools: a predictions pickle to
tools/analysis/plot_per_class_ap.py (a real one of tools/test.py --out, and
malicious ones) and corrupt checkpoints to tools/test.py / tools/infer.py."""
import os
import os.path as osp
import pickle
import runpy
import sys

import numpy as np
import pytest
import torch

from mlrpl_mm.utils import UnsafePickleError, safe_pickle_load

from .conftest import ROOT, run_tool, tiny_options
from .tiny_run import tiny_run


@pytest.fixture(scope='module')
def run(tmp_path_factory, demo_data):
    return tiny_run(tmp_path_factory, demo_data)


class _System:
    """Unpickling this runs ``touch marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


class _StorageBytes:
    """A 'tensor storage' whose bytes are a pickle that runs code:
    ``torch.storage._load_from_bytes`` would ``torch.load`` them with
    ``weights_only=False``."""

    def __init__(self, marker):
        self.payload = pickle.dumps(_System(marker))

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload, ))


def _main(tool, argv, monkeypatch):
    """Run a tool as ``python tools/...`` does (``__main__``: an error is a
    ``SystemExit`` with one line, which Python prints without traceback),
    in this process."""
    monkeypatch.setattr(sys, 'argv', [tool] + list(argv))
    runpy.run_path(osp.join(ROOT, tool), run_name='__main__')


def test_predictions_of_test_py_load_and_malicious_ones_are_refused(
        run, tmp_path, monkeypatch):
    preds = str(tmp_path / 'preds.pkl')
    run_tool([sys.executable, 'tools/test.py', run['config'],
              run['checkpoint'], '--out', preds] +
             tiny_options(run['data_root'], str(tmp_path / 't'), 1))
    loaded = safe_pickle_load(preds)
    with open(preds, 'rb') as f:
        reference = pickle.load(f)  # our own file: trusted here
    assert len(loaded) == len(reference) == 24
    for a, b in zip(loaded, reference):
        assert a.keys() == b.keys()
        torch.testing.assert_close(a['pred_score'], b['pred_score'])
        np.testing.assert_array_equal(np.asarray(a['full_label']),
                                      np.asarray(b['full_label']))
    png = str(tmp_path / 'ap.png')
    _main('tools/analysis/plot_per_class_ap.py', [preds, '--out', png],
          monkeypatch)
    assert os.path.getsize(png) > 0

    marker = str(tmp_path / 'code_ran')
    for name, payload in [('system', _System(marker)),
                          ('storage', _StorageBytes(marker))]:
        evil = str(tmp_path / f'evil_{name}.pkl')
        with open(evil, 'wb') as f:
            pickle.dump([dict(pred_score=torch.ones(3), x=payload)], f)
        with pytest.raises(SystemExit) as err:
            _main('tools/analysis/plot_per_class_ap.py', [evil], monkeypatch)
        msg = str(err.value.code)
        assert msg.startswith('error: ') and repr(evil) in msg, msg
        assert not osp.exists(marker), f'{name}: code from the pickle ran'
    # the refused global is named (os.system pickles as posix.system)
    with pytest.raises(UnsafePickleError, match=r'references \w+\.system'):
        safe_pickle_load(str(tmp_path / 'evil_system.pkl'))
    text = tmp_path / 'text.pkl'
    text.write_text('not a pickle')
    with pytest.raises(UnsafePickleError, match='not a readable pickle'):
        safe_pickle_load(str(text))


def _corrupt_checkpoints(run, tmp_path):
    data = open(run['checkpoint'], 'rb').read()
    files = dict(zero=(b'', 'empty (0 bytes)'),
                 truncated=(data[:len(data) // 2], 'zip archive is truncated'),
                 text=(b'<html>Not Found</html>\n', 'neither a torch.save'))
    out = {}
    for kind, (content, why) in files.items():
        path = str(tmp_path / f'{kind}.pth')
        with open(path, 'wb') as f:
            f.write(content)
        out[kind] = (path, why)
    return out


def test_corrupt_checkpoint_to_test_and_infer_is_one_clear_error(
        run, tmp_path, monkeypatch):
    img = osp.join(run['data_root'], 'val2014',
                   'COCO_val2014_000000100003.jpg')
    opts = tiny_options(run['data_root'], str(tmp_path / 't'), 1)
    for kind, (path, why) in _corrupt_checkpoints(run, tmp_path).items():
        for tool, argv in [('tools/test.py', [run['config'], path] + opts),
                           ('tools/infer.py', [run['config'], path, img])]:
            with pytest.raises(SystemExit) as err:
                _main(tool, argv, monkeypatch)
            msg = str(err.value.code)
            assert msg.startswith('error: ') and repr(path) in msg, \
                (tool, kind, msg)
            assert why in msg and 'corrupt' in msg and \
                'allow-list' not in msg, (tool, kind, msg)
