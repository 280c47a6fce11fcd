"""PPRB prototypes: the per-(class, quadrant) means of docs/equations/dsrb.md.

:math:`P_{c,q}` is the mean pooled class feature of the training images whose
class-c energy peak lies in quadrant q (:func:`~.pprb.energy_quadrants`),
computed from a stream of (sample, class, quadrant, feature) rows by
:class:`QuadrantPrototypeAccumulator` and stored in the PPRB layer with
:meth:`~.pprb.PPRB.update_prototypes`. The training-set pass that produces
the rows (loader, all-gather, early stop) is
:class:`~mlrpl_mm.engine.hooks.PPRBPrototypeHook`.
"""
from typing import Optional, Tuple

import torch

#: number of spatial quadrants of a feature map (2 x 2)
NUM_QUADRANTS = 4

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
    ``mean='exact'`` (the switch: the plain mean of docs/equations/dsrb.md). A
    (c, q) without any image gets the class mean over its filled quadrants,
    i.e. the mean of every kept image feature of the class (as the reference:
    the kept features of the filled quadrants concatenated, placeholders
    excluded, then averaged; weighted by the quadrants' counts, not the mean of
    the quadrant means; the same for both ``mean`` settings):

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
