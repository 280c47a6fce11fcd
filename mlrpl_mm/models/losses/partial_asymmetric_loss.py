"""Asymmetric loss (ASL) restricted to the known labels."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from mlrpl_mm.utils.checks import check_choice


def asymmetric_loss_matrix(logits: torch.Tensor,
                           target: torch.Tensor,
                           gamma_pos: float = 0.0,
                           gamma_neg: float = 4.0,
                           clip: Optional[float] = 0.05,
                           eps: float = 1e-8,
                           detach_focal_weight: bool = False) -> torch.Tensor:
    r"""Element-wise asymmetric loss (ASL, Ridnik et al., ICCV 2021): the one
    implementation of its asymmetric focusing that every ASL of the package
    uses (:func:`partial_asymmetric_loss`, :func:`asymmetric_loss`).

    With :math:`p = \sigma(x)`, the shifted probability
    :math:`p_m = \max(p - m, 0)` (``clip`` = m; :math:`p_m = p` when m is 0
    or None) and the positive-ness :math:`t \in [0, 1]`:

    .. math::
        \ell = -t\,(1-p)^{\gamma_+}\log \max(p, \epsilon)
               - (1-t)\,p_m^{\gamma_-}\log \max(1-p_m, \epsilon)

    (the reference's :math:`p_- = \min(1, 1 - p + m) = 1 - p_m` and
    focusing weight :math:`(1 - p_-)^{\gamma_-} = p_m^{\gamma_-}`).

    Args:
        logits: (...) raw scores; computed in float32 (AMP-safe).
        target: Same shape, t in [0, 1] (1 positive, 0 negative; soft
            values weight both terms).
        gamma_pos: Focusing parameter of the positives. Defaults to 0.
        gamma_neg: Focusing parameter of the negatives. Defaults to 4.
        clip: Probability margin m of the negatives. Defaults to 0.05.
        eps: Clamp of the log arguments. Defaults to 1e-8.
        detach_focal_weight: Treat the focusing weights as constants in the
            backward pass. Defaults to False.

    Returns:
        float32 tensor of the shape of ``logits``.
    """
    logits = logits.float()
    t = target.to(logits.dtype)
    p = torch.sigmoid(logits)
    p_m = (p - clip).clamp(min=0) if clip and clip > 0 else p
    w_pos = (1 - p).pow(gamma_pos)
    w_neg = p_m.pow(gamma_neg)
    if detach_focal_weight:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    return -(
        t * w_pos * torch.log(p.clamp(min=eps)) + (1 - t) * w_neg * torch.log(
            (1 - p_m).clamp(min=eps)))


def partial_asymmetric_loss(logits: torch.Tensor,
                            target: torch.Tensor,
                            weight: Optional[torch.Tensor] = None,
                            gamma_pos: float = 0.0,
                            gamma_neg: float = 4.0,
                            clip: float = 0.05,
                            eps: float = 1e-8,
                            detach_focal_weight: bool = False,
                            reduction: str = 'mean') -> torch.Tensor:
    r"""ASL (Ridnik et al., ICCV 2021) over the entries whose label is known.

    With :math:`p = \sigma(x)`, the shifted probability
    :math:`p_m = \max(p - m, 0)` (``clip`` = m) and :math:`t = \max(y, 0)`
    (1 for a known positive, 0 for a known negative, soft positives allowed):

    .. math::
        \ell = -t\,(1-p)^{\gamma_+}\log p
               - (1-t)\,p_m^{\gamma_-}\log(1-p_m),
        \qquad
        \mathcal{L} = \frac{1}{|K|}\sum_{(b,c) \in K} w_{bc}\,\ell_{bc},
        \quad K = \{(b,c) : y_{bc} \neq 0\}

    (``reduction='sum'``: the sum over K without the division, as the ASL
    reference); :math:`\ell` is :func:`asymmetric_loss_matrix`. Logarithms
    clamp their argument at ``eps``. Computed in float32 (AMP-safe). 0
    (with a gradient path) when nothing is known.

    Args:
        logits: (B, C) raw scores.
        target: (B, C) in [-1, 1]: +1 / soft (0, 1] positive, -1 negative,
            0 unknown (ignored).
        weight: Optional (B, C) element weights.
        gamma_pos: Focusing parameter of the positives. Defaults to 0.
        gamma_neg: Focusing parameter of the negatives. Defaults to 4.
        clip: Probability margin m of the negatives. Defaults to 0.05.
        eps: Clamp of the log arguments. Defaults to 1e-8.
        detach_focal_weight: Treat the focal weights as constants in the
            backward pass (the reference's ``disable_torch_grad_focal_loss``).
            Defaults to False.
        reduction: ``'mean'`` (over known entries) or ``'sum'``.

    Returns:
        Scalar loss.
    """
    check_choice('reduction', reduction, ('mean', 'sum'))
    if logits.shape != target.shape:
        raise ValueError(f'logits {tuple(logits.shape)} and target '
                         f'{tuple(target.shape)} must have the same shape')
    logits = logits.float()
    target = target.to(logits.dtype)
    known = (target != 0).to(logits.dtype)
    if weight is not None:
        known = known * weight.to(logits.dtype)
    loss = asymmetric_loss_matrix(logits, target.clamp(min=0), gamma_pos,
                                  gamma_neg, clip, eps, detach_focal_weight)
    loss = (loss * known).sum()
    if reduction == 'mean':
        loss = loss / known.sum().clamp(min=1.0)
    return loss


@MODELS.register_module()
class PartialAsymmetricLoss(nn.Module):
    """Asymmetric loss on the known labels (target != 0); see
    :func:`partial_asymmetric_loss`.
    `Paper <https://arxiv.org/abs/2009.14119>`_.

    Args:
        gamma_pos (float): Defaults to 0.
        gamma_neg (float): Defaults to 4.
        clip (float): Probability margin of the negatives. Defaults to 0.05.
        eps (float): Defaults to 1e-8.
        detach_focal_weight (bool): Defaults to False.
        reduction (str): ``'mean'`` over known entries or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 gamma_pos: float = 0.0,
                 gamma_neg: float = 4.0,
                 clip: float = 0.05,
                 eps: float = 1e-8,
                 detach_focal_weight: bool = False,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        check_choice('reduction', reduction, ('mean', 'sum'),
                     'PartialAsymmetricLoss')
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.clip = clip
        self.eps = eps
        self.detach_focal_weight = detach_focal_weight
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                logits: torch.Tensor,
                target: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                **kwargs) -> torch.Tensor:
        """Args: logits (B, C), target (B, C) in {+1, -1, 0}. ``avg_factor``
        is accepted for mmpretrain compatibility and ignored."""
        return self.loss_weight * partial_asymmetric_loss(
            logits, target, weight, self.gamma_pos, self.gamma_neg, self.clip,
            self.eps, self.detach_focal_weight, self.reduction)
