"""Entropy-maximisation loss (EM) of single-positive multi-label learning."""
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from mlrpl_mm.utils import register_alias
from .utils import LOG_EPS, check_logits_target, known_bce, log_eps


def em_loss_matrix(logits: torch.Tensor, target: torch.Tensor, alpha: float,
                   eps: float = LOG_EPS) -> torch.Tensor:
    r"""Entropy-maximisation loss per entry (Zhou et al., ECCV 2022).

    .. math::
        \ell_{bc} = \begin{cases}
        -\log(p + \epsilon) & t = +1 \\
        -\log(1 - p + \epsilon) & t = -1 \\
        \alpha\,[p\log(p+\epsilon) + (1-p)\log(1-p+\epsilon)] & t = 0
        \end{cases}

    (the unknown term is minus the entropy, so minimising it maximises the
    entropy of unknown predictions).

    Args:
        logits: (B, C) raw scores; computed in float32.
        target: (B, C) in {+1, -1, 0}.
        alpha: Weight of the unknown term.
        eps: Added inside the logs. Defaults to 1e-5.

    Returns:
        (B, C) float32 loss matrix.
    """
    p = torch.sigmoid(logits.float())
    unk = alpha * (p * log_eps(p, eps) + (1 - p) * log_eps(1 - p, eps))
    return known_bce(p, target, eps, unk)


@MODELS.register_module()
class SPMLEMLoss(nn.Module):
    """Entropy-maximisation loss (EM) of "Acknowledging the Unknown for
    Multi-label Learning with Single Positive Labels" (Zhou et al., ECCV
    2022), see :func:`em_loss_matrix`; sum over entries / (B * C).

    Registered as ``SPMLEMLoss``; the old name ``EMLoss`` stays loadable
    (:func:`mlrpl_mm.utils.register_alias`).

    Args:
        alpha (float): Weight of the unknown (entropy) term: 0.2 for VOC,
            0.1 for COCO / NUS-WIDE in the reference. Defaults to 0.2.
        eps (float): Added inside the logs. Defaults to 1e-5.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, alpha: float = 0.2, eps: float = LOG_EPS,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C); returns a scalar."""
        check_logits_target(logits, target, type(self).__name__)
        return self.loss_weight * em_loss_matrix(
            logits, target, self.alpha, self.eps).mean()


#: the old Python name
EMLoss = SPMLEMLoss
register_alias(MODELS, 'EMLoss', SPMLEMLoss)
