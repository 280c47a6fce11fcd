"""Single-positive multi-label (SPML) losses and the SigRL zero-shot losses.

Every loss takes raw scores ``logits`` (B, C) and partial labels ``target``
(B, C) in {+1 known positive, -1 known negative, 0 unknown}; probabilities
are ``p = sigmoid(logits)``. All are computed in float32 (AMP-safe) and
accept (and ignore) ``avg_factor`` and ``sample_idx`` unless they use them,
so every partial-label head can use them.

The SPML reference (Cole et al. CVPR 2021, Zhou et al. ECCV 2022) divides
the summed loss matrix by B * C, and computes ``log(x)`` as
``log(x + 1e-5)``; both are kept here (AN, WAN, EM, EM+APL; ``eps=None``
gives AN / WAN the exact BCE). LL-R keeps its own reference's exact BCE
with logits.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mlrpl_mm.utils import get_train_progress

LOG_EPS = 1e-5


def _check(logits: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if logits.dim() != 2 or logits.shape != target.shape:
        raise ValueError(f'{name}: logits and target must both be (B, C); got '
                         f'{tuple(logits.shape)} and {tuple(target.shape)}')


def _log(x: torch.Tensor, eps: float) -> torch.Tensor:
    return torch.log(x + eps)


def _bce_terms(logits: torch.Tensor, eps: Optional[float]):
    """(-log p, -log(1 - p)) of p = sigmoid(logits): as the SPML reference,
    ``-log(x + eps)``; ``eps=None``: exact, from the logits (softplus)."""
    if eps is None:
        return F.softplus(-logits), F.softplus(logits)
    p = torch.sigmoid(logits)
    return -_log(p, eps), -_log(1 - p, eps)


def assume_negative_loss(logits: torch.Tensor, target: torch.Tensor,
                         eps: Optional[float] = LOG_EPS) -> torch.Tensor:
    r"""AN: every entry that is not a known positive is a negative.

    .. math:: \mathcal{L} = \frac{1}{BC}\sum_{b,c}\Big([t_{bc}>0](-\log
        (p_{bc}+\epsilon)) + [t_{bc}\le 0](-\log(1-p_{bc}+\epsilon))\Big)

    :math:`\epsilon` = ``eps`` = 1e-5 as the reference (Cole et al.'s
    ``neg_log``); ``eps=None``: the exact BCE from the logits.
    """
    _check(logits, target, 'assume_negative_loss')
    neg_log_p, neg_log_q = _bce_terms(logits.float(), eps)
    return torch.where(target > 0, neg_log_p, neg_log_q).mean()


def weak_assume_negative_loss(logits: torch.Tensor, target: torch.Tensor,
                              eps: Optional[float] = LOG_EPS
                              ) -> torch.Tensor:
    r"""WAN: AN with negatives down-weighted by :math:`1/(C-1)`.

    .. math:: \mathcal{L} = \frac{1}{BC}\sum_{b,c}\Big([t_{bc}>0](-\log
        (p_{bc}+\epsilon)) + [t_{bc}\le 0]\tfrac{1}{C-1}(-\log(1-p_{bc}
        +\epsilon))\Big)

    (``eps`` as :func:`assume_negative_loss`). C = 1 is an error.
    """
    _check(logits, target, 'weak_assume_negative_loss')
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError('weak_assume_negative_loss needs C >= 2 classes')
    neg_log_p, neg_log_q = _bce_terms(logits.float(), eps)
    loss = torch.where(target > 0, neg_log_p, neg_log_q / (num_classes - 1))
    return loss.mean()


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
    entropy of unknown predictions). Returns (B, C).
    """
    p = torch.sigmoid(logits.float())
    pos = -_log(p, eps)
    neg = -_log(1 - p, eps)
    unk = alpha * (p * _log(p, eps) + (1 - p) * _log(1 - p, eps))
    return torch.where(target > 0, pos, torch.where(target < 0, neg, unk))


@MODELS.register_module()
class AssumeNegativeLoss(nn.Module):
    """Assume-negative BCE (AN), mean over all B * C entries
    (:func:`assume_negative_loss`).

    Args:
        eps (float, optional): Added inside the logs, 1e-5 as the SPML
            reference; None: exact BCE from the logits. Defaults to 1e-5.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, eps: Optional[float] = LOG_EPS,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C) in {+1, -1, 0}; returns a scalar."""
        return self.loss_weight * assume_negative_loss(logits, target,
                                                       self.eps)


@MODELS.register_module()
class WeakAssumeNegativeLoss(nn.Module):
    """Weak assume-negative loss (WAN, Cole et al. CVPR 2021),
    :func:`weak_assume_negative_loss`.

    Args:
        eps (float, optional): Added inside the logs (1e-5, the reference);
            None: exact, from the logits. Defaults to 1e-5.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, eps: Optional[float] = LOG_EPS,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.loss_weight = loss_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C); returns a scalar."""
        return self.loss_weight * weak_assume_negative_loss(
            logits, target, self.eps)


@MODELS.register_module()
class EMLoss(nn.Module):
    """Entropy-maximisation loss (EM) of "Acknowledging the Unknown for
    Multi-label Learning with Single Positive Labels" (Zhou et al., ECCV
    2022), see :func:`em_loss_matrix`; sum over entries / (B * C).

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
        _check(logits, target, type(self).__name__)
        return self.loss_weight * em_loss_matrix(
            logits, target, self.alpha, self.eps).mean()


def _resize_buffers_on_load(module: nn.Module, names) -> None:
    """Per-sample state buffers are sized by the training set: before a
    state dict is loaded, give each buffer in ``names`` the shape it has in
    the state dict (zeros, same dtype and device), so the load fills it."""

    def hook(state_dict, prefix, *args, **kwargs) -> None:
        for name in names:
            key = prefix + name
            if key in state_dict:
                cur = getattr(module, name)
                setattr(module, name, cur.new_zeros(state_dict[key].shape))

    module._register_load_state_dict_pre_hook(hook)


@MODELS.register_module()
class EMAPLLoss(nn.Module):
    r"""EM with asymmetric pseudo-labelling (EM+APL, Zhou et al. ECCV 2022).

    Entries that APL has turned into soft pseudo-negatives (value
    :math:`s` = the prediction at labelling time) get

    .. math:: \ell_{bc} = \beta\,[-s\log(p+\epsilon) - (1-s)\log(1-p+\epsilon)]

    and every other entry the EM loss (:func:`em_loss_matrix`); sum / (B*C).

    Label update (:meth:`update_pseudo_labels`, called by
    :class:`APLHook` after every training epoch e (0-based) with
    e + 1 >= ``warmup_epoch``): for each class c, among the entries that are
    unknown in the dataset and not yet pseudo-labelled, the
    ``int(neg_proportion * U_c / (max_epochs - warmup_epoch))`` with the
    lowest predicted probability become pseudo-negatives, U_c being the
    number of unknown entries of class c in the training set.

    The pseudo labels are per-sample state: buffers ``pseudo_mask`` (N, C)
    bool and ``pseudo_soft`` (N, C) float, indexed by ``sample_idx``, saved
    in checkpoints (resized on load) and sized by the hook at the start of
    training.

    Args:
        alpha (float): EM weight of unknown entries. Defaults to 0.2 (VOC).
        beta (float): Weight of pseudo-negatives: 0.02 (VOC), 0.9 (COCO),
            0.2 (NUS-WIDE) in the reference. Defaults to 0.02.
        warmup_epoch (int): First (1-based) epoch after which labels are
            updated. Defaults to 5.
        neg_proportion (float): Fraction of the unknown entries of each
            class turned negative over the run. Defaults to 0.9.
        eps (float): Added inside the logs. Defaults to 1e-5.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, alpha: float = 0.2, beta: float = 0.02,
                 warmup_epoch: int = 5, neg_proportion: float = 0.9,
                 eps: float = LOG_EPS, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not 0 <= neg_proportion <= 1:
            raise ValueError(f'neg_proportion must be in [0, 1], got '
                             f'{neg_proportion}')
        self.alpha = alpha
        self.beta = beta
        self.warmup_epoch = warmup_epoch
        self.neg_proportion = neg_proportion
        self.eps = eps
        self.loss_weight = loss_weight
        self.register_buffer('pseudo_mask',
                             torch.zeros(0, 0, dtype=torch.bool))
        self.register_buffer('pseudo_soft', torch.zeros(0, 0))
        _resize_buffers_on_load(self, ('pseudo_mask', 'pseudo_soft'))

    def init_state(self, num_samples: int, num_classes: int) -> None:
        """Size the state for the training set; keeps a matching one (e.g.
        restored by ``--resume``)."""
        if tuple(self.pseudo_mask.shape) != (num_samples, num_classes):
            dev = self.pseudo_soft.device
            self.pseudo_mask = torch.zeros(num_samples, num_classes,
                                           dtype=torch.bool, device=dev)
            self.pseudo_soft = torch.zeros(num_samples, num_classes,
                                           device=dev)

    @torch.no_grad()
    def update_pseudo_labels(self, probs: torch.Tensor, target: torch.Tensor,
                             epoch: int, max_epochs: int) -> int:
        """One APL step over the whole training set.

        Args:
            probs: (N, C) predicted probabilities, rows in sample order.
            target: (N, C) dataset partial labels (0 = unknown).
            epoch: 0-based epoch that just ended.
            max_epochs: Number of training epochs.

        Returns:
            Number of new pseudo-negatives (0 before the warm-up ends).
        """
        n, c = probs.shape
        self.init_state(n, c)
        if epoch + 1 < self.warmup_epoch:
            return 0
        if max_epochs <= self.warmup_epoch:
            raise ValueError(f'EMAPLLoss: max_epochs ({max_epochs}) must '
                             f'exceed warmup_epoch ({self.warmup_epoch})')
        probs = probs.to(self.pseudo_soft.device).float()
        unknown = target.to(probs.device) == 0
        free = unknown & ~self.pseudo_mask
        added = 0
        for k in range(c):
            num = int(self.neg_proportion * int(unknown[:, k].sum()) /
                      (max_epochs - self.warmup_epoch))
            cand = free[:, k].nonzero(as_tuple=True)[0]
            num = min(num, cand.numel())
            if num == 0:
                continue
            order = torch.argsort(probs[cand, k], stable=True)[:num]
            sel = cand[order]
            self.pseudo_mask[sel, k] = True
            self.pseudo_soft[sel, k] = probs[sel, k]
            added += num
        return added

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                sample_idx: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C), sample_idx (B,) long (needed once
        pseudo labels exist); returns a scalar."""
        _check(logits, target, type(self).__name__)
        loss = em_loss_matrix(logits, target, self.alpha, self.eps)
        if self.pseudo_mask.numel() > 0 and bool(self.pseudo_mask.any()):
            if sample_idx is None:
                raise ValueError('EMAPLLoss holds pseudo labels but got no '
                                 'sample_idx; the head must pass sample_idx')
            idx = sample_idx.to(self.pseudo_mask.device).long()
            if int(idx.max()) >= self.pseudo_mask.shape[0]:
                raise IndexError(f'EMAPLLoss: sample_idx {int(idx.max())} out '
                                 f'of range for {self.pseudo_mask.shape[0]} '
                                 'training samples')
            mask = self.pseudo_mask[idx].to(logits.device) & (target == 0)
            s = self.pseudo_soft[idx].to(logits.device)
            p = torch.sigmoid(logits.float())
            pl = self.beta * (-s * _log(p, self.eps) -
                              (1 - s) * _log(1 - p, self.eps))
            loss = torch.where(mask, pl, loss)
        return self.loss_weight * loss.mean()


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

    Args:
        delta_rel (float): Rejection-rate increase per epoch, in percent
            (the reference's ``--delta_rel``, one of 0.1 ... 0.5).
            Defaults to 0.2.
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, delta_rel: float = 0.2,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if delta_rel < 0:
            raise ValueError(f'delta_rel must be >= 0, got {delta_rel}')
        self.delta_rel = delta_rel
        self.loss_weight = loss_weight

    def rejection_rate(self, epoch: Optional[int] = None) -> float:
        """Fraction of the B*C entries rejected at a 0-based epoch."""
        if epoch is None:
            epoch = get_train_progress().epoch
        return min(1.0, epoch * self.delta_rel / 100.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor,
                avg_factor: Optional[float] = None,
                epoch: Optional[int] = None, **kwargs) -> torch.Tensor:
        """logits (B, C), target (B, C); ``epoch`` overrides the message hub
        (tests). Returns a scalar."""
        _check(logits, target, type(self).__name__)
        logits = logits.float()
        y = (target > 0).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, y, reduction='none')
        rate = self.rejection_rate(epoch)
        unknown = target == 0
        k = math.ceil(loss.numel() * rate)
        n_unknown = int(unknown.sum())
        if k > 0 and n_unknown > 0:
            unk_loss = loss.detach()[unknown]
            thr = torch.topk(unk_loss, min(k, n_unknown)).values[-1]
            reject = unknown & (loss.detach() >= thr)
            loss = loss.masked_fill(reject, 0.0)
        return self.loss_weight * loss.mean()


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
    _check(scores, target, 'ranking_loss')
    s = scores.float()
    pos = (target > 0).to(s.dtype)
    neg = (target < 0).to(s.dtype)
    h = F.relu(margin + s[:, None, :] - s[:, :, None])  # [b, i, j]
    h = h * pos[:, :, None] * neg[:, None, :]
    count = (h > 0).to(s.dtype).sum((1, 2))
    return (h.sum((1, 2)) / (count + eps)).mean()


@MODELS.register_module()
class RankingLoss(nn.Module):
    """Hinge ranking loss between positive and negative classes
    (:func:`ranking_loss`).

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


@MODELS.register_module()
class L1DistillLoss(nn.Module):
    r"""L1 distance to a frozen teacher feature:
    :math:`\frac{1}{BD}\sum |g - g^{teacher}|` (the teacher is detached).

    Args:
        loss_weight (float): Multiplier. Defaults to 1.0.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, feat: torch.Tensor, teacher: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """feat, teacher: (B, D). Returns a scalar."""
        if feat.shape != teacher.shape:
            raise ValueError(f'L1DistillLoss: shapes differ, '
                             f'{tuple(feat.shape)} vs {tuple(teacher.shape)}')
        return self.loss_weight * F.l1_loss(feat.float(),
                                            teacher.detach().float())


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
        _resize_buffers_on_load(self, ('est_logits', 'exp_avg', 'exp_avg_sq',
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
        _check(logits, target, type(self).__name__)
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

        def known(x):
            return torch.where(t > 0, -_log(x, eps),
                               torch.where(t < 0, -_log(1 - x, eps),
                                           torch.zeros_like(x)))

        def cross(y, x):
            return -y * _log(x, eps) - (1 - y) * _log(1 - x, eps)

        k = self.expected_num_pos
        loss_p = 0.5 * (known(p) + cross(est.detach(), p)).sum() / (b * c) \
            + 0.5 * _expected_positive_reg(p, k)
        loss_q = 0.5 * (known(est) + cross(p.detach(), est)).sum() / (b * c) \
            + 0.5 * _expected_positive_reg(est, k)
        if update:
            (grad,) = torch.autograd.grad(loss_q, theta)
            from mmengine.dist import get_world_size
            g_idx, g_grad = gather_by_index(idx, grad.to(dev))
            self._adam_step(g_idx, g_grad / get_world_size())
        return self.loss_weight * (loss_p + loss_q.detach())
