"""Regularised online label estimation (ROLE) of single-positive multi-label
learning."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from .utils import (LOG_EPS, check_logits_target, known_bce,
                    resize_buffers_on_load, soft_bce)


def _expected_positive_reg(x: torch.Tensor, k: float) -> torch.Tensor:
    """(mean over images of sum_c x - k)^2 / C^2 (Cole et al.)."""
    return (x.sum(1).mean(0) - k) ** 2 / x.shape[1] ** 2


@MODELS.register_module()
class ROLELoss(nn.Module):
    r"""Regularised online label estimation (ROLE, Cole et al. "Multi-Label
    Learning from Single Positive Labels", CVPR 2021).

    A label estimate :math:`q = \sigma(\theta)` is learnt for every training
    entry jointly with the classifier's :math:`p`. With :math:`\ell(y, x) =
    -y\log(x+\epsilon) - (1-y)\log(1-x+\epsilon)`, :math:`\bar x` = detached,
    known positives :math:`t = +1` (known negatives, other protocols, count
    the same way with :math:`-\log(1-x+\epsilon)`) and
    :math:`R(x) = (\frac1B\sum_{b,c} x_{bc} - K)^2 / C^2`:

    .. math::
        \mathcal{L} = \frac{1}{BC}\sum_{b,c}\tfrac12\big([t=1](-\log(p+
        \epsilon) - \log(q+\epsilon)) + \ell(\bar q, p) + \ell(\bar p, q)
        \big) + \tfrac12 (R(p) + R(q))

    (the reference's loss matrix / (B * C) plus its regulariser). The
    classifier gets the gradient of the p terms through the returned loss;
    the estimator is updated here by Adam on its own (``estimator_lr``, the
    reference's lr x ``lr_mult`` = 1e-5 x 10; the reference's single Adam
    optimizer also updates every row, with zero gradient for rows outside
    the batch, which this dense step reproduces).

    State (buffers, in checkpoints, resized on load): ``est_logits`` (N, C),
    the Adam moments and step, and ``seen`` (N,). Rows are created when their
    sample first appears (``sample_idx``), from its labels as the reference:
    known positives :math:`\sigma^{-1}(0.995)`, known negatives
    :math:`\sigma^{-1}(0.005)`, unknown entries uniform in
    :math:`\pm\sigma^{-1}(0.6)`, drawn from a generator seeded by ``seed``
    and the sample index (independent of the batch order). Under DDP the
    (sample_idx, gradient) rows of all ranks are gathered (gradients divided
    by the world size, as DDP averages) so the state is identical on every
    rank. Needs ``sample_idx`` (:class:`SigRLHead` passes it).

    Args:
        expected_num_pos (float): K, the expected number of positives per
            image (Cole et al.: 1.5 VOC, 2.9 COCO, 1.9 NUS-WIDE, 31.4 CUB).
        estimator_lr (float): Adam lr of the estimates. Defaults to 1e-4.
        betas (tuple): Adam betas. Defaults to (0.9, 0.999).
        adam_eps (float): Adam epsilon. Defaults to 1e-8.
        eps (float): Added inside the logs. Defaults to 1e-5.
        seed (int): Seed of the random initial estimates. Defaults to 0.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, expected_num_pos: float, estimator_lr: float = 1e-4,
                 betas=(0.9, 0.999), adam_eps: float = 1e-8,
                 eps: float = LOG_EPS, seed: int = 0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if expected_num_pos <= 0:
            raise ValueError(f'expected_num_pos must be > 0, got '
                             f'{expected_num_pos}')
        self.expected_num_pos = float(expected_num_pos)
        self.estimator_lr = estimator_lr
        self.betas = tuple(betas)
        self.adam_eps = adam_eps
        self.eps = eps
        self.seed = seed
        self.loss_weight = loss_weight
        for name in ('est_logits', 'exp_avg', 'exp_avg_sq'):
            self.register_buffer(name, torch.zeros(0, 0))
        self.register_buffer('seen', torch.zeros(0, dtype=torch.bool))
        self.register_buffer('adam_step', torch.zeros((), dtype=torch.long))
        resize_buffers_on_load(self, ('est_logits', 'exp_avg', 'exp_avg_sq',
                                       'seen'))

    def estimates(self) -> torch.Tensor:
        """(N, C) current label estimates q (rows never seen are 0.5)."""
        return torch.sigmoid(self.est_logits)

    def _grow(self, n: int, c: int, device) -> None:
        if self.est_logits.numel() and self.est_logits.shape[1] != c:
            raise ValueError(f'ROLELoss holds estimates for '
                             f'{self.est_logits.shape[1]} classes, got {c}')
        old = self.est_logits.shape[0] if self.est_logits.numel() else 0
        if n <= old:
            return
        for name in ('est_logits', 'exp_avg', 'exp_avg_sq'):
            buf = torch.zeros(n, c, device=device)
            if old:
                buf[:old] = getattr(self, name)
            setattr(self, name, buf)
        seen = torch.zeros(n, dtype=torch.bool, device=device)
        seen[:old] = self.seen[:old]
        self.seen = seen

    @torch.no_grad()
    def _init_rows(self, idx: torch.Tensor, target: torch.Tensor) -> None:
        q = math.log(0.6 / 0.4)
        pos, neg = math.log(0.995 / 0.005), math.log(0.005 / 0.995)
        for i, t in zip(idx.tolist(), target):
            gen = torch.Generator().manual_seed(
                int(self.seed) * 1_000_003 + int(i))
            row = q * (2 * torch.rand(t.numel(), generator=gen) - 1)
            row = torch.where(t.cpu() > 0, torch.full_like(row, pos), row)
            row = torch.where(t.cpu() < 0, torch.full_like(row, neg), row)
            self.est_logits[i] = row.to(self.est_logits.device)
            self.seen[i] = True

    @torch.no_grad()
    def _adam_step(self, idx: torch.Tensor, grad: torch.Tensor) -> None:
        b1, b2 = self.betas
        g = torch.zeros_like(self.est_logits)
        g[idx] = grad
        self.adam_step += 1
        t = int(self.adam_step)
        self.exp_avg.mul_(b1).add_(g, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(g, g, value=1 - b2)
        denom = (self.exp_avg_sq.sqrt() / math.sqrt(1 - b2 ** t)).add_(
            self.adam_eps)
        self.est_logits.addcdiv_(self.exp_avg, denom,
                                 value=-self.estimator_lr / (1 - b1 ** t))

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                sample_idx: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C), sample_idx (B,) long; returns the
        scalar loss and, in training (grad enabled), updates the estimates
        of these samples."""
        from mlrpl_mm.utils import gather_by_index
        check_logits_target(logits, target, type(self).__name__)
        if sample_idx is None:
            raise ValueError('ROLELoss needs sample_idx (per-sample label '
                             'estimates); the head must pass it')
        b, c = logits.shape
        eps = self.eps
        dev = self.est_logits.device
        idx = sample_idx.to(dev).long()
        tgt = target.to(dev)
        update = torch.is_grad_enabled()
        if update:
            # all ranks see every new row (identical state everywhere)
            g_idx, g_tgt = gather_by_index(idx, tgt.float())
            self._grow(int(g_idx.max()) + 1, c, dev)
            new = ~self.seen[g_idx]
            if bool(new.any()):
                self._init_rows(g_idx[new], g_tgt[new])
        elif self.est_logits.numel() == 0 or \
                int(idx.max()) >= self.est_logits.shape[0]:
            raise IndexError('ROLELoss: no estimates for these samples')
        p = torch.sigmoid(logits.float())
        theta = self.est_logits[idx].detach().to(p.device).requires_grad_(
            update)
        est = torch.sigmoid(theta)
        t = target.to(p.device)

        def half_loss(x, other):
            """(1 / 2BC) sum of the known and cross terms of x."""
            mtx = known_bce(x, t, eps, torch.zeros_like(x)) + \
                soft_bce(other.detach(), x, eps)
            return 0.5 * mtx.sum() / (b * c)

        k = self.expected_num_pos
        loss_p = half_loss(p, est) + 0.5 * _expected_positive_reg(p, k)
        loss_q = half_loss(est, p) + 0.5 * _expected_positive_reg(est, k)
        if update:
            (grad,) = torch.autograd.grad(loss_q, theta)
            from mmengine.dist import get_world_size
            g_idx, g_grad = gather_by_index(idx, grad.to(dev))
            self._adam_step(g_idx, g_grad / get_world_size())
        return self.loss_weight * (loss_p + loss_q.detach())
