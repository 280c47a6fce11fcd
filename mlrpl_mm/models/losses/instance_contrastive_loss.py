"""Instance contrastive loss between images of a batch (HST, DSRB)."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from mlrpl_mm.utils.checks import check_choice

_MINING = ('reference', 'disjoint')


def _mine(values: torch.Tensor, n: int,
          generator: Optional[torch.Generator],
          mining: str = 'reference') -> torch.Tensor:
    """Hard mining of one set of negative terms, given n (+1, +1) terms.

    ``'reference'`` (default, the reference code): ``min(m, 2n)`` terms drawn
    uniformly without replacement from all m terms, plus the ``min(m, n)``
    largest (a term can be in both, then it counts twice); when n = 0 the
    set is not mined and every term is kept.

    ``'disjoint'``: the n largest plus 2n others drawn from the remaining
    terms (each term at most once; all m when m <= 3n); nothing when n = 0.
    """
    m = values.numel()
    if mining == 'reference':
        if n <= 0 or m == 0:
            return values
        perm = torch.randperm(m, generator=generator)[:2 * n].to(values.device)
        order = torch.argsort(values.detach(), descending=True)[:n]
        return values[torch.cat([perm, order])]
    if n <= 0 or m == 0:
        return values[:0]
    if m <= 3 * n:
        return values
    order = torch.argsort(values.detach(), descending=True)
    top, rest = order[:n], order[n:]
    perm = torch.randperm(rest.numel(), generator=generator)
    rand = rest[perm[:2 * n].to(rest.device)]
    return values[torch.cat([top, rand])]


def instance_contrastive_loss(f: torch.Tensor, target: torch.Tensor,
                              generator: Optional[torch.Generator] = None,
                              mining: str = 'reference') -> torch.Tensor:
    r"""Instance contrastive loss with the hard-mining rule of HST.

    For every unordered image pair (i < j) and class c, with
    :math:`d = \cos(f_{ic}, f_{jc})`:

    - both +1: :math:`1 - d`;
    - one +1 and one -1: :math:`1 + d`;
    - both -1: :math:`1 + d`;
    - any 0: ignored.

    With n the number of (+1, +1) terms (over all pairs and classes), keep
    2n random plus the n largest of the (+1, -1) terms, and the same of the
    (-1, -1) terms (see :func:`_mine` for the two readings: ``'reference'``,
    the default, draws the 2n from the whole set and keeps every term when
    n = 0, as the reference code; ``'disjoint'`` draws them from the terms
    that are not among the n largest and keeps no negative term when n = 0).
    The loss is the mean of all kept terms, 0 if none.

    Args:
        f: (B, C, D) class-specific features.
        target: (B, C) in {+1, -1, 0}.
        generator: CPU generator for the random draw (seedable).
        mining: ``'reference'`` or ``'disjoint'``.

    Returns:
        Scalar float32 loss.
    """
    check_choice('mining', mining, _MINING, 'instance_contrastive_loss',
                 one_of=True)
    if f.dim() != 3 or target.shape != f.shape[:2]:
        raise ValueError(f'instance_contrastive_loss: f must be (B, C, D) and '
                         f'target (B, C), got {tuple(f.shape)} and '
                         f'{tuple(target.shape)}')
    B = f.shape[0]
    if B < 2:
        return f.float().sum() * 0
    fn = F.normalize(f.float(), dim=-1)
    sim = torch.einsum('icd,jcd->cij', fn, fn)  # (C, B, B)
    iu, ju = torch.triu_indices(B, B, offset=1, device=f.device)
    d = sim[:, iu, ju]  # (C, P)
    t = target.to(f.device)
    ti, tj = t[iu].t(), t[ju].t()  # (C, P)
    pp = (ti == 1) & (tj == 1)
    pn = ((ti == 1) & (tj == -1)) | ((ti == -1) & (tj == 1))
    nn_ = (ti == -1) & (tj == -1)
    pos_terms = (1 - d)[pp]
    n = pos_terms.numel()
    kept = [pos_terms, _mine((1 + d)[pn], n, generator, mining),
            _mine((1 + d)[nn_], n, generator, mining)]
    kept = torch.cat(kept)
    if kept.numel() == 0:
        return fn.sum() * 0
    return kept.mean()


@MODELS.register_module()
class InstanceContrastiveLoss(nn.Module):
    """Module wrapper of :func:`instance_contrastive_loss`.

    Args:
        loss_weight (float): Multiplier. Defaults to 1.0.
        seed (int, optional): Seed of the mining generator; None uses torch's
            global generator (seeded by mmengine's ``randomness.seed``).
        mining (str): ``'reference'`` (default: as the reference code) or
            ``'disjoint'`` (see :func:`instance_contrastive_loss`).
    """

    def __init__(self, loss_weight: float = 1.0,
                 seed: Optional[int] = None,
                 mining: str = 'reference') -> None:
        super().__init__()
        check_choice('mining', mining, _MINING, 'InstanceContrastiveLoss',
                     one_of=True)
        self.loss_weight = loss_weight
        self.mining = mining
        self.seed = seed
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator()
            self.generator.manual_seed(int(seed))

    def forward(self, f: torch.Tensor, target: torch.Tensor,
                **kwargs) -> torch.Tensor:
        """f (B, C, D), target (B, C) -> scalar."""
        return self.loss_weight * instance_contrastive_loss(
            f, target, self.generator, self.mining)
