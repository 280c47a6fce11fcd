"""Instance-perspective representation blending (IPRB) of DSRB."""
from typing import Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS


def check_unit_interval(name: str, value: torch.Tensor, owner: str) -> None:
    """Raise a clear error when a blending weight left [0, 1].

    The weights are kept in [0, 1] by clamping them after every optimizer
    step (:class:`~mlrpl_mm.engine.hooks.BlendWeightClampHook`); a value
    outside means that hook is missing from ``custom_hooks``.
    """
    v = float(value.detach())
    if not 0.0 <= v <= 1.0:
        raise ValueError(
            f'{owner}.{name} = {v:.6g} is outside [0, 1]: the blending weights '
            "are clamped after each optimizer step by "
            "custom_hooks=[dict(type='BlendWeightClampHook')]; add it to the "
            'config (or call clamp_() after your own optimizer step).')


@MODELS.register_module()
class IPRB(nn.Module):
    r"""Instance-perspective representation blending on pooled features.

    Image b is paired with :math:`b' = B - 1 - b` (the batch reversed). For
    every class c with :math:`y_{bc} = 0` (unknown) and :math:`y_{b'c} = +1`
    (known positive in the partner):

    .. math::
        \tilde f_{bc} = a f_{bc} + (1 - a) f_{b'c}, \qquad
        \tilde y_{bc} = 1 - a,

    all other entries keep :math:`f_{bc}` and :math:`y_{bc}`. The blend mask
    is constant over the N locations, so blending the pooled class features
    :math:`f = \sum_n F_{\cdot, n, \cdot}` equals pooling the blended
    (B, N, C, D) maps of the literal formulation (docs/equations/dsrb.md);
    nothing of size (B, N, C, D) is built.

    ``a`` is a learnable scalar (init 0.5) kept in [0, 1] by clamping after
    every optimizer step (:meth:`clamp_`, called by ``BlendWeightClampHook``),
    not by a reparametrisation: the gradient w.r.t. ``a`` is the plain one,
    exactly as in the reference. The soft target :math:`1 - a` is part of the
    graph (the BCE against it also trains ``a``). When ``a`` reaches exactly 1
    the blended target is 0 and the entry stays unknown (nothing is blended
    in that case anyway).

    Args:
        init_alpha (float): Initial a. Defaults to 0.5.
        learnable (bool): Train a (else a fixed buffer). Defaults to True.

    Shapes:
        forward(f (B, C, D), target (B, C) in {+1, -1, 0}) ->
        (f_blend (B, C, D), target_blend (B, C), mask (B, C) bool).
    """

    def __init__(self, init_alpha: float = 0.5, learnable: bool = True) -> None:
        super().__init__()
        if not 0.0 <= init_alpha <= 1.0:
            raise ValueError(f'IPRB: init_alpha must be in [0, 1], got {init_alpha}')
        alpha = torch.tensor(float(init_alpha))
        if learnable:
            self.alpha = nn.Parameter(alpha)
        else:
            self.register_buffer('alpha', alpha)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp a into [0, 1] in place (after an optimizer step)."""
        self.alpha.clamp_(0.0, 1.0)

    @staticmethod
    def blend_mask(target: torch.Tensor) -> torch.Tensor:
        """(B, C) bool: unknown in b and known positive in b' = B-1-b."""
        return (target == 0) & (target.flip(0) == 1)

    def forward(self, f: torch.Tensor, target: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Blend each image with its partner on the eligible classes.

        Args:
            f: (B, C, D) pooled class features.
            target: (B, C) partial labels in {+1, -1, 0}.

        Returns:
            ``(f_blend, target_blend, mask)``: (B, C, D), (B, C) float (soft
            target 1 - a on blended entries), (B, C) bool blended entries.
        """
        if f.dim() != 3 or target.shape != f.shape[:2]:
            raise ValueError(f'IPRB: f must be (B, C, D) and target (B, C), got '
                             f'{tuple(f.shape)} and {tuple(target.shape)}')
        check_unit_interval('alpha', self.alpha, 'IPRB')
        mask = self.blend_mask(target)
        a = self.alpha.to(f.dtype)
        f_blend = torch.where(mask.unsqueeze(-1), a * f + (1.0 - a) * f.flip(0),
                              f)
        target_blend = torch.where(mask, (1.0 - self.alpha).to(target.dtype),
                                   target)
        return f_blend, target_blend, mask

    def extra_repr(self) -> str:
        return f'alpha={float(self.alpha.detach()):.4f}'
