"""CheckpointHook whose checkpoint and ``last_checkpoint`` writes are atomic.

:class:`~mlrpl_mm.engine.MLRPLRunner` builds this hook wherever a config
asks for mmengine's ``CheckpointHook``; it can also be named directly
(``default_hooks.checkpoint.type='AtomicCheckpointHook'``). It behaves like
``CheckpointHook`` (same arguments, same files) except that a process killed
while saving leaves the previous complete file, never a truncated one
(:mod:`mlrpl_mm.utils.atomic_save`).
"""
import types

from mmengine.fileio.io import _parse_uri_prefix
from mmengine.hooks import CheckpointHook
from mmengine.hooks import checkpoint_hook as _upstream_module
from mmpretrain.registry import HOOKS

from mlrpl_mm.utils.atomic_save import ATOMIC_BACKEND, atomic_open


def _with_atomic_open(func):
    """``func`` (a function of mmengine.hooks.checkpoint_hook) with the name
    ``open`` bound to :func:`atomic_open` in its globals only: upstream's
    code, its own module left untouched."""
    namespace = dict(vars(_upstream_module), open=atomic_open)
    return types.FunctionType(func.__code__, namespace, func.__name__,
                              func.__defaults__, func.__closure__)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with atomic writes.

    - Checkpoints (``epoch_N.pth``, ``best_*.pth``) of a local ``out_dir``
      are written through the file backend ``'mlrpl_atomic_local'``
      (temporary file, ``fsync``, ``os.replace``) unless ``backend_args`` /
      ``file_client_args`` select another backend.
    - ``work_dir/last_checkpoint`` is written with
      :func:`~mlrpl_mm.utils.atomic_save.atomic_open`; a symlink there is
      replaced, not written through.

    Arguments: those of ``CheckpointHook``.
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else \
            runner.work_dir
        if self.backend_args is None and self.file_client_args is None and \
                _parse_uri_prefix(out_dir) == '':
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        super().before_train(runner)

    # upstream's method, writing the last_checkpoint pointer atomically
    _save_checkpoint_with_step = _with_atomic_open(
        CheckpointHook._save_checkpoint_with_step)
