"""Load a pickle that should hold plain data only (e.g. predictions).

``tools/test.py --out preds.pkl`` writes mmengine's ``DumpResults`` pickle: a
list of dicts of tensors, numpy arrays, strings and numbers. ``pickle.load``
of such a file from someone else can run any code (a pickle may call any
importable function). :func:`safe_pickle_load` unpickles with a restricted
``find_class``: only these globals may be referenced, everything else is
refused before it is imported or called:

- ``builtins``: ``set``, ``frozenset``, ``complex``, ``slice``,
  ``bytearray``; ``collections.OrderedDict``; ``_codecs.encode`` (bytes in
  pickle protocol 2);
- numpy: ``ndarray``, ``dtype``, the ``numpy.dtypes`` classes and the array /
  scalar reconstructors;
- torch: ``torch._utils._rebuild_tensor(_v2)``, ``torch.Size``,
  ``torch.device``, the dtypes, and ``torch.storage._load_from_bytes``, which
  is replaced by a loader with ``weights_only=True`` (upstream's calls
  ``torch.load(weights_only=False)`` on bytes taken from the file).

dict, list, tuple, str, bytes, int, float, bool and None need no global.
"""
import io
import pickle
from typing import Any, Callable, Dict, Tuple

__all__ = ['UnsafePickleError', 'safe_pickle_load', 'ALLOWED_GLOBALS']


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that references a global outside the allow-list, or that is
    not a readable pickle at all (the message names the file)."""


def _storage_from_bytes(data: bytes):
    """``torch.storage._load_from_bytes`` without code execution."""
    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


def _allowed_globals() -> Dict[Tuple[str, str], Any]:
    import builtins
    import codecs
    import collections

    import numpy as np
    import torch
    import torch._utils

    from .checkpoint import _numpy_safe_globals
    out: Dict[Tuple[str, str], Any] = {}
    for name in ('set', 'frozenset', 'complex', 'slice', 'bytearray'):
        out[('builtins', name)] = out[('__builtin__', name)] = \
            getattr(builtins, name)
    out[('collections', 'OrderedDict')] = collections.OrderedDict
    out[('_codecs', 'encode')] = codecs.encode
    for obj in _numpy_safe_globals():
        module = obj.__module__
        out[(module, obj.__qualname__)] = obj
        # the same object under numpy 1.x / 2.x module names
        for alias in ('numpy.core', 'numpy._core'):
            if module.startswith(('numpy.core.', 'numpy._core.')):
                tail = module.split('.', 2)[2]
                out[(f'{alias}.{tail}', obj.__qualname__)] = obj
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # numpy 1.x
        from numpy.core.numeric import _frombuffer
    for module in ('numpy.core.numeric', 'numpy._core.numeric'):
        out[(module, '_frombuffer')] = _frombuffer
    out[('numpy', 'ndarray')] = np.ndarray
    out[('numpy', 'dtype')] = np.dtype
    out[('torch._utils', '_rebuild_tensor_v2')] = \
        torch._utils._rebuild_tensor_v2
    out[('torch._utils', '_rebuild_tensor')] = torch._utils._rebuild_tensor
    out[('torch.storage', '_load_from_bytes')] = _storage_from_bytes
    out[('torch', 'Size')] = torch.Size
    out[('torch', 'device')] = torch.device
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            out[('torch', name)] = value
    return out


#: (module, name) -> object a data-only pickle may reference (built on
#: first use).
ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {}


class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, file, path: str) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Callable:
        if not ALLOWED_GLOBALS:
            ALLOWED_GLOBALS.update(_allowed_globals())
        obj = ALLOWED_GLOBALS.get((module, name), None)
        if obj is None:
            raise UnsafePickleError(
                f'Refusing to load {self._path!r}: it references '
                f'{module}.{name}, which is not plain data (allowed: dict, '
                'list, tuple, set, str, bytes, numbers, numpy arrays, torch '
                'tensors). A pickle can run code when loaded; re-create the '
                'file with tools/test.py CONFIG CKPT --out FILE.pkl, or '
                'unpickle it yourself only if you trust its author.')
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(
            f'Refusing to load {self._path!r}: it uses persistent ids '
            f'({pid!r}), which plain-data pickles do not.')


def safe_pickle_load(path: str) -> Any:
    """Unpickle ``path`` allowing plain data only (see the module doc).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafePickleError: the pickle references anything outside
            :data:`ALLOWED_GLOBALS` (nothing of it was imported or run), or
            the file is empty / truncated / not a pickle.
    """
    with open(path, 'rb') as f:
        try:
            return _RestrictedUnpickler(f, path).load()
        except UnsafePickleError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
                IndexError, KeyError, AttributeError, UnicodeDecodeError,
                RuntimeError) as err:
            raise UnsafePickleError(
                f'{path!r} is not a readable pickle of plain data '
                f'({type(err).__name__}: {err}): the file is empty, '
                'truncated or not a pickle; re-create it with tools/test.py '
                'CONFIG CKPT --out FILE.pkl.') from err
