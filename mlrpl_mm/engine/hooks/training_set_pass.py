"""One pass of the model over the training set, for whole-dataset method state.

Method state computed from every training image (the CST prototypes of HST,
the PPRB prototypes of DSRB) lives in the model (buffers of its layers, so it
reaches checkpoints); the hooks only schedule the computation and gather the
rows. :class:`TrainingSetPassHook` is their common base:

1. schedule: before train epochs ``start_epoch``, ``start_epoch +
   interval``, ... (0-based), unless the state restored by ``--resume`` is
   still valid (each hook's ``needs_update``);
2. loader: :func:`~.training_set_loader.build_training_set_loader` (dataset
   order, the ``'train'`` augmentation seeded with (seed, epoch, index), the
   ``pipeline`` switch);
3. pass: :func:`training_set_batches`, the model (unwrapped) in eval mode,
   no gradient, batches preprocessed, progress logged;
4. gather: the per-sample rows, keyed ``sample_idx * slots + slot`` (slot: a
   class), are all-gathered by key over the ranks either step by step
   (:class:`StepGather`, which also tracks the images read for an early stop)
   or at the end one chunk of slots at a time (:func:`gather_in_slot_chunks`),
   so every rank holds the single-process rows;
5. update: the gathered rows go to a model-side method
   (``CrossSemanticTransfer.update_prototypes_in_chunks``,
   ``PPRB.prototype_accumulator`` / ``PPRB.set_prototypes``).
"""
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Tuple

import torch
from mmengine.hooks import Hook
from torch.utils.data import DataLoader

from mlrpl_mm.utils import (gather_by_index, gather_by_index_in_groups,
                            unwrap_model)

from .training_set_loader import (PipelineArg, build_training_set_loader,
                                  check_pipeline_arg)


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in eval mode inside the block, its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def training_set_batches(model, loader, hook_name: str = '', logger=None,
                         num_logs: int = 10) -> Iterator[dict]:
    """The batches of ``loader`` through ``model.data_preprocessor``.

    Call it inside :func:`eval_mode` and ``torch.no_grad()``. With a
    ``logger``, the progress (``'<hook_name>: batch i/n'``) is logged about
    ``num_logs`` times per pass.

    Yields:
        ``dict(inputs, data_samples)`` of every batch, in loader order.
    """
    try:
        total = len(loader)
    except TypeError:
        total = None
    every = max(1, (total or 0) // max(1, num_logs)) if total else 100
    for step, data in enumerate(loader, 1):
        if logger is not None and (step % every == 0 or step == total):
            logger.info(f'{hook_name}: batch {step}/{total or "?"}')
        yield model.data_preprocessor(data, False)


class StepGather:
    """All-gather of per-sample rows step by step, every sample once.

    A row is keyed ``sample_idx * slots + slot``. :meth:`rows` gathers the
    rows of one step over all ranks (:func:`mlrpl_mm.utils.gather_by_index`
    drops the sampler's padding duplicates within a step) and drops the
    samples already returned at an earlier step (padding duplicates across
    steps), so every rank gets the same new rows, sorted by key.
    :meth:`read` tracks the images read so far over all ranks, for an early
    stop once they form a prefix [0, P) of the dataset order.

    Args:
        num_samples (int): N, the size of the dataset.
        slots (int): Rows per sample at most (e.g. C).
    """

    def __init__(self, num_samples: int, slots: int) -> None:
        self.num_samples, self.slots = int(num_samples), int(slots)
        self.seen = torch.zeros(self.num_samples, dtype=torch.bool)
        self.read_mask = torch.zeros(self.num_samples, dtype=torch.bool)
        self.prefix = 0  # read_mask[:prefix] all True

    def _check(self, sample: torch.Tensor) -> None:
        if sample.numel() and int(sample.max()) >= self.num_samples:
            raise ValueError(f'sample_idx {int(sample.max())} >= dataset '
                             f'size {self.num_samples}')

    def rows(self, key: torch.Tensor, *tensors: torch.Tensor
             ) -> Tuple[torch.Tensor, ...]:
        """The new rows of this step over all ranks, on the CPU.

        Args:
            key: (R,) long ``sample_idx * slots + slot`` of the local rows.
            *tensors: (R, ...) row values.

        Returns:
            ``(sample (M,), slot (M,), *tensors (M, ...))``.
        """
        key, *values = gather_by_index(key, *tensors)
        key, values = key.cpu(), [v.cpu() for v in values]
        sample = torch.div(key, self.slots, rounding_mode='floor')
        self._check(sample)
        new = ~self.seen[sample]
        self.seen[sample] = True
        sample = sample[new]
        return (sample, key[new] - sample * self.slots) + \
            tuple(v[new] for v in values)

    def read(self, index: torch.Tensor) -> bool:
        """Mark the ``sample_idx`` (B,) read by this rank at this step (all
        ranks gathered); True when the images read so far are exactly a
        prefix [0, P) of the dataset order."""
        index, = gather_by_index(index)
        index = index.cpu()
        self._check(index)
        self.read_mask[index] = True
        while self.prefix < self.num_samples and self.read_mask[self.prefix]:
            self.prefix += 1
        return self.images_read == self.prefix

    @property
    def images_read(self) -> int:
        """Distinct images marked by :meth:`read`, over all ranks."""
        return int(self.read_mask.sum())


def gather_in_slot_chunks(key: torch.Tensor, slots: int,
                          *tensors: torch.Tensor,
                          max_rows: Optional[int] = None
                          ) -> Iterator[Tuple[torch.Tensor, ...]]:
    """The rows of all ranks at the end of a pass, one chunk of slots at a
    time.

    :func:`mlrpl_mm.utils.gather_by_index_in_groups` with the slot
    (``key % slots``) as group: each chunk holds at most ``max_rows`` rows
    (or one slot), slots ascending, rows of a slot sorted by sample. Every
    rank gets the same chunks, equal to the single-process rows, while
    holding only its own shard plus one chunk. None: one chunk.

    Yields:
        ``(slot (M_i,) long, *tensors (M_i, ...))``.
    """
    for k, *values in gather_by_index_in_groups(key, key % slots, slots,
                                                *tensors, max_rows=max_rows):
        yield (k % slots, *values)


class TrainingSetPassHook(Hook):
    """Base of the hooks that recompute model state from the training set.

    Holds the schedule (:meth:`scheduled_epoch`) and the loader settings;
    subclasses say when the state is stale (``needs_update``), which layer
    holds it and which model-side method receives the gathered rows (module
    docstring). Errors name the subclass.

    Args:
        start_epoch (int): First epoch (0-based). Defaults to 5.
        interval (int): Recompute every this many epochs. Defaults to 5.
        pipeline (str | list): ``'train'``, ``'test'`` or transforms
            (:mod:`~mlrpl_mm.engine.hooks.training_set_loader`).
        batch_size (int, optional): Defaults to the training batch size.
        num_workers (int, optional): None: the training loader's.
        head_attr (str): Attribute of the model holding the head.
    """

    priority = 'NORMAL'
    #: collate function of the pass (None: the training loader's); a
    #: subclass sets ``staticmethod(fn)``
    collate_fn: Optional[Callable] = None

    def __init__(self, start_epoch: int = 5, interval: int = 5,
                 pipeline: PipelineArg = 'train',
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 head_attr: str = 'head') -> None:
        if start_epoch < 0 or interval < 1:
            raise ValueError(f'{self.hook_name}: start_epoch must be >= 0 and '
                             f'interval >= 1, got {start_epoch}, {interval}')
        check_pipeline_arg(pipeline, self.hook_name)
        self.start_epoch, self.interval = start_epoch, interval
        self.pipeline = pipeline
        self.batch_size, self.num_workers = batch_size, num_workers
        self.head_attr = head_attr
        self._loader = None  # the loader of the last pass

    @property
    def hook_name(self) -> str:
        return type(self).__name__

    def head(self, model):
        """The head of the (possibly wrapped) ``model``."""
        return getattr(unwrap_model(model), self.head_attr)

    def scheduled_epoch(self, epoch: int) -> Optional[int]:
        """The latest scheduled epoch <= ``epoch`` (None before the start)."""
        if epoch < self.start_epoch:
            return None
        return epoch - (epoch - self.start_epoch) % self.interval

    def build_loader(self, runner) -> DataLoader:
        """A non-shuffled (distributed) loader over the training set."""
        self._loader = build_training_set_loader(
            runner, self.pipeline, self.hook_name,
            batch_size=self.batch_size, num_workers=self.num_workers,
            collate_fn=self.collate_fn)
        return self._loader
