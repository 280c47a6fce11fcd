"""Gated graph neural network over the label graph."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from mlrpl_mm.utils.registry import register_alias

#: the per-gate layers of the equation, as (fused layer, row block).
#: ``w_m`` (2D -> 3D) stacks W_z, W_r, W; ``u_zr`` (D -> 2D) stacks U_z, U_r.
GATE_LAYERS = dict(w_z=('w_m', 0), w_r=('w_m', 1), w_h=('w_m', 2),
                   u_z=('u_zr', 0), u_r=('u_zr', 1))


@MODELS.register_module()
class SSGRLGatedGNN(BaseModule):
    r"""Gated GNN propagating class features over a label graph A (C, C).

    Registered as ``SSGRLGatedGNN`` (the old name ``GatedGNN`` stays an alias
    in the registry and in Python).

    With :math:`h^0 = F` and, for each of ``num_steps`` steps,

    .. math::
        m = [A h ; A^\top h],\quad
        z = \sigma(W_z m + U_z h),\quad r = \sigma(W_r m + U_r h), \\
        \tilde h = \tanh(W m + U (r \odot h)),\quad
        h \leftarrow (1 - z) \odot h + z \odot \tilde h ,

    where :math:`(A h)_i = \sum_j A_{ij} h_j` and
    :math:`(A^\top h)_i = \sum_j A_{ji} h_j`; every W (2D->D) and U (D->D) is a
    linear layer with bias. The same weights are used at every step.

    Computed exactly as written, with fewer and larger matrix products:

    - the message :math:`m` for both directions is one batched product of the
      row-interleaved (2C, C) matrix :math:`[A_{0\cdot}; A^\top_{0\cdot};
      A_{1\cdot}; \dots]` with h, whose (B, 2C, D) result *is* the (B, C, 2D)
      concatenation :math:`[A h ; A^\top h]` (a view, no copy);
    - :math:`W_z, W_r, W` are one linear layer ``w_m`` (2D -> 3D, rows in that
      order) applied to m; :math:`U_z, U_r` are one linear layer ``u_zr``
      (D -> 2D); :math:`U` is ``u_h``. The biases of ``u_zr`` and ``u_h`` are
      added to the bias of ``w_m`` (same sums as the equation);
    - the update is written :math:`h + z \odot (\tilde h - h)`.

    :meth:`gate` returns the (weight, bias) of one of the equation's layers
    (``'w_z'``, ``'w_r'``, ``'w_h'``, ``'u_z'``, ``'u_r'``, ``'u_h'``) as views
    of the fused parameters. Checkpoints written with one ``nn.Linear`` per
    gate (keys ``w_z.weight``, ..., ``u_r.bias``) load unchanged: the keys are
    fused on load.

    Args:
        in_channels (int): D.
        num_steps (int): Propagation steps. Defaults to 3.
        init_cfg (dict, optional): Initialisation config.

    Shapes:
        forward(h (B, C, D), adj (C, C)) -> (B, C, D), any batch size B.
    """

    def __init__(self, in_channels: int, num_steps: int = 3,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_steps < 0:
            raise ValueError(f'num_steps must be >= 0, got {num_steps}')
        D = in_channels
        self.in_channels = D
        self.num_steps = num_steps
        # same fan-in as the per-gate layers, so the same default init
        self.w_m = nn.Linear(2 * D, 3 * D)  # [W_z; W_r; W]
        self.u_zr = nn.Linear(D, 2 * D)  # [U_z; U_r]
        self.u_h = nn.Linear(D, D)  # U
        self._register_load_state_dict_pre_hook(self._fuse_per_gate_keys)

    def gate(self, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of one layer of the equation (views, with grad)."""
        if name == 'u_h':
            return self.u_h.weight, self.u_h.bias
        if name not in GATE_LAYERS:
            raise KeyError(f'GatedGNN.gate: unknown layer {name!r}; valid: '
                           f"{sorted(GATE_LAYERS) + ['u_h']}")
        layer, k = GATE_LAYERS[name]
        lin = getattr(self, layer)
        D = self.in_channels
        return lin.weight[k * D:(k + 1) * D], lin.bias[k * D:(k + 1) * D]

    def _fuse_per_gate_keys(self, state_dict: Dict, prefix: str, *args,
                            **kwargs) -> None:
        """Old layout (one ``nn.Linear`` per gate) -> fused keys."""
        for fused, parts in (('w_m', ('w_z', 'w_r', 'w_h')),
                             ('u_zr', ('u_z', 'u_r'))):
            for kind in ('weight', 'bias'):
                keys = [f'{prefix}{p}.{kind}' for p in parts]
                if all(k in state_dict for k in keys):
                    state_dict[f'{prefix}{fused}.{kind}'] = torch.cat(
                        [state_dict.pop(k) for k in keys], dim=0)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        """Propagate. h: (B, C, D); adj: (C, C). Returns (B, C, D)."""
        if h.dim() != 3 or h.shape[2] != self.in_channels:
            raise ValueError(f'GatedGNN expects h of shape (B, C, '
                             f'{self.in_channels}), got {tuple(h.shape)}')
        B, C, D = h.shape
        if adj.shape != (C, C):
            raise ValueError(f'GatedGNN: adjacency must be ({C}, {C}) for {C} '
                             f'classes, got {tuple(adj.shape)}')
        if self.num_steps == 0:
            return h
        # rows 2i, 2i+1 = A[i, :], A^T[i, :]
        a2 = torch.stack([adj, adj.t()], dim=1).reshape(2 * C, C).to(h.dtype)
        bias = self.w_m.bias + torch.cat([self.u_zr.bias, self.u_h.bias])
        for _ in range(self.num_steps):
            h = h.contiguous()
            m = torch.matmul(a2, h).view(B, C, 2 * D)  # [A h ; A^T h]
            gm = F.linear(m, self.w_m.weight, bias)  # (B, C, 3D)
            zr = torch.sigmoid(gm[..., :2 * D] +
                               F.linear(h, self.u_zr.weight))
            z, r = zr[..., :D], zr[..., D:]
            h_tilde = torch.tanh(gm[..., 2 * D:] +
                                 F.linear(r * h, self.u_h.weight))
            h = h + z * (h_tilde - h)
        return h


#: the old name (Python import and registry alias)
GatedGNN = SSGRLGatedGNN
register_alias(MODELS, 'GatedGNN', SSGRLGatedGNN)
