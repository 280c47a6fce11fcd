"""Test-only hooks for the reliability tests, imported by the training
subprocesses through ``custom_imports`` of a small user config.

- ``KillAtHook``: sends a signal (SIGKILL / SIGTERM) to its own process after
  a given training iteration has been logged, so a run is interrupted at a
  deterministic point mid-epoch (no timing races in CI).
- ``DumpHeadStateHook``: saves the head's buffers and parameters plus the
  runner's epoch at the first training iteration of a given epoch, after every
  ``before_train`` / ``before_train_epoch`` hook has run (LOWEST priority).
"""
import os
import signal
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class KillAtHook(Hook):
    """Kill the own process after iteration ``inner_iter`` (1-based) of epoch
    ``epoch`` (1-based) unless the work dir holds a ``.killed`` marker; only
    on rank ``rank`` when given (``SIGSTOP``: a stuck rank)."""

    priority = 'LOWEST'  # after LoggerHook has written the iteration

    def __init__(self, epoch: int, inner_iter: int, sig: str = 'SIGKILL',
                 rank: Optional[int] = None):
        self.epoch = epoch
        self.inner_iter = inner_iter
        self.sig = getattr(signal, sig)
        self.rank = rank

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        from mmengine.dist import get_rank
        if self.rank is not None and get_rank() != self.rank:
            return
        marker = os.path.join(runner.work_dir, '.killed')
        if runner.epoch + 1 == self.epoch and batch_idx + 1 == self.inner_iter \
                and not os.path.exists(marker):
            open(marker, 'w').close()
            for h in runner.logger.handlers:
                h.flush()
            os.kill(os.getpid(), self.sig)


@HOOKS.register_module()
class DumpHeadStateHook(Hook):
    """Save ``{'epoch', 'state'}`` of the head at the first iteration of
    ``epoch`` (0-based, as ``runner.epoch``) to ``work_dir/head_state_<epoch>_
    <tag>.pth``."""

    priority = 'LOWEST'

    def __init__(self, epoch: int, tag: str = 'run'):
        self.epoch = epoch
        self.tag = tag

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.epoch != self.epoch or batch_idx != 0:
            return
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        from mmengine.logging import MessageHub
        state = {k: v.detach().clone()
                 for k, v in model.head.state_dict().items()}
        torch.save(dict(epoch=runner.epoch,
                        hub_epoch=MessageHub.get_current_instance()
                        .get_info('epoch'),
                        state=state),
                   os.path.join(runner.work_dir,
                                f'head_state_{self.epoch}_{self.tag}.pth'))
