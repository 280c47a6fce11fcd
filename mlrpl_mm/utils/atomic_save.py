"""Atomic checkpoint writing for mmengine 0.10.7.

mmengine writes checkpoints in place: ``save_checkpoint`` serialises to
memory and calls ``LocalBackend.put(bytes, path)``, which opens ``path`` with
``'wb'`` (truncating it) and writes. A run killed during that write (SIGKILL
from a scheduler, out of memory, a node failure) leaves a truncated
``epoch_N.pth`` that ``--resume`` then fails to load; the ``last_checkpoint``
pointer is written the same way by ``CheckpointHook``.

This module provides the atomic writes; they are used only where asked for,
nothing of mmengine is replaced:

1. :class:`AtomicLocalBackend`, registered in mmengine's file backends under
   the extra name :data:`ATOMIC_BACKEND` (``'mlrpl_atomic_local'``; the
   ``'local'`` backend and the prefix table stay upstream's), writes with
   ``put`` / ``put_text`` to a hidden temporary file in the destination
   directory, flushes and ``fsync``-s it, then ``os.replace``-s it onto the
   destination. ``os.replace`` is atomic on POSIX and Windows within one file
   system, so a reader (or a resumed run) sees either the complete old file
   or the complete new one.
2. :func:`atomic_open` does the same for ``open`` in write modes.

:class:`~mlrpl_mm.engine.hooks.AtomicCheckpointHook` (which
:class:`~mlrpl_mm.engine.MLRPLRunner` uses in place of ``CheckpointHook``)
saves through the backend and writes ``work_dir/last_checkpoint`` with
:func:`atomic_open`.

A temporary file left by a process killed mid-write is named
``.<name>.<pid>.tmp`` and is removed by the next successful write of the same
destination.
"""
import builtins
import glob
import os
import os.path as osp
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Union

from mmengine.fileio.backends import LocalBackend, register_backend

__all__ = ['ATOMIC_BACKEND', 'atomic_write', 'atomic_open', 'AtomicLocalBackend',
           'register_atomic_backend']

#: Name of :class:`AtomicLocalBackend` in mmengine's file backends
#: (``backend_args=dict(backend=ATOMIC_BACKEND)``).
ATOMIC_BACKEND = 'mlrpl_atomic_local'


def _tmp_name(path: str) -> str:
    head, tail = osp.split(path)
    return osp.join(head, f'.{tail}.{os.getpid()}.tmp')


def _remove_stale(path: str, keep: str = '') -> None:
    head, tail = osp.split(path)
    pattern = osp.join(glob.escape(head), f'.{glob.escape(tail)}.*.tmp')
    for stale in glob.glob(pattern):
        if stale != keep:
            try:
                os.remove(stale)
            except OSError:
                pass


def _fsync_dir(directory: str) -> None:
    """Persist the rename itself (best effort; not supported everywhere)."""
    try:
        fd = os.open(directory or '.', os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: Union[str, Path], mode: str = 'r', *args,
                **kwargs) -> Iterator[IO]:
    """``open`` whose write modes replace ``path`` atomically on success.

    For ``'w'`` / ``'wb'`` (and ``'w+'`` ...) the file object writes to a
    temporary file next to ``path``; when the ``with`` block exits without an
    exception the data is flushed, ``fsync``-ed and ``os.replace``-d onto
    ``path``; on an exception the temporary file is removed and ``path`` is
    left untouched. Other modes behave exactly like :func:`open`.

    Args:
        path: Destination file.
        mode: File mode as for :func:`open`.
        *args, **kwargs: Passed on to :func:`open`.

    Yields:
        The open file object.
    """
    path = os.fspath(path)
    if 'w' not in mode:
        with builtins.open(path, mode, *args, **kwargs) as f:
            yield f
        return
    tmp = _tmp_name(path)
    try:
        with builtins.open(tmp, mode, *args, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(osp.dirname(path))
    _remove_stale(path, keep=tmp)


def atomic_write(data: Union[bytes, str], path: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
    """Write ``data`` (bytes or text) to ``path`` atomically.

    The parent directory is created if needed.
    """
    path = os.fspath(path)
    parent = osp.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if isinstance(data, bytes):
        with atomic_open(path, 'wb') as f:
            f.write(data)
    else:
        with atomic_open(path, 'w', encoding=encoding) as f:
            f.write(data)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put`` / ``put_text``.

    Everything else (``get``, ``exists``, ``remove``, ``join_path`` ...) is
    inherited unchanged.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes to ``filepath`` atomically (temp file + os.replace)."""
        atomic_write(obj, filepath)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write text to ``filepath`` atomically (temp file + os.replace)."""
        atomic_write(obj, filepath, encoding=encoding)


def register_atomic_backend() -> None:
    """Register :class:`AtomicLocalBackend` as the file backend
    :data:`ATOMIC_BACKEND` (by name only: no prefix, so ``get_file_backend``
    still returns mmengine's ``LocalBackend`` for local paths). Idempotent;
    called when this module is imported."""
    from mmengine.fileio.io import backends
    if backends.get(ATOMIC_BACKEND) is not AtomicLocalBackend:
        register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


register_atomic_backend()
