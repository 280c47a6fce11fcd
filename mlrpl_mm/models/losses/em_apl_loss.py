"""EM with asymmetric pseudo-labelling (EM+APL) of single-positive
multi-label learning."""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from .em_loss import em_loss_matrix
from .utils import (LOG_EPS, check_logits_target, resize_buffers_on_load,
                    soft_bce)


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
        resize_buffers_on_load(self, ('pseudo_mask', 'pseudo_soft'))

    def required_hooks(self, max_epochs: Optional[int] = None
                       ) -> Dict[str, str]:
        """``APLHook`` when its label updates (after epoch ``warmup_epoch``,
        1-based) happen within ``max_epochs``; without it the loss is plain
        EM. Checked by ``RequiredHooksCheckHook``."""
        if max_epochs is not None and max_epochs <= self.warmup_epoch:
            return {}
        return {'APLHook': 'the asymmetric pseudo-label updates (after epoch '
                f'{self.warmup_epoch}, 1-based)'}

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
        check_logits_target(logits, target, type(self).__name__)
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
            pl = self.beta * soft_bce(s, p, self.eps)
            loss = torch.where(mask, pl, loss)
        return self.loss_weight * loss.mean()
