"""Prototype contrastive loss of CST."""
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from mlrpl_mm.utils.checks import check_choice

_MODES = ('reference', 'pull_push')
_AVERAGES = ('known', 'all')


@MODELS.register_module()
class PrototypeContrastiveLoss(nn.Module):
    r"""Contrast class features with their class prototypes.

    With :math:`d_{bc}` the mean cosine similarity between :math:`f_{bc}`
    and the prototypes of class c, over the entries with :math:`y_{bc} \ne 0`
    (and a class that has prototypes):

    - ``mode='reference'`` (default, faithful to the reference code):
      :math:`1 + y\,d`, which pushes positives away from their prototypes
      and pulls negatives in;
    - ``mode='pull_push'`` (the paper's intent, a documented switch):
      :math:`1 - y\,d`, i.e. :math:`1 - d` for positives and :math:`1 + d`
      for negatives.

    Reduction (faithful by default, docs/equations/protocol.md):

    - ``average='all'`` (default, the reference code's ``torch.mean`` of the
      (B, C) loss matrix): the mean over all B x C entries, where an unknown
      entry (or a class without prototypes) contributes the constant 1 (no
      gradient):

      .. math:: \mathcal{L} = \frac{1}{BC}\Big(\sum_{(b,c)\,\mathrm{kept}}
                (1 \pm y_{bc} d_{bc}) + \#\{\mathrm{not\ kept}\}\Big);

      its gradient is the 'known' one times the kept fraction (10x smaller
      at 10% known labels);
    - ``average='known'`` (switch, docs/equations/hst.md's "mean"): the mean
      over the kept entries (0 if none).

    Args:
        mode (str): ``'reference'`` or ``'pull_push'``.
        average (str): ``'all'`` (default, reference) or ``'known'``.
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self, mode: str = 'reference', average: str = 'all',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        check_choice('mode', mode, _MODES, 'PrototypeContrastiveLoss',
                     one_of=True)
        check_choice('average', average, _AVERAGES, 'PrototypeContrastiveLoss',
                     one_of=True)
        self.mode = mode
        self.average = average
        self.loss_weight = loss_weight

    def forward(self, sim: torch.Tensor, target: torch.Tensor,
                valid_class: torch.Tensor = None, **kwargs) -> torch.Tensor:
        """sim (B, C) mean prototype cosine d; target (B, C) in {+1,-1,0};
        valid_class (C,) bool (classes with prototypes)."""
        y = target.to(sim.device, torch.float32)
        known = (y != 0)
        if valid_class is not None:
            known = known & valid_class.to(sim.device)[None]
        sign = 1.0 if self.mode == 'reference' else -1.0
        terms = 1 + sign * y * sim.float()
        k = known.float()
        if self.average == 'all':
            return self.loss_weight * torch.where(known, terms, 1.0).mean()
        return self.loss_weight * (terms * k).sum() / k.sum().clamp(min=1)
