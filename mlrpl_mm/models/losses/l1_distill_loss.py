"""L1 feature distillation loss of SigRL."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mlrpl_mm.utils import register_alias


@MODELS.register_module()
class SigRLL1DistillLoss(nn.Module):
    r"""L1 distance to a frozen teacher feature:
    :math:`\frac{1}{BD}\sum |g - g^{teacher}|` (the teacher is detached);
    SigRL's distillation loss (``SigRLHead``'s ``distill_loss``, between
    its feature g and a frozen teacher's).

    Registered as ``SigRLL1DistillLoss``; the old name ``L1DistillLoss``
    stays loadable (:func:`mlrpl_mm.utils.register_alias`).

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
            raise ValueError(f'{type(self).__name__}: shapes differ, '
                             f'{tuple(feat.shape)} vs {tuple(teacher.shape)}')
        return self.loss_weight * F.l1_loss(feat.float(),
                                            teacher.detach().float())


#: the old Python name
L1DistillLoss = SigRLL1DistillLoss
register_alias(MODELS, 'L1DistillLoss', SigRLL1DistillLoss)
