"""SVFR: semantic visual feature reconstruction (SDA, Q/T correlation, VFR)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from mlrpl_mm.utils.registry import register_alias


def _attend_chunk(tokens: torch.Tensor, queries: torch.Tensor,
                  weight: torch.Tensor, bias: torch.Tensor,
                  reduce: str) -> torch.Tensor:
    """Channel-wise attention over patches for one block of classes.

    tokens (B, L, D), queries (B or 1, c, D). Builds the (B, L, c, D) block
    a = softmax_l(W tanh(P * q) + b) and returns either
    ``sum_l a * P`` (B, c, D) (``reduce='pool'``) or ``sum_c a`` (B, L, D)
    (``reduce='mass'``).
    """
    x = torch.tanh(tokens[:, :, None, :] * queries[:, None, :, :])
    a = torch.softmax(F.linear(x, weight, bias), dim=1)
    if reduce == 'pool':
        return torch.einsum('blcd,bld->bcd', a, tokens)
    return a.sum(2)


def chunked_attention(tokens: torch.Tensor, queries: torch.Tensor,
                      linear: nn.Linear, reduce: str, class_chunk: int,
                      use_checkpoint: bool = True) -> torch.Tensor:
    r"""Class-chunked channel-wise patch attention (exact).

    .. math:: a_{b,l,c} = \mathrm{softmax}_l\big(W \tanh(P_{bl} \odot q_{bc})
        + b\big) \in \mathbb{R}^D

    The softmax runs over patches l separately for each (b, c, channel), so
    blocks of classes are independent: the (B, L, C, D) tensor is never
    built; only (B, L, ``class_chunk``, D) per block, and with
    ``use_checkpoint`` the block is recomputed in backward instead of kept,
    so the training memory is bounded by the chunk size too.

    Args:
        tokens: P, (B, L, D).
        queries: q, (C, D) or (B, C, D).
        linear: The D -> D layer (W, b).
        reduce: ``'pool'``: returns :math:`M_{bc} = \sum_l a_{b,l,c} P_{bl}`
            (B, C, D); ``'mass'``: returns :math:`\sum_c a_{b,l,c}` (B, L, D).
        class_chunk: Classes per block.
        use_checkpoint: Recompute blocks in backward (when grad is enabled).
    """
    if reduce not in ('pool', 'mass'):
        raise ValueError(f"reduce must be 'pool' or 'mass', got {reduce!r}")
    if class_chunk <= 0:
        raise ValueError(f'class_chunk must be positive, got {class_chunk}')
    if queries.dim() == 2:
        queries = queries[None]
    if queries.shape[-1] != tokens.shape[-1]:
        raise ValueError(f'channel mismatch: tokens {tuple(tokens.shape)} vs '
                         f'queries {tuple(queries.shape)}')
    num_classes = queries.shape[1]
    ckpt = use_checkpoint and torch.is_grad_enabled() and \
        num_classes > class_chunk
    out = None
    pooled = []
    for s in range(0, num_classes, class_chunk):
        q = queries[:, s:s + class_chunk]
        args = (tokens, q, linear.weight, linear.bias, reduce)
        r = checkpoint(_attend_chunk, *args, use_reentrant=False) if ckpt \
            else _attend_chunk(*args)
        if reduce == 'pool':
            pooled.append(r)
        else:
            out = r if out is None else out + r
    return torch.cat(pooled, 1) if reduce == 'pool' else out


@MODELS.register_module(name='SigRLSVFR')
class SVFR(nn.Module):
    r"""Semantic visual feature reconstruction of SigRL.

    `Semantic-guided Representation Learning for Multi-Label Recognition
    <https://arxiv.org/abs/2504.03801>`_ (ICME 2025).

    With patch tokens P (B, L, D), label embeddings E (C, D) and GMC output
    :math:`\hat H` (C, D):

    1. SDA: :math:`M_{bc} = \sum_l \mathrm{softmax}_l(W_s \tanh(P_{bl}\odot
       E_c) + b_s) \odot P_{bl}`, (B, C, D).
    2. :math:`Q_b = \mathrm{rownorm}_{L2}(\mathrm{ReLU}(\sum_c M_{bc}^\top
       E_c))` (B, D, D); :math:`T_b = M_b Q_b` (B, C, D). The reference also
       divides by batch-wide Frobenius norms before the ReLU; a positive
       scale does not change the row-normalised result, so it is omitted
       (it would couple the images of a batch).
    3. :math:`O_{bc} = W_f [T_{bc}; \hat H_c]` (2D -> D, no bias).
    4. VFR: :math:`\hat P_{bl} = P_{bl} \odot \sum_c \mathrm{softmax}_l(W_v
       \tanh(P_{bl}\odot O_{bc}) + b_v)`, (B, L, D).

    Steps 1 and 4 run over blocks of ``class_chunk`` classes (exact), so
    memory is bounded by the block size, not by C.

    Args:
        embed_dims (int): D. Defaults to 512.
        class_chunk (int): Classes per attention block. Defaults to 16.
        use_checkpoint (bool): Recompute attention blocks in backward
            (memory bounded in training too). Defaults to True.
    """

    def __init__(self, embed_dims: int = 512, class_chunk: int = 16,
                 use_checkpoint: bool = True) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.class_chunk = class_chunk
        self.use_checkpoint = use_checkpoint
        self.sda_fc = nn.Linear(embed_dims, embed_dims)
        self.fuse = nn.Linear(2 * embed_dims, embed_dims, bias=False)
        self.vfr_fc = nn.Linear(embed_dims, embed_dims)

    def semantic_features(self, tokens: torch.Tensor,
                          label_embed: torch.Tensor) -> torch.Tensor:
        """SDA: class-specific features M (B, C, D)."""
        return chunked_attention(tokens, label_embed, self.sda_fc, 'pool',
                                 self.class_chunk, self.use_checkpoint)

    def forward(self, tokens: torch.Tensor, label_embed: torch.Tensor,
                graph_embed: torch.Tensor) -> torch.Tensor:
        """Args:
            tokens: P (B, L, D).
            label_embed: E (C, D).
            graph_embed: :math:`\\hat H` (C, D) from :class:`GMC`.

        Returns:
            Reconstructed patches :math:`\\hat P` (B, L, D).
        """
        d = self.embed_dims
        if tokens.shape[-1] != d or label_embed.shape[-1] != d or \
                graph_embed.shape != label_embed.shape:
            raise ValueError(
                f'SVFR(embed_dims={d}): got tokens {tuple(tokens.shape)}, '
                f'label_embed {tuple(label_embed.shape)}, graph_embed '
                f'{tuple(graph_embed.shape)}')
        m = self.semantic_features(tokens, label_embed)          # (B, C, D)
        q = F.normalize(F.relu(torch.einsum('bcd,ce->bde', m, label_embed)),
                        dim=-1)                                  # (B, D, D)
        t = torch.bmm(m, q)                                      # (B, C, D)
        # W_f [T; H] = T W_1^T + H W_2^T, without building the concatenation
        o = F.linear(t, self.fuse.weight[:, :d]) + \
            F.linear(graph_embed, self.fuse.weight[:, d:])[None]
        mass = chunked_attention(tokens, o, self.vfr_fc, 'mass',
                                 self.class_chunk, self.use_checkpoint)
        return tokens * mass


# registered as 'SigRLSVFR'; the old generic name stays loadable
register_alias(MODELS, 'SVFR', SVFR)
