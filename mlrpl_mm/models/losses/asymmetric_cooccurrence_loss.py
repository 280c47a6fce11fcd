"""Asymmetric loss on the pair co-occurrence logits of IST."""
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from .partial_asymmetric_loss import asymmetric_loss_matrix


def pair_cooccurrence_targets(target: torch.Tensor, pair_i: torch.Tensor,
                              pair_j: torch.Tensor) -> torch.Tensor:
    """t_ij = 1 if y_i = +1 and y_j = +1 else 0.

    Args:
        target: (B, C) in {+1, -1, 0}.
        pair_i, pair_j: (P,) class indices of the pairs.

    Returns:
        (B, P) float in {0, 1}.
    """
    pos = (target == 1)
    return (pos[:, pair_i] & pos[:, pair_j]).float()


def asymmetric_loss(logits: torch.Tensor, target: torch.Tensor,
                    gamma_neg: float = 2.0, gamma_pos: float = 1.0,
                    clip: float = 0.05, eps: float = 1e-8,
                    focal_grad: bool = True) -> torch.Tensor:
    r"""Asymmetric loss (Ridnik et al., ICCV 2021), mean over all entries.

    With :math:`p = \sigma(x)` and the shifted negative probability
    :math:`p_- = \min(1, 1 - p + \mathrm{clip})`:

    .. math::
        \ell = -\,t\,(1 - p)^{\gamma_+}\log(\max(p, \epsilon))
               - (1 - t)\,(1 - p_-)^{\gamma_-}\log(\max(p_-, \epsilon))

    i.e. :func:`asymmetric_loss_matrix` (:math:`1 - p_- = p_m`), averaged.

    Args:
        logits: (...) raw scores; target: same shape, in {0, 1}.
        gamma_neg, gamma_pos, clip, eps: ASL hyper-parameters.
        focal_grad: Back-propagate through the focusing weight (ASL's
            default); False detaches it.

    Returns:
        Scalar float32 mean loss.
    """
    return asymmetric_loss_matrix(logits, target, gamma_pos, gamma_neg, clip,
                                  eps, not focal_grad).mean()


@MODELS.register_module()
class AsymmetricCooccurrenceLoss(nn.Module):
    """ASL between pair logits Q (B, P) and the co-occurrence targets.

    Target of pair (i, j): 1 when both classes are known positives, else 0
    (:func:`pair_cooccurrence_targets`); the loss is
    :func:`asymmetric_loss`, averaged over all B x P entries.

    Args:
        gamma_neg (float): Defaults to 2.
        gamma_pos (float): Defaults to 1.
        clip (float): Defaults to 0.05.
        eps (float): Defaults to 1e-8.
        focal_grad (bool): Gradient through the focusing weight.
            Defaults to True.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self, gamma_neg: float = 2.0, gamma_pos: float = 1.0,
                 clip: float = 0.05, eps: float = 1e-8,
                 focal_grad: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.gamma_neg, self.gamma_pos = gamma_neg, gamma_pos
        self.clip, self.eps, self.focal_grad = clip, eps, focal_grad
        self.loss_weight = loss_weight

    def forward(self, pair_logits: torch.Tensor, target: torch.Tensor,
                pair_i: torch.Tensor, pair_j: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """pair_logits (B, P); target (B, C) partial labels; pair_i/j (P,)."""
        if pair_logits.shape != (target.shape[0], pair_i.numel()):
            raise ValueError(
                'AsymmetricCooccurrenceLoss: pair logits '
                f'{tuple(pair_logits.shape)} do not match '
                f'(B={target.shape[0]}, P={pair_i.numel()})')
        t = pair_cooccurrence_targets(target, pair_i, pair_j)
        return self.loss_weight * asymmetric_loss(
            pair_logits, t, self.gamma_neg, self.gamma_pos, self.clip,
            self.eps, self.focal_grad)
