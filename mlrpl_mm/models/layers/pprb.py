"""Prototype-perspective representation blending (PPRB) of DSRB."""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from mlrpl_mm.utils.checks import check_choice
from .iprb import check_unit_interval
from .pprb_prototypes import NUM_QUADRANTS, QuadrantPrototypeAccumulator


#: how the half of an odd side is split (see :func:`energy_quadrants`)
QUADRANT_SPLITS = ('floor', 'exact')


def energy_quadrants(energy: torch.Tensor, hw: Sequence[int],
                     split: str = 'floor') -> torch.Tensor:
    r"""Quadrant of the energy peak of every (image, class).

    With the energy map :math:`e_{b,(h,w),c}` (N = H W locations in row-major
    order), :math:`h^* = \arg\max_h \max_w e_{h,w}`,
    :math:`w^* = \arg\max_w \max_h e_{h,w}` (first index on ties) and

    .. math:: q = 2\,[h^* \ge H/2] + [w^* \ge W/2] \in \{0, 1, 2, 3\}.

    ``split`` says what :math:`H/2` means for an odd side (the default 7 x 7
    map): ``'floor'`` (default, the reference's ``halfSize = H // 2``: for
    H = 7 rows 0-2 are the top half and the middle row 3 belongs to the
    bottom half) or ``'exact'`` (the real number H/2 = 3.5 of
    docs/equations/dsrb.md read literally: rows 0-3 top, 4-6 bottom). Both
    agree for even sides.

    Args:
        energy: (B, N, C) energy map, e.g. :math:`\alpha_{n,c} \sum_d x_{n,d}`.
        hw: (H, W) with H W = N.
        split (str): ``'floor'`` or ``'exact'``.

    Returns:
        (B, C) long quadrant indices.
    """
    H, W = int(hw[0]), int(hw[1])
    if energy.dim() != 3 or energy.shape[1] != H * W:
        raise ValueError(f'energy_quadrants: energy must be (B, H*W={H * W}, C), '
                         f'got {tuple(energy.shape)}')
    check_choice('split', split, QUADRANT_SPLITS, 'energy_quadrants',
                 one_of=True)
    e = energy.detach().unflatten(1, (H, W))  # (B, H, W, C)
    h_star = e.amax(dim=2).argmax(dim=1)  # (B, C)
    w_star = e.amax(dim=1).argmax(dim=1)  # (B, C)
    if split == 'floor':
        bottom, right = h_star >= H // 2, w_star >= W // 2
    else:
        bottom, right = 2 * h_star >= H, 2 * w_star >= W
    return 2 * bottom.long() + right.long()


@MODELS.register_module()
class PPRB(nn.Module):
    r"""Prototype-perspective (location-sensitive) blending on pooled features.

    For every image b, K classes are drawn uniformly without replacement among
    its unknown entries (:math:`y_{bc} = 0`) that have a prototype. An image
    with fewer than K such entries (e.g. no unknown label: 12% of the images
    at VOC 2007 p = 90%) is handled by ``fill_known``:

    - ``fill_known=True`` (default, the reference): the reference draws with
      ``torch.topk(rand * (y == 0), K)`` on CUDA, whose score row is 0 at
      every known entry; CUDA's top-k fills the places left after the
      strictly larger scores with the tied entries in ascending index order
      (``gatherTopK``'s in-order scan), so the remaining draws are the
      image's lowest-index known entries (the lowest-index class with a
      prototype here). They are blended like the others and their target
      becomes :math:`1 - \beta` (a known negative too). (torch.topk on CPU
      breaks such ties differently: for a row of 20 zeros and K = 1 it
      returns index 12 with torch 2.x; the CUDA order is the one that
      produced the published numbers, and it is what this module does on
      every device.)
    - ``fill_known=False`` (switch): the missing draws are skipped; an image
      with no unknown entry blends nothing.

    For a drawn class c with current
    quadrant :math:`q_{bc}` (:func:`energy_quadrants` of the energy map) and
    :math:`r` uniform in {1, 2, 3}, :math:`q' = (q_{bc} - r) \bmod 4` and

    .. math::
        \tilde f_{bc} = \beta f_{bc} + (1 - \beta) P_{c,q'}, \qquad
        \tilde y_{bc} = 1 - \beta,

    where :math:`P_{c,q} = \sum_n \mathrm{Proto}_{c,q}[n]` is the pooled
    prototype (C, 4, D) of docs/equations/dsrb.md. Because the blend is
    constant over the N locations this equals pooling the literal (B, N, C, D)
    blend. All other entries keep :math:`f_{bc}, y_{bc}`.

    Prototypes are buffers (``prototypes`` (C, 4, D), ``prototype_valid``
    (C,) bool, ``prototype_epoch`` the epoch they were computed at, -1 =
    never), written by :class:`~mlrpl_mm.engine.hooks.PPRBPrototypeHook`
    through :meth:`set_prototypes` from the rows of :meth:`prototype_rows`
    averaged by :meth:`prototype_accumulator`
    (:class:`~.pprb_prototypes.QuadrantPrototypeAccumulator`: the first
    ``max_per_quadrant`` images per (c, q) in dataset order, empty cells
    filled with the class mean); they are saved in checkpoints. A class
    without any known positive in the training set has no prototype
    (``prototype_valid`` False, the reference would blend NaN/zeros); it is
    never drawn.

    ``beta`` is learnable (init 0.5) and kept in [0, 1] by clamping after
    every optimizer step (:meth:`clamp_`, ``BlendWeightClampHook``); the soft
    target :math:`1 - \beta` is part of the graph.

    Random draws (classes and r) use ``generator`` when given (a CPU
    :class:`torch.Generator`, for reproducible tests), else torch's global
    generator (seeded by mmengine's ``randomness``).

    Args:
        num_classes (int): C.
        in_channels (int): D.
        init_beta (float): Initial beta. Defaults to 0.5.
        top_k (int): K, classes blended per image. Defaults to 1.
        learnable (bool): Train beta. Defaults to True.
        quadrant_split (str): Half of an odd side, ``'floor'`` (reference,
            default) or ``'exact'``; see :func:`energy_quadrants`. The
            prototype hook uses the same rule (:meth:`quadrants`).
        fill_known (bool): Fill the draws an image lacks with its
            lowest-index known entries (reference, default) or skip them.
    """

    def __init__(self, num_classes: int, in_channels: int,
                 init_beta: float = 0.5, top_k: int = 1,
                 learnable: bool = True, quadrant_split: str = 'floor',
                 fill_known: bool = True) -> None:
        super().__init__()
        self.fill_known = bool(fill_known)
        check_choice('quadrant_split', quadrant_split, QUADRANT_SPLITS, 'PPRB',
                     one_of=True)
        self.quadrant_split = quadrant_split
        if not 0.0 <= init_beta <= 1.0:
            raise ValueError(f'PPRB: init_beta must be in [0, 1], got {init_beta}')
        if top_k < 1 or top_k > num_classes:
            raise ValueError(f'PPRB: top_k must be in [1, num_classes={num_classes}], '
                             f'got {top_k}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.top_k = top_k
        beta = torch.tensor(float(init_beta))
        if learnable:
            self.beta = nn.Parameter(beta)
        else:
            self.register_buffer('beta', beta)
        self.register_buffer(
            'prototypes', torch.zeros(num_classes, NUM_QUADRANTS, in_channels))
        self.register_buffer('prototype_valid',
                             torch.zeros(num_classes, dtype=torch.bool))
        self.register_buffer('prototype_epoch', torch.tensor(-1, dtype=torch.long))

    def quadrants(self, energy: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
        """(B, C) quadrants of the energy map (B, N, C) with this module's
        ``quadrant_split``."""
        return energy_quadrants(energy, hw, self.quadrant_split)

    @torch.no_grad()
    def prototype_rows(self, f: torch.Tensor, energy: torch.Tensor,
                       target: torch.Tensor, hw: Sequence[int]
                       ) -> Tuple[torch.Tensor, ...]:
        r"""The rows of one batch that the prototypes :math:`P_{c,q}` average.

        Every known positive (:math:`y_{bc} = +1`) gives the row
        :math:`(b, c, q_{bc}, f_{bc})`, with :math:`q_{bc}` the quadrant of
        its energy peak (:meth:`quadrants`), i.e. image b is a candidate
        member of :math:`S_{c, q_{bc}}` in

        .. math:: P_{c,q} = \frac{1}{|S_{c,q}|} \sum_{b \in S_{c,q}} f_{bc}.

        Args:
            f: (B, C, D) pooled class features.
            energy: (B, N, C) energy map.
            target: (B, C) partial labels in {+1, -1, 0}.
            hw: (H, W) of the map, H W = N.

        Returns:
            ``(b (R,) long, c (R,) long, quadrant (R,) long, feat (R, D)
            float32)``, the positives in row-major (b, c) order.
        """
        quad = self.quadrants(energy, hw)  # (B, C)
        b, c = torch.nonzero(target == 1, as_tuple=True)
        return b, c, quad[b, c], f[b, c].float()

    def prototype_accumulator(self, max_per_quadrant: Optional[int] = 100,
                              mean: str = 'reference'
                              ) -> QuadrantPrototypeAccumulator:
        """An empty (C, 4, D) :class:`QuadrantPrototypeAccumulator` for this
        layer (rows from :meth:`prototype_rows`, result for
        :meth:`set_prototypes`); ``max_per_quadrant`` images per (c, q) (None:
        all), ``mean`` ``'reference'`` (sum / (n + 1)) or ``'exact'``."""
        return QuadrantPrototypeAccumulator(
            self.num_classes, self.in_channels, max_per_quadrant, mean=mean)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp beta into [0, 1] in place (after an optimizer step)."""
        self.beta.clamp_(0.0, 1.0)

    @property
    def has_prototypes(self) -> bool:
        """Whether prototypes were computed (``prototype_epoch >= 0``)."""
        return int(self.prototype_epoch) >= 0

    @torch.no_grad()
    def set_prototypes(self, prototypes: torch.Tensor, valid: torch.Tensor,
                       epoch: int) -> None:
        """Store pooled prototypes (C, 4, D), their validity (C,) and epoch."""
        if tuple(prototypes.shape) != tuple(self.prototypes.shape):
            raise ValueError(f'PPRB: prototypes must be {tuple(self.prototypes.shape)}, '
                             f'got {tuple(prototypes.shape)}')
        if tuple(valid.shape) != (self.num_classes,):
            raise ValueError(f'PPRB: valid must be ({self.num_classes},), got '
                             f'{tuple(valid.shape)}')
        if not torch.isfinite(prototypes).all():
            raise ValueError('PPRB: prototypes contain NaN/inf')
        self.prototypes.copy_(prototypes.to(self.prototypes))
        self.prototype_valid.copy_(valid.to(torch.bool))
        self.prototype_epoch.fill_(int(epoch))

    def sample_choices(self, target: torch.Tensor,
                       generator: Optional[torch.Generator] = None
                       ) -> Dict[str, torch.Tensor]:
        """Draw the blended classes and quadrant shifts of a batch.

        Args:
            target: (B, C) partial labels.
            generator: optional CPU generator.

        Returns:
            dict(cls (B, K) long, shift (B, K) long in {1, 2, 3}, sel (B, K)
            bool: whether the k-th draw of image b exists, i.e. the image had
            at least k+1 eligible classes, or ``fill_known`` filled it with
            a known entry; ``filled`` (B, K) bool: the draws that are such
            fills).

        Scores (float64, so the order of the float32 draws is kept exactly):
        an eligible entry ``2 + u`` (u the uniform draw), a known entry with
        a prototype ``1 - c / C`` when ``fill_known`` (larger for a lower
        index c, always below any eligible one), everything else -1; the K
        largest are drawn. The random stream (one ``rand(B, C)`` and one
        ``randint(1, 4, (B, K))``) is the same for both settings.
        """
        B, C = target.shape
        valid = self.prototype_valid.view(1, C).to(target.device)
        eligible = (target == 0) & valid
        rnd = torch.rand(B, C, generator=generator).to(target.device)
        never = torch.full((B, C), -1.0, dtype=torch.float64,
                           device=target.device)
        score = torch.where(eligible, 2.0 + rnd.double(), never)
        if self.fill_known:
            rank = 1.0 - torch.arange(C, dtype=torch.float64,
                                      device=target.device) / C
            score = torch.where(valid & ~eligible, rank.view(1, C), score)
        top, cls = score.topk(self.top_k, dim=1)
        shift = torch.randint(1, NUM_QUADRANTS, (B, self.top_k),
                              generator=generator).to(target.device)
        return dict(cls=cls, shift=shift, sel=top >= 0,
                    filled=(top >= 0) & (top < 2.0))

    def forward(self, f: torch.Tensor, energy: torch.Tensor,
                target: torch.Tensor, hw: Sequence[int],
                generator: Optional[torch.Generator] = None,
                choices: Optional[Dict[str, torch.Tensor]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                           Dict[str, torch.Tensor]]:
        """Blend K unknown classes per image with a prototype of another quadrant.

        Args:
            f: (B, C, D) pooled class features.
            energy: (B, N, C) energy map (no gradient is taken through it).
            target: (B, C) partial labels in {+1, -1, 0}.
            hw: (H, W) of the map, H W = N.
            generator: optional CPU generator for the draws.
            choices: draws from :meth:`sample_choices` to reuse (tests).

        Returns:
            ``(f_blend (B, C, D), target_blend (B, C), mask (B, C) bool,
            choices)`` with ``choices`` also holding ``quadrant`` (B, C) and
            ``new_quadrant`` (B, K).

        Raises:
            RuntimeError: when no prototypes were computed yet.
        """
        if f.dim() != 3 or target.shape != f.shape[:2] or \
                f.shape[1:] != self.prototypes.shape[::2]:
            raise ValueError(
                f'PPRB: f must be (B, {self.num_classes}, {self.in_channels}) and '
                f'target (B, C), got {tuple(f.shape)} and {tuple(target.shape)}')
        if not self.has_prototypes:
            raise RuntimeError(
                'PPRB: no prototypes yet (prototype_epoch = -1). They are '
                "computed by custom_hooks=[dict(type='PPRBPrototypeHook')] at "
                'the start of the blending phase; add the hook or make the '
                'blending start at or after its first epoch.')
        check_unit_interval('beta', self.beta, 'PPRB')
        B = f.shape[0]
        quad = self.quadrants(energy, hw).to(f.device)
        if choices is None:
            choices = self.sample_choices(target, generator)
        cls, shift, sel = choices['cls'], choices['shift'], choices['sel']
        bidx = torch.arange(B, device=f.device).view(B, 1).expand_as(cls)
        new_q = (quad.gather(1, cls) - shift) % NUM_QUADRANTS  # (B, K)
        bi, ci, qi = bidx[sel], cls[sel], new_q[sel]
        beta = self.beta.to(f.dtype)
        proto = self.prototypes[ci, qi].to(f.dtype)  # (M, D)
        f_blend = f.index_put((bi, ci), beta * f[bi, ci] + (1.0 - beta) * proto)
        soft = (1.0 - self.beta).to(target.dtype).expand(bi.shape[0])
        target_blend = target.index_put((bi, ci), soft)
        mask = torch.zeros_like(target, dtype=torch.bool)
        mask[bi, ci] = True
        out = dict(choices)
        out.update(quadrant=quad, new_quadrant=new_q)
        return f_blend, target_blend, mask, out

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, in_channels={self.in_channels}, '
                f'top_k={self.top_k}, beta={float(self.beta.detach()):.4f}, '
                f'quadrant_split={self.quadrant_split!r}, '
                f'fill_known={self.fill_known}')
