"""GMC: graph-based multi-label correlation (two GATv2 layers over labels)."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from mlrpl_mm.utils.registry import register_alias


class GATv2Layer(nn.Module):
    r"""One GATv2 layer with a weight shared by source and target nodes.

    For node features :math:`x \in \mathbb{R}^{N \times D_{in}}`,
    :math:`g = x W` reshaped to (N, H, F) (no bias), and for every head h

    .. math::
        e^h_{ij} = a^\top \mathrm{LeakyReLU}_{0.2}(g^h_i + g^h_j), \quad
        \alpha^h_{ij} = \mathrm{softmax}_{j : A_{ij} > 0}(e^h_{ij}), \quad
        y^h_i = \sum_j \mathrm{dropout}(\alpha^h_{ij})\, g^h_j .

    The attention vector :math:`a \in \mathbb{R}^F` is shared by the heads
    as in the reference (labml_nn's ``GraphAttentionV2Layer``, used by
    SigRL: ``attn = nn.Linear(F, 1, bias=False)`` applied to every head);
    ``share_attention=False`` gives each head its own :math:`a_h` (the
    GATv2 paper / PyG form). W and a use ``nn.Linear``'s default init, as
    the reference.

    The heads are concatenated (N, H*F) or averaged (N, F). The attention
    logits are (N, N, H, F) before the reduction by :math:`a`; they are
    computed for blocks of ``node_chunk`` target nodes (and recomputed in the
    backward pass when ``use_checkpoint``), so memory is bounded by
    ``node_chunk * N * H * F`` for 1,000 labels.

    Args:
        in_features (int): D_in.
        out_features (int): F, features per head.
        num_heads (int): H. Defaults to 1.
        concat (bool): Concatenate (True) or average heads. Defaults to True.
        negative_slope (float): LeakyReLU slope. Defaults to 0.2.
        attn_drop (float): Dropout on the attention weights. Defaults to 0.
        node_chunk (int): Target nodes per block. Defaults to 128.
        use_checkpoint (bool): Recompute blocks in backward. Defaults to True.
        share_attention (bool): One attention vector for all heads (the
            reference). Defaults to True.
    """

    def __init__(self, in_features: int, out_features: int, num_heads: int = 1,
                 concat: bool = True, negative_slope: float = 0.2,
                 attn_drop: float = 0.0, node_chunk: int = 128,
                 use_checkpoint: bool = True,
                 share_attention: bool = True) -> None:
        super().__init__()
        if node_chunk <= 0:
            raise ValueError(f'node_chunk must be positive, got {node_chunk}')
        self.num_heads = num_heads
        self.out_features = out_features
        self.concat = concat
        self.negative_slope = negative_slope
        self.node_chunk = node_chunk
        self.use_checkpoint = use_checkpoint
        self.linear = nn.Linear(in_features, num_heads * out_features,
                                bias=False)
        self.share_attention = share_attention
        # (1, F) shared by the heads (broadcast) or (H, F)
        self.attn = nn.Parameter(torch.empty(
            1 if share_attention else num_heads, out_features))
        self.attn_drop = nn.Dropout(attn_drop)
        # nn.Linear(F, 1)'s default init (kaiming_uniform, a=sqrt(5))
        bound = 1 / math.sqrt(out_features)
        nn.init.uniform_(self.attn, -bound, bound)

    def _block(self, g_i: torch.Tensor, g: torch.Tensor,
               mask: Optional[torch.Tensor]) -> torch.Tensor:
        # g_i: (n, H, F) targets; g: (N, H, F) sources -> (n, H, F)
        s = F.leaky_relu(g_i[:, None] + g[None], self.negative_slope)
        e = (s * self.attn).sum(-1)  # (n, N, H)
        if mask is not None:
            e = e.masked_fill(~mask[..., None], float('-inf'))
        alpha = self.attn_drop(torch.softmax(e, dim=1))
        return torch.einsum('inh,nhf->ihf', alpha, g)

    def forward(self, x: torch.Tensor,
                adj: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args: x (N, D_in); adj (N, N) or None (complete graph). Self-loops
        are always added. Returns (N, H*F) if concat else (N, F)."""
        n = x.shape[0]
        g = self.linear(x).view(n, self.num_heads, self.out_features)
        mask = None
        if adj is not None:
            if adj.shape != (n, n):
                raise ValueError(f'adjacency must be ({n}, {n}), got '
                                 f'{tuple(adj.shape)}')
            mask = (adj > 0) | torch.eye(n, dtype=torch.bool, device=x.device)
        outs = []
        for s in range(0, n, self.node_chunk):
            m = None if mask is None else mask[s:s + self.node_chunk]
            gi = g[s:s + self.node_chunk]
            if self.use_checkpoint and torch.is_grad_enabled() and \
                    n > self.node_chunk:
                outs.append(checkpoint(self._block, gi, g, m,
                                       use_reentrant=False))
            else:
                outs.append(self._block(gi, g, m))
        out = torch.cat(outs, 0)
        if self.concat:
            return out.reshape(n, -1)
        return out.mean(1)


@MODELS.register_module(name='SigRLGMC')
class GMC(nn.Module):
    r"""Graph-based multi-label correlation of SigRL (two GATv2 layers).

    `Semantic-guided Representation Learning for Multi-Label Recognition
    <https://arxiv.org/abs/2504.03801>`_ (ICME 2025).

    .. math::
        \hat H = \mathrm{GAT}_2\big(\mathrm{drop}(\mathrm{ELU}(
            \mathrm{GAT}_1(\mathrm{drop}(E), A))), A\big)

    with :math:`\mathrm{GAT}_1`: D -> ``num_heads`` x ``hidden // num_heads``
    (concatenated), :math:`\mathrm{GAT}_2`: hidden -> D, one head. The graph
    is complete with self-loops by default (the reference); an optional
    (C, C) adjacency (e.g. the label co-occurrence graph) restricts the
    neighbourhoods. Each layer shares one attention vector across its heads
    (the reference; ``share_attention=False``: one per head). At D = 512 it
    has 131,616 parameters (131,712 with per-head attention vectors).

    Args:
        in_channels (int): D (label embedding size). Defaults to 512.
        hidden_channels (int): Width after layer 1. Defaults to 128.
        out_channels (int, optional): Output size; defaults to in_channels.
        num_heads (int): Heads of layer 1. Defaults to 4.
        dropout (float): Dropout on inputs, hidden features and attention.
            Defaults to 0.3.
        node_chunk (int): Target nodes per attention block. Defaults to 128.
        use_checkpoint (bool): Recompute attention blocks in backward.
            Defaults to True.
        share_attention (bool): One attention vector per layer shared by
            its heads (the reference). Defaults to True.
    """

    def __init__(self, in_channels: int = 512, hidden_channels: int = 128,
                 out_channels: Optional[int] = None, num_heads: int = 4,
                 dropout: float = 0.3, node_chunk: int = 128,
                 use_checkpoint: bool = True,
                 share_attention: bool = True) -> None:
        super().__init__()
        if hidden_channels % num_heads:
            raise ValueError(f'hidden_channels ({hidden_channels}) must be '
                             f'divisible by num_heads ({num_heads})')
        out_channels = out_channels or in_channels
        self.dropout = nn.Dropout(dropout)
        self.layer1 = GATv2Layer(in_channels, hidden_channels // num_heads,
                                 num_heads, concat=True, attn_drop=dropout,
                                 node_chunk=node_chunk,
                                 use_checkpoint=use_checkpoint,
                                 share_attention=share_attention)
        self.layer2 = GATv2Layer(hidden_channels, out_channels, 1,
                                 concat=False, attn_drop=dropout,
                                 node_chunk=node_chunk,
                                 use_checkpoint=use_checkpoint,
                                 share_attention=share_attention)

    def forward(self, x: torch.Tensor,
                adj: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args: x (C, D) label embeddings; adj (C, C) or None.
        Returns (C, out_channels)."""
        x = self.dropout(x)
        x = F.elu(self.layer1(x, adj))
        x = self.dropout(x)
        return self.layer2(x, adj)


# registered as 'SigRLGMC'; the old generic name stays loadable
register_alias(MODELS, 'GMC', GMC)
