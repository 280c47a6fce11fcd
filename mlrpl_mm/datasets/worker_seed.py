"""Resume-exact seeding of the training data-loader workers.

Random augmentation (``RandomCrop``, flips, ...) runs in the data-loader
worker processes and draws from *their* copies of ``random``, ``numpy.random``
and torch's generator. Two things make mmengine's defaults non-resumable:

- with ``persistent_workers=True`` the workers live for the whole run and
  their generators advance from epoch to epoch inside processes whose state
  no checkpoint can hold: a resumed run starts fresh workers, so its epoch
  ``k`` repeats the augmentation of epoch 1 instead of continuing;
- mmengine's ``worker_init_fn`` seeds worker ``w`` of rank ``r`` with
  ``seed + w + r * num_workers`` each time workers start, so with
  non-persistent workers every epoch replays the same augmentation stream.

The training loader therefore restarts its workers every epoch
(``persistent_workers=False``, set by
:func:`mlrpl_mm.apis.set_dataloader_defaults`) and seeds them with
:func:`resumable_worker_init_fn`: PyTorch gives worker ``w`` the seed
``base_seed + w``, where ``base_seed`` is drawn from the main process's torch
generator when the epoch's iterator is created. That generator is saved in
every checkpoint and restored by ``--resume``
(:class:`~mlrpl_mm.engine.hooks.RandomStateHook`), so a resumed run draws the
same ``base_seed`` and its workers the same augmentation as the run it
continues, while consecutive epochs (and ranks, mixed in below) differ.
"""
import os
import random

import numpy as np
import torch
from mmengine.registry import FUNCTIONS

__all__ = ['resumable_worker_init_fn', 'resumable_train_loader', 'worker_seed']


def worker_seed(base: int, rank: int) -> int:
    """A 32-bit seed from the worker's torch seed ``base`` and the rank."""
    seq = np.random.SeedSequence([int(base) % 2**63, int(rank)])
    return int(seq.generate_state(1)[0])


@FUNCTIONS.register_module()
def resumable_worker_init_fn(worker_id: int) -> None:
    """Seed ``random``, ``numpy.random`` and torch in a data-loader worker
    from PyTorch's per-worker seed (``torch.initial_seed()``, i.e. the
    iterator's ``base_seed`` + ``worker_id``) and the process rank
    (``RANK`` environment variable, 0 without a launcher)."""
    seed = worker_seed(torch.initial_seed(), int(os.environ.get('RANK', 0)))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resumable_train_loader(dataloader_cfg) -> None:
    """Default a training dataloader config (in place) to resume-exact
    worker seeding: with ``num_workers > 0``, ``worker_init_fn`` defaults to
    :func:`resumable_worker_init_fn` and ``persistent_workers`` to ``False``.
    A config that sets either keeps its value. Called by
    :class:`~mlrpl_mm.engine.MLRPLRunner` (so mmpretrain's tools, mim and
    user scripts that build the runner from a config get it too) and by
    :func:`mlrpl_mm.apis.set_dataloader_defaults`."""
    if not isinstance(dataloader_cfg, dict) or \
            not dataloader_cfg.get('num_workers', 0):
        return
    dataloader_cfg.setdefault('worker_init_fn',
                              dict(type='resumable_worker_init_fn'))
    dataloader_cfg.setdefault('persistent_workers', False)
