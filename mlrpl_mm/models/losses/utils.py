"""Small helpers shared by the partial-label losses (private to the package).

Conventions: ``logits`` (B, C) raw scores, ``target`` (B, C) partial labels
in {+1 known positive, -1 known negative, 0 unknown}, ``p = sigmoid(logits)``.

The SPML reference (Cole et al. CVPR 2021, Zhou et al. ECCV 2022) computes
``log(x)`` as ``log(x + 1e-5)`` (:data:`LOG_EPS`, :func:`log_eps`).
"""
from typing import Iterable, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

#: the SPML reference's epsilon inside ``log(x + eps)``
LOG_EPS = 1e-5


def check_logits_target(logits: torch.Tensor, target: torch.Tensor,
                        name: str) -> None:
    """Raise ``ValueError`` unless ``logits`` and ``target`` are both (B, C)
    of the same shape; ``name`` starts the message."""
    if logits.dim() != 2 or logits.shape != target.shape:
        raise ValueError(f'{name}: logits and target must both be (B, C); got '
                         f'{tuple(logits.shape)} and {tuple(target.shape)}')


def log_eps(x: torch.Tensor, eps: float) -> torch.Tensor:
    """:math:`\\log(x + \\epsilon)` (the SPML reference's ``log``)."""
    return torch.log(x + eps)


def bce_terms(logits: torch.Tensor,
              eps: Optional[float]) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""(:math:`-\log p`, :math:`-\log(1 - p)`) of :math:`p = \sigma(x)`,
    each (B, C): as the SPML reference, :math:`-\log(x + \epsilon)`;
    ``eps=None``: exact, from the logits (softplus)."""
    if eps is None:
        return F.softplus(-logits), F.softplus(logits)
    p = torch.sigmoid(logits)
    return -log_eps(p, eps), -log_eps(1 - p, eps)


def soft_bce(y: torch.Tensor, x: torch.Tensor, eps: float) -> torch.Tensor:
    r"""Element-wise BCE of probabilities ``x`` against soft targets ``y``
    (same shape): :math:`-y\log(x+\epsilon) - (1-y)\log(1-x+\epsilon)`."""
    return -y * log_eps(x, eps) - (1 - y) * log_eps(1 - x, eps)


def known_bce(x: torch.Tensor, target: torch.Tensor, eps: float,
              unknown: torch.Tensor) -> torch.Tensor:
    r"""Element-wise BCE of probabilities ``x`` (B, C) on the known labels:
    :math:`-\log(x+\epsilon)` where t = +1, :math:`-\log(1-x+\epsilon)`
    where t = -1 and ``unknown`` (a (B, C) tensor) where t = 0."""
    return torch.where(target > 0, -log_eps(x, eps),
                       torch.where(target < 0, -log_eps(1 - x, eps), unknown))


def resize_buffers_on_load(module: nn.Module, names: Iterable[str]) -> None:
    """Per-sample state buffers are sized by the training set: before a
    state dict is loaded, give each buffer in ``names`` the shape it has in
    the state dict (zeros, same dtype and device), so the load fills it."""
    names = tuple(names)

    def hook(state_dict, prefix, *args, **kwargs) -> None:
        for name in names:
            key = prefix + name
            if key in state_dict:
                cur = getattr(module, name)
                setattr(module, name, cur.new_zeros(state_dict[key].shape))

    module._register_load_state_dict_pre_hook(hook)


class ElementwiseLoss(nn.Module):
    """Base of the losses that are a functional ``loss_fn(logits, target,
    eps)`` times ``loss_weight`` (AN, WAN); subclasses set ``loss_fn``.

    Args:
        eps (float, optional): Added inside the logs; None: exact.
        loss_weight (float): Multiplier.
    """
    loss_fn = None

    def __init__(self, eps: Optional[float] = LOG_EPS,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C) in {+1, -1, 0}; returns a scalar.
        ``avg_factor`` is accepted for mmpretrain heads and ignored."""
        return self.loss_weight * type(self).loss_fn(logits, target,
                                                     self.eps)
