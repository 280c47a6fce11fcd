"""Safe checkpoint loading for mmengine 0.10.7 on torch >= 2.6.

torch >= 2.6 loads with ``weights_only=True``. mmengine 0.10.7 checkpoints
hold the message hub's :class:`~mmengine.logging.HistoryBuffer` objects
(whose default pickle references ``builtins.getattr``) and numpy arrays /
scalars, so ``--resume``, ``load_from`` and ``tools/test.py CKPT`` fail.

The fix here keeps ``weights_only=True`` (an untrusted file cannot run code)
and changes nothing process-wide: it is used by
:class:`~mlrpl_mm.engine.MLRPLRunner` (``runner_type='MLRPLRunner'`` in
``configs/_base_/default_runtime.py``), the tools and
:class:`~mlrpl_mm.apis.MultiLabelInferencer`; a plain mmengine ``Runner`` in
the same process keeps upstream's loaders and pickling.

1. :func:`data_only_message_hub` (applied by ``MLRPLRunner`` when it saves)
   makes every ``HistoryBuffer`` pickle as ``HistoryBuffer(log_list,
   count_list, max_length)``: plain lists and an int, no ``getattr``.
2. :func:`safe_torch_load` loads with ``weights_only=True`` and, for that
   call only, an allow-list of data-only globals (:data:`SAFE_GLOBALS`: the
   ``HistoryBuffer`` class and numpy's array / dtype / scalar
   reconstructors).
3. Every failure is one :class:`CheckpointError` naming the file: missing
   (:class:`CheckpointNotFoundError`), empty / truncated / not a checkpoint
   (:class:`CorruptCheckpointError`) or needing globals outside the
   allow-list (:class:`UnsafeCheckpointError`, which says how to trust a
   file explicitly).

Trusting a file (e.g. a checkpoint written by an older mmengine setup
that you made yourself): set the environment variable
``MLRPL_TRUST_CHECKPOINTS=1`` (or pass ``--trust-checkpoint`` to the tools).
Only then is ``weights_only=False`` used, which can execute code from the
file (and ``MLRPLRunner.resume`` then lets mmengine parse the config text
stored in the checkpoint, which is Python code too).
"""
import contextlib
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Iterator, List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

TRUST_ENV = 'MLRPL_TRUST_CHECKPOINTS'

__all__ = [
    'TRUST_ENV', 'SAFE_GLOBALS', 'CheckpointError', 'CheckpointNotFoundError',
    'CorruptCheckpointError', 'UnsafeCheckpointError',
    'trust_checkpoints_enabled', 'checkpoint_safe_globals', 'safe_torch_load',
    'load_checkpoint_file', 'data_only_message_hub'
]


class CheckpointError(Exception):
    """A checkpoint that cannot or must not be loaded (the message names the
    file and what to do); the tools print it as one line."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CorruptCheckpointError(CheckpointError, ValueError):
    """Empty, truncated or not a checkpoint at all."""


class UnsafeCheckpointError(CheckpointError, pickle.UnpicklingError):
    """The file needs globals outside the allow-list (could run code)."""


class _DataOnlyHistoryBuffer(HistoryBuffer):
    """A HistoryBuffer that pickles as ``HistoryBuffer(log, count, max)``."""

    def __reduce__(self):
        return (HistoryBuffer, (self._log_history.tolist(),
                                self._count_history.tolist(),
                                int(self.max_length)))


def _numpy_safe_globals() -> List:
    """Data-only numpy globals needed to unpickle arrays and scalars."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    out = [_reconstruct, scalar, np.ndarray, np.dtype]
    # numpy >= 1.25 pickles dtypes through their classes in numpy.dtypes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return out


#: Globals a checkpoint may reference (data only: no callable that runs
#: code). Added to torch's allow-list only inside :func:`safe_torch_load`.
SAFE_GLOBALS = [HistoryBuffer] + _numpy_safe_globals()


def trust_checkpoints_enabled() -> bool:
    """Whether the user opted in to unsafe (code-executing) loading."""
    return os.environ.get(TRUST_ENV, '0').lower() in ('1', 'true', 'yes')


@contextlib.contextmanager
def checkpoint_safe_globals() -> Iterator[None]:
    """Allow :data:`SAFE_GLOBALS` in ``torch.load(weights_only=True)`` for
    the duration of the ``with`` block only.

    Example::

        with checkpoint_safe_globals():
            ckpt = torch.load('epoch_1.pth', map_location='cpu')
    """
    present = torch.serialization.get_safe_globals()
    missing = [g for g in SAFE_GLOBALS if g not in present]
    with torch.serialization.safe_globals(missing):
        yield


def data_only_message_hub(state: dict) -> dict:
    """A copy of a message-hub ``state_dict`` whose ``HistoryBuffer``\\ s
    pickle as plain data (loads with ``weights_only=True`` and
    :data:`SAFE_GLOBALS`; upstream's pickle references ``builtins.getattr``).
    """
    if not isinstance(state, dict):
        return state
    out = dict(state)
    scalars = state.get('log_scalars', None)
    if isinstance(scalars, dict):
        conv = type(scalars)()
        for key, buf in scalars.items():
            if isinstance(buf, HistoryBuffer):
                buf = _DataOnlyHistoryBuffer(buf._log_history.tolist(),
                                             buf._count_history.tolist(),
                                             int(buf.max_length))
            conv[key] = buf
        out['log_scalars'] = conv
    return out


def _file_kind(filename: str) -> str:
    """'empty', 'zip', 'truncated-zip', 'pickle' or 'unknown' (first bytes)."""
    if os.path.getsize(filename) == 0:
        return 'empty'
    with open(filename, 'rb') as f:
        head = f.read(4)
    if head.startswith(b'PK'):
        return 'zip' if zipfile.is_zipfile(filename) else 'truncated-zip'
    if head[:1] == b'\x80':  # pickle protocol >= 2 (torch's legacy format)
        return 'pickle'
    return 'unknown'


def _corrupt(filename: str, why: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f'{filename!r} is not a usable checkpoint: {why}. The file is corrupt '
        '(e.g. a copy or download that stopped early, or a save killed '
        'mid-write by a tool that does not write atomically) or not a '
        'checkpoint at all; use another checkpoint (for --resume: an earlier '
        'epoch_N.pth of the work dir) or re-create it.')


def _unsafe_globals(filename: str, kind: str, err: Exception) -> List[str]:
    """The globals of the file outside the allow-list (best effort)."""
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in SAFE_GLOBALS}
    if kind == 'zip':
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(
                filename)
            return [b for b in names if b not in allowed]
        except Exception:  # pragma: no cover - diagnostics only
            pass
    return [m for m in re.findall(r'GLOBAL ([\w.]+)', str(err))
            if m not in allowed]


def safe_torch_load(filename: str, map_location=None,
                    trust: Optional[bool] = None):
    """Load a checkpoint with ``weights_only=True`` and the allow-list.

    Args:
        filename: Local checkpoint file.
        map_location: As for :func:`torch.load`.
        trust: ``True`` loads with ``weights_only=False`` (can run code from
            the file). ``None`` (default) reads ``MLRPL_TRUST_CHECKPOINTS``.

    Returns:
        The unpickled object; a checkpoint's message-hub ``HistoryBuffer``\\ s
        are :func:`data_only_message_hub` ones, so ``torch.save`` of the
        result loads safely again.

    Raises:
        CheckpointNotFoundError: the file does not exist.
        CorruptCheckpointError: the file is empty, truncated or not a
            checkpoint (zip archive or pickle) at all.
        UnsafeCheckpointError: the file needs globals outside the allow-list
            (for instance a pickled callable); the message names the file,
            the refused globals and the opt-in.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise CheckpointNotFoundError(f'checkpoint not found: {filename!r}')
    if trust is None:
        trust = trust_checkpoints_enabled()
    kind = _file_kind(filename)
    if kind == 'empty':
        raise _corrupt(filename, 'it is empty (0 bytes)')
    if kind == 'truncated-zip':
        raise _corrupt(filename, 'its zip archive is truncated (no central '
                       'directory at the end of the file)')
    if kind == 'unknown':
        raise _corrupt(filename, 'it is neither a torch.save zip archive nor '
                       'a pickle (it may be a text or HTML file)')
    try:
        if trust:
            return torch.load(filename, map_location=map_location,
                              weights_only=False)
        with checkpoint_safe_globals():
            ckpt = torch.load(filename, map_location=map_location,
                              weights_only=True)
        # re-saved with torch.save, the message hub stays plain data
        if isinstance(ckpt, dict) and 'message_hub' in ckpt:
            ckpt['message_hub'] = data_only_message_hub(ckpt['message_hub'])
        return ckpt
    except pickle.UnpicklingError as err:
        bad = [] if trust else _unsafe_globals(filename, kind, err)
        if not bad:
            raise _corrupt(filename, _first_line(err)) from err
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint {filename!r}: it contains objects '
            f'outside the safe allow-list ({", ".join(bad)}), which could '
            'run code when unpickled. If you trust this file, set the '
            f'environment variable {TRUST_ENV}=1 (or pass --trust-checkpoint '
            'to tools/train.py / tools/test.py / tools/infer.py) to load it '
            'with weights_only=False.') from err
    except (RuntimeError, EOFError, KeyError, ValueError, OSError,
            zipfile.BadZipFile, UnicodeDecodeError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise _corrupt(filename, f'{type(err).__name__}: '
                       f'{_first_line(err)}') from err


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def load_checkpoint_file(filename: str, map_location=None):
    """A checkpoint dict from a local path (:func:`safe_torch_load`) or, for
    URL-like paths (``https://``, ``torchvision://`` ...), from mmengine's
    loader for that scheme (upstream's behaviour)."""
    from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
    loader = CheckpointLoader._get_checkpoint_loader(str(filename))
    if loader is None or loader is CheckpointLoader._schemes.get(''):
        return safe_torch_load(filename, map_location)
    return _load_checkpoint(filename, map_location=map_location)
