"""Large-loss rejection (LL-R) of weakly supervised multi-label learning."""
import math
from fractions import Fraction
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mlrpl_mm.utils import check_choice, get_train_progress
from .utils import check_logits_target


@MODELS.register_module()
class LargeLossRejectionLoss(nn.Module):
    r"""Large-loss rejection (LL-R, Kim et al. "Large Loss Matters in
    Weakly Supervised Multi-Label Classification", CVPR 2022).

    The AN loss (BCE, unknown = negative) where, from the second epoch on,
    the unknown entries with the largest losses of the batch are rejected
    (weight 0). At 0-based epoch e the rejection rate is
    :math:`r = e\,\Delta_{rel}/100`; with :math:`k = \lceil BCr \rceil`, an
    unknown entry is rejected when its loss is >= the k-th largest unknown
    loss. Sum of kept losses / (B * C). The epoch comes from the runner's
    message hub, so ``--resume`` continues at the right rate.

    ``rate='exact'`` (default) computes k in exact rational arithmetic
    (:math:`\Delta_{rel}` read as the decimal it is written as, e.g. 0.2 =
    1/5). The reference computes the clean rate by repeated float
    subtraction (``clean_rate = 1``, then ``clean_rate -= delta_rel / 100``
    after every epoch, ``k = ceil(B C (1 - clean_rate))``): where
    :math:`BCr` is an integer the rounding error can push k one higher (or
    lower). ``rate='reference'`` reproduces that (documented difference:
    docs/baselines/README.md, faithful defaults and switches).

    Args:
        delta_rel (float): Rejection-rate increase per epoch, in percent
            (the reference's ``--delta_rel``, one of 0.1 ... 0.5).
            Defaults to 0.2.
        loss_weight (float): Multiplier. Defaults to 1.0.
        rate (str): ``'exact'`` (default) or ``'reference'`` (the
            reference's repeated float subtraction).
    """

    def __init__(self, delta_rel: float = 0.2,
                 loss_weight: float = 1.0, rate: str = 'exact') -> None:
        super().__init__()
        if delta_rel < 0:
            raise ValueError(f'delta_rel must be >= 0, got {delta_rel}')
        check_choice('rate', rate, ('exact', 'reference'),
                     'LargeLossRejectionLoss')
        self.delta_rel = delta_rel
        self.loss_weight = loss_weight
        self.rate = rate

    def rejection_rate(self, epoch: Optional[int] = None) -> float:
        """Fraction of the B*C entries rejected at a 0-based epoch."""
        if epoch is None:
            epoch = get_train_progress().epoch
        if self.rate == 'reference':
            return min(1.0, 1.0 - self._reference_clean_rate(epoch))
        return min(1.0, float(self._exact_rate(epoch)))

    def _exact_rate(self, epoch: int) -> Fraction:
        return min(Fraction(1), Fraction(str(self.delta_rel)) * epoch / 100)

    def _reference_clean_rate(self, epoch: int) -> float:
        clean, step = 1.0, self.delta_rel / 100
        for _ in range(int(epoch)):
            clean -= step
        return clean

    def num_rejected(self, numel: int, epoch: Optional[int] = None) -> int:
        """k: how many of ``numel`` (= B C) entries are rejected."""
        if epoch is None:
            epoch = get_train_progress().epoch
        if self.rate == 'reference':
            clean = self._reference_clean_rate(epoch)
            if clean == 1.0:  # the reference's first epoch
                return 0
            return min(numel, math.ceil(numel * (1 - clean)))
        return math.ceil(numel * self._exact_rate(epoch))

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None,
                epoch: Optional[int] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C); ``epoch`` overrides the message hub
        (tests). Returns a scalar."""
        check_logits_target(logits, target, type(self).__name__)
        logits = logits.float()
        y = (target > 0).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, y, reduction='none')
        unknown = target == 0
        k = self.num_rejected(loss.numel(), epoch)
        n_unknown = int(unknown.sum())
        if k > 0 and n_unknown > 0:
            unk_loss = loss.detach()[unknown]
            thr = torch.topk(unk_loss, min(k, n_unknown)).values[-1]
            reject = unknown & (loss.detach() >= thr)
            loss = loss.masked_fill(reject, 0.0)
        return self.loss_weight * loss.mean()
