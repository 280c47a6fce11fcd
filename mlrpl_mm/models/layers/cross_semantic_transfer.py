"""CST: cross-image semantic transfer (class prototypes)."""
from typing import Iterable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .kmeans import kmeans


@MODELS.register_module()
class CrossSemanticTransfer(BaseModule):
    r"""Class prototypes and inter-image pseudo labels of HST.

    Prototypes :math:`P_c` (K, D) are the k-means centres (K = 10) of the
    SD features :math:`f_c` of the training images with :math:`y_c = +1`
    (computed by ``CSTPrototypeHook``). The buffers ``prototypes`` (C, K, D),
    ``prototype_count`` (C,) (valid centres per class: min(K, #positives))
    and ``prototype_epoch`` (epoch of the last computation, -1 = never)
    reach checkpoints.

    .. math::
        \mathrm{score}_{bc} = \frac{1}{K_c}\sum_{k \le K_c}
            \cos(f_{bc}, P_{ck}),\qquad
        \mathrm{cst}_{bc} = \mathrm{clamp}(\mathrm{score}_{bc} - m, 0, 1)

    with the learnable margin m (init 1.0); a class without prototypes
    scores 0 and gets cst = 0 (no inter pseudo label).

    Args:
        num_classes (int): C.
        in_channels (int): D. Defaults to 1024.
        num_prototypes (int): K. Defaults to 10.
        margin_init (float): Defaults to 1.0.
        seed (int): k-means seed. Defaults to 0.
        kmeans_iters (int): Lloyd iterations. Defaults to 100.
    """

    def __init__(self, num_classes: int, in_channels: int = 1024,
                 num_prototypes: int = 10, margin_init: float = 1.0,
                 seed: int = 0, kmeans_iters: int = 100,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_prototypes <= 0:
            raise ValueError(f'num_prototypes must be positive, got {num_prototypes}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.num_prototypes = num_prototypes
        self.seed = seed
        self.kmeans_iters = kmeans_iters
        self.margin = nn.Parameter(torch.tensor(float(margin_init)))
        self.register_buffer('prototypes',
                             torch.zeros(num_classes, num_prototypes, in_channels))
        self.register_buffer('prototype_count',
                             torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer('prototype_epoch', torch.tensor(-1, dtype=torch.long))

    @property
    def has_prototypes(self) -> bool:
        return int(self.prototype_epoch) >= 0

    @torch.no_grad()
    def update_prototypes(self, classes: torch.Tensor, feats: torch.Tensor,
                          epoch: int) -> None:
        """k-means per class over the rows of ``feats`` with that class.

        Args:
            classes: (M,) long class index of each row.
            feats: (M, D) features f_c of known positives (M rows, any order
                as long as it is the same on every rank).
            epoch: Stamp stored in ``prototype_epoch``.
        """
        self.update_prototypes_in_chunks([(classes, feats)], epoch)

    @torch.no_grad()
    def update_prototypes_in_chunks(self, chunks: Iterable[
            Tuple[torch.Tensor, torch.Tensor]], epoch: int) -> None:
        r""":meth:`update_prototypes` from rows arriving in chunks of classes.

        .. math:: P_c = \mathrm{kmeans}_K(\{f_{bc} : y_{bc} = +1\}),
                  \qquad K_c = \min(K, \#\{b : y_{bc} = +1\})

        (docs/equations/hst.md: the SD features of every training image with a
        known positive c; :func:`~.kmeans.kmeans` seeded with ``seed + epoch``,
        the classes clustered in ascending order with one generator).

        ``chunks`` yields ``(classes (M_i,), feats (M_i, D))`` whose class
        sets are disjoint and ascending (every class of a chunk above every
        class of the previous one), e.g. from
        :func:`mlrpl_mm.utils.gather_by_index_in_groups`; only one chunk is
        held at a time. The classes are clustered in ascending order with one
        generator, exactly as one call with every row.
        """
        gen = torch.Generator().manual_seed(int(self.seed) + int(epoch))
        protos = torch.zeros_like(self.prototypes)
        count = torch.zeros_like(self.prototype_count)
        last = -1
        for classes, feats in chunks:
            if feats.dim() != 2 or feats.shape[1] != self.in_channels:
                raise ValueError(f'CST prototypes: features must be (M, '
                                 f'{self.in_channels}), got '
                                 f'{tuple(feats.shape)}')
            feats = feats.to(self.prototypes.device, torch.float32)
            classes = classes.to(self.prototypes.device).long()
            if classes.numel() == 0:
                continue
            # rows of each class in their order in ``feats`` (stable sort),
            # as feats[classes == c]
            order = torch.argsort(classes, stable=True)
            classes, feats = classes[order], feats[order]
            present, n = torch.unique_consecutive(classes, return_counts=True)
            if int(present[0]) <= last:
                raise ValueError('CST prototypes: chunks must hold disjoint, '
                                 'ascending classes')
            last = int(present[-1])
            for c, x in zip(present.tolist(), torch.split(feats, n.tolist())):
                if not 0 <= c < self.num_classes:
                    raise ValueError(f'CST prototypes: class {c} outside '
                                     f'[0, {self.num_classes})')
                cen = kmeans(x, self.num_prototypes, gen, self.kmeans_iters)
                protos[c, :cen.shape[0]] = cen
                count[c] = cen.shape[0]
        self.prototypes.copy_(protos)
        self.prototype_count.copy_(count)
        self.prototype_epoch.fill_(int(epoch))

    def similarity(self, f: torch.Tensor) -> torch.Tensor:
        """d_bc = mean over the valid k of cos(f_bc, P_ck), (B, C); 0 for a
        class without prototypes."""
        if f.dim() != 3 or f.shape[1:] != (self.num_classes, self.in_channels):
            raise ValueError(f'CrossSemanticTransfer expects f (B, {self.num_classes}, '
                             f'{self.in_channels}), got {tuple(f.shape)}')
        fn = F.normalize(f.float(), dim=-1)
        pn = F.normalize(self.prototypes.float(), dim=-1)
        cos = torch.einsum('bcd,ckd->bck', fn, pn)
        valid = (torch.arange(self.num_prototypes, device=f.device)[None]
                 < self.prototype_count[:, None]).to(cos.dtype)  # (C, K)
        return (cos * valid).sum(-1) / valid.sum(-1).clamp(min=1)

    @property
    def valid_classes(self) -> torch.Tensor:
        """(C,) bool: classes with at least one prototype."""
        return self.prototype_count > 0

    def pseudo_scores(self, f: torch.Tensor,
                      sim: Optional[torch.Tensor] = None) -> torch.Tensor:
        """cst = clamp(score - margin, 0, 1), (B, C); 0 for a class without
        prototypes (whatever the margin: a negative learnt margin must not
        turn every unknown label of such a class positive). ``sim``: the
        :meth:`similarity` of f when already computed."""
        sim = self.similarity(f) if sim is None else sim
        cst = torch.clamp(sim - self.margin, 0, 1)
        return cst * self.valid_classes.to(cst.dtype)
