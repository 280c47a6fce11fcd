"""Pairwise hinge ranking loss of SigRL's zero-shot training."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mlrpl_mm.utils import register_alias
from .utils import check_logits_target


def ranking_loss(scores: torch.Tensor, target: torch.Tensor,
                 margin: float = 1.0, eps: float = 1e-8) -> torch.Tensor:
    r"""Pairwise hinge ranking loss of SigRL's zero-shot training.

    For every image b and every pair of a positive i (t = +1) and a
    negative j (t = -1) (unknown entries take no part, so only classes with
    a label in the batch count):

    .. math:: h_{bij} = \max(0, m + s_{bj} - s_{bi}), \quad
        \mathcal{L} = \frac{1}{B}\sum_b \frac{\sum_{ij} h_{bij}}
        {|\{(i,j): h_{bij} > 0\}| + \epsilon}

    Built as (B, C, C); fine for C ~ 1,000.
    """
    check_logits_target(scores, target, 'ranking_loss')
    s = scores.float()
    pos = (target > 0).to(s.dtype)
    neg = (target < 0).to(s.dtype)
    h = F.relu(margin + s[:, None, :] - s[:, :, None])  # [b, i, j]
    h = h * pos[:, :, None] * neg[:, None, :]
    count = (h > 0).to(s.dtype).sum((1, 2))
    return (h.sum((1, 2)) / (count + eps)).mean()


@MODELS.register_module()
class SPMLRankingLoss(nn.Module):
    """Hinge ranking loss between positive and negative classes
    (:func:`ranking_loss`), SigRL's zero-shot training loss.

    Registered as ``SPMLRankingLoss``; the old name ``RankingLoss`` stays
    loadable (:func:`mlrpl_mm.utils.register_alias`).

    Args:
        margin (float): Margin. Defaults to 1.0.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, margin: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.margin = margin
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """Scores (B, C), target (B, C) in {+1, -1, 0}; returns a scalar."""
        return self.loss_weight * ranking_loss(logits, target, self.margin)


#: the old Python name
RankingLoss = SPMLRankingLoss
register_alias(MODELS, 'RankingLoss', SPMLRankingLoss)
