"""Assume-negative BCE (AN) of single-positive multi-label learning."""
from typing import Optional

import torch
from mmpretrain.registry import MODELS

from .utils import (LOG_EPS, ElementwiseLoss, bce_terms,
                    check_logits_target)


def assume_negative_loss(logits: torch.Tensor, target: torch.Tensor,
                         eps: Optional[float] = LOG_EPS) -> torch.Tensor:
    r"""AN: every entry that is not a known positive is a negative.

    .. math:: \mathcal{L} = \frac{1}{BC}\sum_{b,c}\Big([t_{bc}>0](-\log
        (p_{bc}+\epsilon)) + [t_{bc}\le 0](-\log(1-p_{bc}+\epsilon))\Big)

    :math:`\epsilon` = ``eps`` = 1e-5 as the reference (Cole et al.'s
    ``neg_log``); ``eps=None``: the exact BCE from the logits.

    Args:
        logits: (B, C) raw scores; computed in float32.
        target: (B, C) in {+1, -1, 0}.
        eps: See above. Defaults to 1e-5.

    Returns:
        Scalar loss.
    """
    check_logits_target(logits, target, 'assume_negative_loss')
    neg_log_p, neg_log_q = bce_terms(logits.float(), eps)
    return torch.where(target > 0, neg_log_p, neg_log_q).mean()


@MODELS.register_module()
class AssumeNegativeLoss(ElementwiseLoss):
    """Assume-negative BCE (AN, Cole et al. "Multi-Label Learning from Single
    Positive Labels", CVPR 2021), mean over all B * C entries
    (:func:`assume_negative_loss`).

    Args:
        eps (float, optional): Added inside the logs, 1e-5 as the SPML
            reference; None: exact BCE from the logits. Defaults to 1e-5.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """
    loss_fn = staticmethod(assume_negative_loss)
