"""Weak assume-negative loss (WAN) of single-positive multi-label learning."""
from typing import Optional

import torch
from mmpretrain.registry import MODELS

from .utils import (LOG_EPS, ElementwiseLoss, bce_terms,
                    check_logits_target)


def weak_assume_negative_loss(logits: torch.Tensor, target: torch.Tensor,
                              eps: Optional[float] = LOG_EPS
                              ) -> torch.Tensor:
    r"""WAN: AN with negatives down-weighted by :math:`1/(C-1)`.

    .. math:: \mathcal{L} = \frac{1}{BC}\sum_{b,c}\Big([t_{bc}>0](-\log
        (p_{bc}+\epsilon)) + [t_{bc}\le 0]\tfrac{1}{C-1}(-\log(1-p_{bc}
        +\epsilon))\Big)

    (``eps`` as :func:`assume_negative_loss`). C = 1 is an error.

    Args:
        logits: (B, C) raw scores; computed in float32.
        target: (B, C) in {+1, -1, 0}.
        eps: Added inside the logs; None: exact. Defaults to 1e-5.

    Returns:
        Scalar loss.
    """
    check_logits_target(logits, target, 'weak_assume_negative_loss')
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError('weak_assume_negative_loss needs C >= 2 classes')
    neg_log_p, neg_log_q = bce_terms(logits.float(), eps)
    loss = torch.where(target > 0, neg_log_p, neg_log_q / (num_classes - 1))
    return loss.mean()


@MODELS.register_module()
class WeakAssumeNegativeLoss(ElementwiseLoss):
    """Weak assume-negative loss (WAN, Cole et al. CVPR 2021),
    :func:`weak_assume_negative_loss`.

    Args:
        eps (float, optional): Added inside the logs (1e-5, the reference);
            None: exact, from the logits. Defaults to 1e-5.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """
    loss_fn = staticmethod(weak_assume_negative_loss)
