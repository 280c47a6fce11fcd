"""Hook computing the per-class, per-quadrant PPRB prototypes (DSRB) on
schedule; the quadrant means themselves are the layer's
(:mod:`mlrpl_mm.models.layers.pprb_prototypes`)."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmpretrain.registry import HOOKS

# re-exported: their home before the layer held the prototype math
from mlrpl_mm.models.layers.pprb_prototypes import (  # noqa: F401
    QUADRANT_MEANS, QuadrantPrototypeAccumulator)
from mlrpl_mm.utils import (check_choice, sample_indices, stack_field,
                            unwrap_model)

from .training_set_pass import (StepGather, TrainingSetPassHook, eval_mode,
                                training_set_batches)


def _find_head(model, head_attr: str):
    model = unwrap_model(model)
    head = getattr(model, head_attr, None)
    if head is None or getattr(head, 'pprb', None) is None or \
            not hasattr(head, 'class_features'):
        raise AttributeError(
            f'PPRBPrototypeHook: model.{head_attr} ({type(head).__name__}) has '
            'no PPRB (pprb=None or not a DSRBHead); remove the hook from '
            'custom_hooks for configs without PPRB')
    return model, head


@torch.no_grad()
def compute_pprb_prototypes(model, dataloader, head_attr: str = 'head',
                            max_per_quadrant: Optional[int] = 100,
                            num_samples: Optional[int] = None,
                            mean: str = 'reference',
                            early_stop: bool = True,
                            stats: Optional[dict] = None, logger=None
                            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over ``dataloader`` in eval mode; PPRB prototypes.

    For every batch: the head's pooled class features f (B, C, D) and energy
    map give each known positive (y = +1) its quadrant; the rows
    ``(sample_idx * C + c, quadrant, f_bc)`` of all ranks are gathered with
    :func:`mlrpl_mm.utils.gather_by_index` (which drops the sampler's padding
    duplicates within a step; duplicates across steps are dropped with a
    seen-sample mask: :class:`~.training_set_pass.StepGather`), so every
    rank feeds the same rows to its accumulator
    (:meth:`PPRB.prototype_accumulator
    <mlrpl_mm.models.layers.PPRB.prototype_accumulator>`, the quadrant
    means of docs/equations/dsrb.md) and ends with the same prototypes, equal
    to the single-process result.

    Early stop (``early_stop=True``, with a cap): the pass ends after the
    first step at which (a) the images read so far, over all ranks, are
    exactly a prefix [0, P) of the dataset order (their ``sample_idx`` are
    all-gathered every step: ``DefaultSampler(shuffle=False)`` reads
    [0, (s + 1) B W) after step s on W ranks) and (b) every (class, quadrant)
    was offered ``max_per_quadrant`` rows
    (:meth:`QuadrantPrototypeAccumulator.all_full`). Then every cell holds its
    final first-``max_per_quadrant`` images (a later image has a larger
    index), no cell is empty (no class-mean fill is pending) and the result
    equals the full pass. The decision is a function of the gathered rows
    only, which every rank holds identically, so all ranks stop at the same
    step without further communication. A class with fewer than
    4 x ``max_per_quadrant`` known positives (or one quadrant that never
    reaches the cap) keeps the pass running to the end: on the protocol's
    datasets that is always the case (docs/dsrb/README.md).

    Args:
        model: the (possibly DDP-wrapped) classifier with ``data_preprocessor``,
            ``extract_feat`` and a DSRB head.
        dataloader: a non-shuffled loader of the training set. Every rank must
            run the same number of steps (mmengine's ``DefaultSampler`` pads).
        head_attr (str): Attribute of the head. Defaults to ``'head'``.
        max_per_quadrant (int, optional): Cap per (c, q), None for all.
        num_samples (int, optional): Size of the dataset (for the seen mask).
            Defaults to ``len(dataloader.dataset)``.
        mean (str): Mean of a filled cell, ``'reference'`` (default, the
            reference's placeholder row: sum / (n + 1)) or ``'exact'``
            (:class:`QuadrantPrototypeAccumulator`).
        early_stop (bool): Stop as soon as the result is final (above).
            Defaults to True; False reads every image.
        stats (dict, optional): Filled with ``images_read`` (distinct
            images processed over all ranks; data-loader workers may have
            prefetched a few more batches), ``num_samples``, ``steps`` and
            ``stopped_early``.
        logger (optional): Progress of the pass is logged to it.

    Returns:
        ``(prototypes (C, 4, D), valid (C,) bool, counts (C, 4) long)``.
    """
    model, head = _find_head(model, head_attr)
    pprb = head.pprb
    acc = pprb.prototype_accumulator(max_per_quadrant, mean=mean)
    n = num_samples if num_samples is not None else len(dataloader.dataset)
    rows = StepGather(n, pprb.num_classes)
    track_read = early_stop and max_per_quadrant is not None
    steps, stopped = 0, False
    with eval_mode(model):
        for data in training_set_batches(model, dataloader,
                                         'PPRBPrototypeHook', logger):
            steps += 1
            f, _, energy, hw = head.class_features(
                model.extract_feat(data['inputs']))
            samples = data['data_samples']
            target = stack_field(samples, 'partial_label', device=f.device)
            idx = sample_indices(samples, device=f.device)
            b, c, quad, feat = pprb.prototype_rows(f, energy, target, hw)
            acc.add(*rows.rows(idx[b] * pprb.num_classes + c, quad, feat))
            if track_read and rows.read(idx) and acc.all_full():
                stopped = True
                break
    if stats is not None:
        stats.update(images_read=rows.images_read if track_read else n,
                     num_samples=n, steps=steps, stopped_early=stopped)
    return acc.result()


@HOOKS.register_module()
class PPRBPrototypeHook(TrainingSetPassHook):
    """Compute the PPRB prototypes on schedule (DSRB).

    Before train epochs ``start_epoch``, ``start_epoch + interval``, ...
    (0-based; 5, 10, 15 by default) the model runs in eval mode over its own
    non-shuffled loader of the training set (one pass, no gradient) and
    :func:`compute_pprb_prototypes` writes ``head.pprb.prototypes`` (C, 4, D),
    ``prototype_valid`` and ``prototype_epoch`` (buffers: saved in
    checkpoints). After ``--resume`` prototypes restored from the checkpoint
    are kept when they are valid for the current epoch (computed at or after
    the latest scheduled epoch); otherwise (e.g. a checkpoint written before
    the first computation, or a schedule change) they are computed now.

    Pipeline (:mod:`~mlrpl_mm.engine.hooks.training_set_loader`, shared with
    ``CSTPrototypeHook``): ``'train'`` (default, the reference behaviour: the
    training dataset as configured, i.e. augmented training images),
    ``'test'`` (the improvement switch: the training set's data infos through
    the val/test pipeline of the config, i.e. un-augmented images) or an
    explicit list of transforms. The order is
    the dataset order (the reference's loader is shuffled, which makes its
    first-100 rule nondeterministic); the first ``max_per_quadrant`` images
    per (class, quadrant) in dataset order are averaged (None: all), with the
    reference's all-zero placeholder row in the mean of a filled cell
    (``quadrant_mean='reference'``, sum / (n + 1); ``'exact'`` = sum / n).
    The pass stops as soon as its result is final (``early_stop``, see
    :func:`compute_pprb_prototypes`): the same prototypes, fewer images read.

    Args:
        start_epoch (int): First epoch. Defaults to 5.
        interval (int): Recompute every ``interval`` epochs. Defaults to 5.
        max_per_quadrant (int, optional): Defaults to 100 (reference).
        pipeline (str | list): ``'train'``, ``'test'`` or a list of
            transforms for this pass. Defaults to ``'train'`` (reference).
        batch_size (int, optional): Defaults to the training batch size.
        num_workers (int, optional): Defaults to the training loader's.
        head_attr (str): Defaults to ``'head'``.
        quadrant_mean (str): ``'reference'`` (default: sum / (n + 1), the
            reference's placeholder row) or ``'exact'`` (sum / n).
        early_stop (bool): End the pass once every (class, quadrant) holds
            its final ``max_per_quadrant`` images. Defaults to True (same
            result as a full pass); False reads every image.
    """

    def __init__(self, start_epoch: int = 5, interval: int = 5,
                 max_per_quadrant: Optional[int] = 100,
                 pipeline: Union[str, Sequence] = 'train',
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 head_attr: str = 'head',
                 quadrant_mean: str = 'reference',
                 early_stop: bool = True) -> None:
        super().__init__(start_epoch, interval, pipeline, batch_size,
                         num_workers, head_attr)
        check_choice('quadrant_mean', quadrant_mean, QUADRANT_MEANS,
                     'PPRBPrototypeHook', one_of=True)
        if max_per_quadrant is not None and max_per_quadrant < 1:
            raise ValueError('PPRBPrototypeHook: max_per_quadrant must be >= 1 '
                             f'or None, got {max_per_quadrant}')
        self.quadrant_mean = quadrant_mean
        self.early_stop = bool(early_stop)
        self.max_per_quadrant = max_per_quadrant

    def needs_update(self, epoch: int, prototype_epoch: int) -> bool:
        """Whether prototypes computed at ``prototype_epoch`` must be
        recomputed at the start of ``epoch`` (not computed between the
        latest scheduled epoch and ``epoch``)."""
        due = self.scheduled_epoch(epoch)
        return due is not None and not (due <= prototype_epoch <= epoch)

    def before_train_epoch(self, runner) -> None:
        _, head = _find_head(runner.model, self.head_attr)
        epoch = runner.epoch
        if not self.needs_update(epoch, int(head.pprb.prototype_epoch)):
            return
        # rebuilt at every computation: the 'train' augmentation is seeded
        # with the epoch (training_set_loader.SeededView)
        loader = self.build_loader(runner)
        stats = {}
        protos, valid, counts = compute_pprb_prototypes(
            runner.model, loader, self.head_attr, self.max_per_quadrant,
            num_samples=len(loader.dataset), mean=self.quadrant_mean,
            early_stop=self.early_stop, stats=stats, logger=runner.logger)
        head.pprb.set_prototypes(protos, valid, epoch)
        read = (f'{stats["images_read"]} of {stats["num_samples"]} training '
                'images read' + (' (stopped early: every (class, quadrant) '
                                 'full)' if stats['stopped_early'] else ''))
        runner.logger.info(
            f'PPRBPrototypeHook: prototypes at epoch {epoch} from '
            f'{int(counts.sum())} (image, class) rows; '
            f'{int((counts == 0).sum())} empty (class, quadrant) filled with '
            f'the class mean; {int((~valid).sum())} classes without '
            f'prototype; {read}')
