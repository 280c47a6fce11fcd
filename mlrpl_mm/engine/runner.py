"""MLRPLRunner: mmengine's Runner with safe checkpoints, scoped to our runs.

``configs/_base_/default_runtime.py`` sets ``runner_type='MLRPLRunner'``
(``tools/train.py`` / ``tools/test.py`` build with ``RUNNERS.build``, the
mmengine way). Everything below applies to this runner only: ``import
mlrpl_mm`` replaces nothing of mmengine, so a plain ``Runner`` in the same
process behaves exactly as upstream.

What it changes against ``mmengine.runner.Runner`` (0.10.7):

- **Loading** (``load_from``, ``--resume``, ``tools/test.py CKPT``): local
  files go through :func:`~mlrpl_mm.utils.checkpoint.safe_torch_load`
  (``weights_only=True`` plus a data-only allow-list on torch >= 2.6; a
  missing, corrupt or unsafe file is one
  :class:`~mlrpl_mm.utils.checkpoint.CheckpointError` naming it).
- **Resume runs no text of the checkpoint**: upstream's ``resume`` calls
  ``Config.fromstring(checkpoint['meta']['config'])`` (Python config text,
  i.e. code execution) only to compare ``gpu_ids``. Here the text is taken
  out of the loaded checkpoint and ``gpu_ids`` is read from it with
  :func:`ast.literal_eval` (parsed, never executed). With
  ``MLRPL_TRUST_CHECKPOINTS=1`` / ``--trust-checkpoint`` upstream's
  behaviour is kept. Everything resume needs (epoch / iter, optimizer,
  param schedulers, message hub, seed, model and method state) is restored
  as upstream does.
- **Auto-resume** (``--resume`` without a file) refuses a
  ``work_dir/last_checkpoint`` that is empty or names a file outside the
  work dir (or the checkpoint hook's ``out_dir``).
- **Saving**: a config's ``CheckpointHook`` is built as
  :class:`~mlrpl_mm.engine.hooks.AtomicCheckpointHook` (atomic checkpoint and
  ``last_checkpoint`` writes), and the message hub's ``HistoryBuffer``\\ s
  are written as plain data, so the file loads with ``weights_only=True``.
"""
import ast
import copy
import os.path as osp
from typing import Callable, List, Optional, Union

from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from mlrpl_mm.datasets.worker_seed import resumable_train_loader
from mlrpl_mm.utils.checkpoint import (CheckpointError, data_only_message_hub,
                                       load_checkpoint_file,
                                       trust_checkpoints_enabled)
from mlrpl_mm.utils.model import unwrap_model
from .hooks.atomic_checkpoint_hook import AtomicCheckpointHook

__all__ = ['MLRPLRunner', 'stored_gpu_ids']

_CHECKPOINT_HOOK_TYPES = ('CheckpointHook', 'mmengine.CheckpointHook',
                          CheckpointHook)


def stored_gpu_ids(config_text: str) -> Optional[list]:
    """``gpu_ids`` of a config text stored in a checkpoint, or None.

    Reads a top-level ``gpu_ids = [...]`` assignment with :mod:`ast`: the
    text is parsed, never executed; anything but a literal is ignored.
    """
    try:
        tree = ast.parse(config_text)
    except (SyntaxError, ValueError, TypeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == 'gpu_ids'
                for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError,
                    RecursionError):
                return None
            return list(value) if isinstance(value, (list, tuple)) else None
    return None


@RUNNERS.register_module()
class MLRPLRunner(Runner):
    """``mmengine.runner.Runner`` with safe loading, a resume that executes
    nothing from the checkpoint, a checked ``last_checkpoint`` and atomic
    saving. Same arguments as ``Runner``; select it with
    ``runner_type='MLRPLRunner'``.
    """

    _checkpoint_config_text: Optional[str] = None

    @classmethod
    def from_cfg(cls, cfg) -> 'MLRPLRunner':
        """As upstream; the training loader defaults to resume-exact worker
        seeding (:func:`~mlrpl_mm.datasets.worker_seed.resumable_train_loader`)
        whichever tool builds the runner."""
        cfg = copy.deepcopy(cfg)
        resumable_train_loader(cfg.get('train_dataloader', None))
        return super().from_cfg(cfg)

    # ------------------------------------------------------------ hooks
    def register_hook(self, hook: Union[Hook, dict],
                      priority: Optional[Union[int, str]] = None) -> None:
        """As upstream; a ``CheckpointHook`` config builds an
        :class:`AtomicCheckpointHook` (same arguments)."""
        if isinstance(hook, dict) and \
                hook.get('type', None) in _CHECKPOINT_HOOK_TYPES:
            hook = dict(hook)
            hook['type'] = AtomicCheckpointHook
        super().register_hook(hook, priority)

    def call_hook(self, fn_name: str, **kwargs) -> None:
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint':
            # the last step before torch.save: the message hub as plain data
            ckpt = kwargs['checkpoint']
            if 'message_hub' in ckpt:
                ckpt['message_hub'] = data_only_message_hub(
                    ckpt['message_hub'])

    # ---------------------------------------------------------- loading
    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """Upstream's ``load_checkpoint`` with the safe loader; the config
        text stored in the checkpoint is taken out (kept for
        :meth:`resume`'s ``gpu_ids`` check) unless checkpoints are trusted.
        """
        checkpoint = load_checkpoint_file(filename, map_location=map_location)
        self._checkpoint_config_text = None
        meta = checkpoint.get('meta', None) if isinstance(checkpoint, dict) \
            else None
        if isinstance(meta, dict) and 'config' in meta and \
                not trust_checkpoints_enabled():
            text = meta.pop('config')
            self._checkpoint_config_text = text if isinstance(text, str) \
                else None
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = unwrap_model(self.model)
        checkpoint = _load_checkpoint_to_model(
            model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(self,
               filename: str,
               resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """Upstream's ``resume`` (through the safe :meth:`load_checkpoint`),
        then its ``gpu_ids`` check on the stored config text, read with
        :func:`stored_gpu_ids` instead of executing it."""
        super().resume(filename, resume_optimizer=resume_optimizer,
                       resume_param_scheduler=resume_param_scheduler,
                       map_location=map_location)
        text, self._checkpoint_config_text = \
            self._checkpoint_config_text, None
        if text is None:
            return
        previous = stored_gpu_ids(text)
        if previous and len(previous) != self._world_size:
            if self.auto_scale_lr is None or \
                    not self.auto_scale_lr.get('enable', False):
                raise RuntimeError(
                    f'{filename}: the checkpoint was trained on '
                    f'{len(previous)} GPUs (gpu_ids of its config) and this '
                    f'run uses {self._world_size}; set '
                    'auto_scale_lr.enable=True (--auto-scale-lr) to scale '
                    'the learning rate.')
            self.logger.info(
                'Number of GPUs differs from the resumed checkpoint; the '
                f'learning rate is scaled by auto_scale_lr={self.auto_scale_lr}')

    def load_or_resume(self) -> None:
        """As upstream; auto-resume checks ``work_dir/last_checkpoint``
        first (:meth:`_checked_last_checkpoint`)."""
        if not self._has_loaded and self._resume and self._load_from is None:
            self._checked_last_checkpoint()
        super().load_or_resume()

    def _checkpoint_dirs(self) -> List[str]:
        """Directories a ``last_checkpoint`` may point into: the work dir
        and the ``out_dir`` of each checkpoint hook."""
        dirs = [self.work_dir]
        for hook in self._hooks:
            out_dir = getattr(hook, 'out_dir', None) if isinstance(
                hook, CheckpointHook) else None
            if isinstance(out_dir, str) and '://' not in out_dir:
                if out_dir != self.work_dir:
                    out_dir = osp.join(
                        out_dir, osp.basename(self.work_dir.rstrip(osp.sep)))
                dirs.append(out_dir)
        return [osp.realpath(d) for d in dirs]

    def _checked_last_checkpoint(self) -> Optional[str]:
        """The checkpoint named by ``work_dir/last_checkpoint`` (None when
        there is no such file).

        Raises:
            CheckpointError: the file is empty, or names a checkpoint outside
                the work dir (a ``last_checkpoint`` edited or planted by
                someone else would otherwise make ``--resume`` load any file).
        """
        pointer = osp.join(self.work_dir, 'last_checkpoint')
        if not osp.isfile(pointer):
            return None
        with open(pointer) as f:
            target = f.read().strip()
        if not target:
            raise CheckpointError(
                f'{pointer} is empty: it should name the latest checkpoint '
                'of this work dir. Resume from a checkpoint explicitly '
                '(--resume WORK_DIR/epoch_N.pth) or delete the file to '
                'train from scratch.')
        real = osp.realpath(target)
        dirs = self._checkpoint_dirs()
        if not any(osp.commonpath([real, d]) == d for d in dirs):
            raise CheckpointError(
                f'{pointer} names {target!r}, which is outside the work dir '
                f'{self.work_dir!r}: refusing to auto-resume from it (the '
                'file may have been edited, or the work dir moved). To '
                'resume from that checkpoint, pass it explicitly: --resume '
                f'{target}; otherwise fix or delete {pointer}.')
        return target
