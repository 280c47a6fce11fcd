"""Per-class, per-quadrant prototypes of PPRB (DSRB), computed by a hook."""
from typing import Optional, Sequence, Tuple, Union

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader

from mlrpl_mm.models.layers.pprb import NUM_QUADRANTS
from mlrpl_mm.utils import gather_by_index, sample_indices, stack_field

from .training_set_loader import build_training_set_loader, check_pipeline_arg


#: how a filled (class, quadrant) cell is averaged (QuadrantPrototypeAccumulator)
QUADRANT_MEANS = ('reference', 'exact')


class QuadrantPrototypeAccumulator:
    r"""Streaming mean of class features per (class, quadrant).

    Rows are (sample, class) pairs of known positives with their pooled
    feature :math:`f_{bc}` (D,) and quadrant q. The prototype of a filled
    cell is

    .. math:: P_{c,q} = \frac{1}{|S_{c,q}| + z} \sum_{b \in S_{c,q}} f_{bc},

    with :math:`S_{c,q}` the images whose class-c quadrant is q: the
    ``max_per_group`` smallest sample indices (= the first ones in dataset
    order, the reference's first-100 rule; independent of the order in which
    rows arrive), or all of them when ``max_per_group`` is None, and
    :math:`z = 1` for ``mean='reference'`` (default: the reference's list of
    a cell starts with an all-zero placeholder row that stays in its
    ``torch.mean``, so a cell of n images is scaled by n / (n + 1): 100/101,
    -1%, at the 100-image cap, 1/2 at n = 1) or :math:`z = 0` for
    ``mean='exact'`` (the switch: the plain mean of dsrb.md). A (c, q)
    without any image gets the class mean over its filled quadrants, i.e. the
    mean of every kept image feature of the class (as the reference: the kept
    features of the filled quadrants concatenated, placeholders excluded,
    then averaged; weighted by the quadrants' counts, not the mean of the
    quadrant means; the same for both ``mean`` settings):

    .. math:: \bar P_c = \frac{\sum_q \sum_{b \in S_{c,q}} f_{bc}}
                              {\sum_q |S_{c,q}|}.

    A class without any image has no prototype (``valid`` False, zeros).

    Everything is vectorised (sort / ``index_add``); the kept rows of the
    capped mode are compacted every ``compact_every`` pending rows.

    :meth:`all_full` says when no further row can change the result (every
    cell holds ``max_per_group`` rows and the rows so far came from a prefix
    of the dataset order), which lets the prototype pass stop early.

    Args:
        num_classes (int): C.
        dims (int): D.
        max_per_group (int, optional): Cap per (c, q). Defaults to 100.
        compact_every (int): Pending rows that trigger a compaction.
            Defaults to 4096.
        mean (str): ``'reference'`` (default, n / (n + 1) scaling) or
            ``'exact'``.
    """

    def __init__(self, num_classes: int, dims: int,
                 max_per_group: Optional[int] = 100,
                 compact_every: int = 4096, mean: str = 'reference') -> None:
        if max_per_group is not None and max_per_group < 1:
            raise ValueError(f'max_per_group must be >= 1 or None, got {max_per_group}')
        if mean not in QUADRANT_MEANS:
            raise ValueError(f'QuadrantPrototypeAccumulator: mean must be one '
                             f'of {QUADRANT_MEANS}, got {mean!r}')
        self.mean = mean
        self.C, self.D = num_classes, dims
        self.G = num_classes * NUM_QUADRANTS
        self.cap = max_per_group
        self.compact_every = compact_every
        self.sums = torch.zeros(self.G, dims, dtype=torch.float64)
        self.counts = torch.zeros(self.G, dtype=torch.long)
        # capped mode: kept rows (group, sample, feature) and per-group bound
        self._group = torch.zeros(0, dtype=torch.long)
        self._sample = torch.zeros(0, dtype=torch.long)
        self._feat = torch.zeros(0, dims, dtype=torch.float64)
        self._pending = []
        self._num_pending = 0
        self._bound = torch.full((self.G,), torch.iinfo(torch.long).max)
        # rows offered per cell (kept or not), for all_full()
        self._offered = torch.zeros(self.G, dtype=torch.long)

    def add(self, sample: torch.Tensor, cls: torch.Tensor, quadrant: torch.Tensor,
            feat: torch.Tensor) -> None:
        """Add rows: sample (R,), cls (R,), quadrant (R,) long; feat (R, D)."""
        sample, cls, quadrant = sample.cpu().long(), cls.cpu().long(), quadrant.cpu().long()
        feat = feat.detach().cpu().double()
        group = cls * NUM_QUADRANTS + quadrant
        self._offered += torch.bincount(group, minlength=self.G)
        if self.cap is None:
            self.sums.index_add_(0, group, feat)
            self.counts += torch.bincount(group, minlength=self.G)
            return
        keep = sample < self._bound[group]
        if keep.any():
            self._pending.append((group[keep], sample[keep], feat[keep]))
            self._num_pending += int(keep.sum())
        if self._num_pending >= self.compact_every:
            self._compact()

    def _compact(self) -> None:
        if not self._pending:
            return
        group = torch.cat([self._group] + [p[0] for p in self._pending])
        sample = torch.cat([self._sample] + [p[1] for p in self._pending])
        feat = torch.cat([self._feat] + [p[2] for p in self._pending])
        self._pending, self._num_pending = [], 0
        order = torch.argsort(sample, stable=True)
        order = order[torch.argsort(group[order], stable=True)]
        group, sample, feat = group[order], sample[order], feat[order]
        counts = torch.bincount(group, minlength=self.G)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(group.numel()) - starts[group]
        keep = rank < self.cap
        self._group, self._sample, self._feat = group[keep], sample[keep], feat[keep]
        full = counts >= self.cap
        last = torch.full((self.G,), -1, dtype=torch.long)
        last.scatter_reduce_(0, self._group, self._sample, reduce='amax')
        self._bound = torch.where(full, last,
                                  torch.full_like(last, torch.iinfo(torch.long).max))

    def all_full(self) -> bool:
        """Whether every (class, quadrant) was offered ``max_per_group`` rows
        (always False without a cap). If the rows offered so far are those of
        a prefix [0, P) of the dataset order, no later row (sample >= P) can
        enter a full cell, and no cell is empty (so no class-mean fill is
        pending): the result is final."""
        return self.cap is not None and bool((self._offered >= self.cap).all())

    def result(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(prototypes (C, 4, D) float32, valid (C,) bool, counts (C, 4))``."""
        if self.cap is not None:
            self._compact()
            sums = torch.zeros(self.G, self.D, dtype=torch.float64)
            sums.index_add_(0, self._group, self._feat)
            counts = torch.bincount(self._group, minlength=self.G)
        else:
            sums, counts = self.sums, self.counts
        sums = sums.view(self.C, NUM_QUADRANTS, self.D)
        counts = counts.view(self.C, NUM_QUADRANTS)
        filled = counts > 0
        # the reference's all-zero placeholder row counts in a filled cell
        extra = 1 if self.mean == 'reference' else 0
        proto = sums / (counts + extra).clamp(min=1).unsqueeze(-1)
        n_class = counts.sum(1)  # kept images of the class, all quadrants
        class_mean = sums.sum(1) / n_class.clamp(min=1).unsqueeze(-1)  # (C, D)
        proto = torch.where(filled.unsqueeze(-1), proto, class_mean.unsqueeze(1))
        return proto.float(), n_class > 0, counts


def _find_head(model, head_attr: str):
    model = model.module if hasattr(model, 'module') else model
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
                            stats: Optional[dict] = None
                            ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over ``dataloader`` in eval mode; PPRB prototypes.

    For every batch: the head's pooled class features f (B, C, D) and energy
    map give each known positive (y = +1) its quadrant; the rows
    ``(sample_idx * C + c, quadrant, f_bc)`` of all ranks are gathered with
    :func:`mlrpl_mm.utils.gather_by_index` (which drops the sampler's padding
    duplicates within a step; duplicates across steps are dropped with a
    seen-sample mask), so every rank feeds the same rows to its
    :class:`QuadrantPrototypeAccumulator` and ends with the same prototypes,
    equal to the single-process result.

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

    Returns:
        ``(prototypes (C, 4, D), valid (C,) bool, counts (C, 4) long)``.
    """
    model, head = _find_head(model, head_attr)
    C, D = head.pprb.num_classes, head.pprb.in_channels
    acc = QuadrantPrototypeAccumulator(C, D, max_per_quadrant, mean=mean)
    n = num_samples if num_samples is not None else len(dataloader.dataset)
    seen = torch.zeros(n, dtype=torch.bool)
    read = torch.zeros(n, dtype=torch.bool)  # images read, all ranks
    prefix, steps, stopped = 0, 0, False  # read[:prefix] all True
    was_training = model.training
    model.eval()
    try:
        for data in dataloader:
            steps += 1
            data = model.data_preprocessor(data, False)
            feats = model.extract_feat(data['inputs'])
            f, _, energy, hw = head.class_features(feats)
            samples = data['data_samples']
            target = stack_field(samples, 'partial_label', device=f.device)
            idx = sample_indices(samples, device=f.device)
            quad = head.pprb.quadrants(energy, hw)  # (B, C)
            b, c = torch.nonzero(target == 1, as_tuple=True)
            key = idx[b] * C + c
            key, q, rows = gather_by_index(key, quad[b, c], f[b, c].float())
            key, q, rows = key.cpu(), q.cpu(), rows.cpu()
            smp = torch.div(key, C, rounding_mode='floor')
            if smp.numel() and int(smp.max()) >= n:
                raise ValueError(f'sample_idx {int(smp.max())} >= dataset size {n}')
            new = ~seen[smp]
            seen[smp] = True
            acc.add(smp[new], key[new] - smp[new] * C, q[new], rows[new])
            if early_stop and max_per_quadrant is not None:
                read_idx, = gather_by_index(idx)
                read_idx = read_idx.cpu()
                if read_idx.numel() and int(read_idx.max()) >= n:
                    raise ValueError(f'sample_idx {int(read_idx.max())} >= '
                                     f'dataset size {n}')
                read[read_idx] = True
                while prefix < n and read[prefix]:
                    prefix += 1
                if acc.all_full() and int(read.sum()) == prefix:
                    stopped = True
                    break
    finally:
        model.train(was_training)
    if stats is not None:
        stats.update(images_read=int(read.sum()) if early_stop and
                     max_per_quadrant is not None else n,
                     num_samples=n, steps=steps, stopped_early=stopped)
    return acc.result()


@HOOKS.register_module()
class PPRBPrototypeHook(Hook):
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

    priority = 'NORMAL'

    def __init__(self, start_epoch: int = 5, interval: int = 5,
                 max_per_quadrant: Optional[int] = 100,
                 pipeline: Union[str, Sequence] = 'train',
                 batch_size: Optional[int] = None,
                 num_workers: Optional[int] = None,
                 head_attr: str = 'head',
                 quadrant_mean: str = 'reference',
                 early_stop: bool = True) -> None:
        if start_epoch < 0 or interval < 1:
            raise ValueError('PPRBPrototypeHook: start_epoch must be >= 0 and '
                             f'interval >= 1, got {start_epoch}, {interval}')
        check_pipeline_arg(pipeline, 'PPRBPrototypeHook')
        if quadrant_mean not in QUADRANT_MEANS:
            raise ValueError(f'PPRBPrototypeHook: quadrant_mean must be one of '
                             f'{QUADRANT_MEANS}, got {quadrant_mean!r}')
        if max_per_quadrant is not None and max_per_quadrant < 1:
            raise ValueError('PPRBPrototypeHook: max_per_quadrant must be >= 1 '
                             f'or None, got {max_per_quadrant}')
        self.quadrant_mean = quadrant_mean
        self.early_stop = bool(early_stop)
        self.start_epoch = start_epoch
        self.interval = interval
        self.max_per_quadrant = max_per_quadrant
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.head_attr = head_attr
        self._loader = None

    def scheduled_epoch(self, epoch: int) -> Optional[int]:
        """The latest scheduled epoch <= ``epoch`` (None before the start)."""
        if epoch < self.start_epoch:
            return None
        return self.start_epoch + (epoch - self.start_epoch) // self.interval * self.interval

    def needs_update(self, epoch: int, prototype_epoch: int) -> bool:
        """Whether prototypes computed at ``prototype_epoch`` must be
        recomputed at the start of ``epoch``."""
        due = self.scheduled_epoch(epoch)
        return due is not None and not (due <= prototype_epoch <= epoch)

    def build_loader(self, runner) -> DataLoader:
        """A non-shuffled (distributed) loader over the training dataset."""
        return build_training_set_loader(
            runner, self.pipeline, 'PPRBPrototypeHook',
            batch_size=self.batch_size, num_workers=self.num_workers)

    def before_train_epoch(self, runner) -> None:
        _, head = _find_head(runner.model, self.head_attr)
        epoch = runner.epoch
        if not self.needs_update(epoch, int(head.pprb.prototype_epoch)):
            return
        # rebuilt at every computation: the 'train' augmentation is seeded
        # with the epoch (training_set_loader.SeededView)
        self._loader = self.build_loader(runner)
        stats = {}
        protos, valid, counts = compute_pprb_prototypes(
            runner.model, self._loader, self.head_attr, self.max_per_quadrant,
            num_samples=len(self._loader.dataset), mean=self.quadrant_mean,
            early_stop=self.early_stop, stats=stats)
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
