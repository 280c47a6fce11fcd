"""IST: intra-image semantic transfer (image-specific class co-occurrence)."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .element_wise_linear import ElementWiseLinear


def _pair_chunk(u: torch.Tensor, w: torch.Tensor, pi: torch.Tensor,
                pj: torch.Tensor, v: torch.Tensor, w3: torch.Tensor,
                const: torch.Tensor) -> torch.Tensor:
    """q for one chunk of pairs: <relu(u_i + w_j), v_ij W3> + const_ij.

    Plain autograd (keeps the (B, Pc, O) activation); used when
    ``recompute=False``.
    u, w: (B, C, O); pi, pj: (Pc,); v: (Pc, O); w3: (O, O); const: (Pc,).
    Returns (B, Pc).
    """
    h = torch.relu(u[:, pi] + w[:, pj])  # (B, Pc, O)
    return torch.einsum('bpo,po->bp', h, v @ w3) + const


class _PairScores(torch.autograd.Function):
    r""":math:`s_{pb} = \langle \mathrm{relu}(u_{i_p b} + w_{j_p b}),
    W_3^\top v_p\rangle` for all pairs, chunk by chunk.

    Inputs: class-major ut, wt (C, B, O), the per-pair weights v (P, O),
    W_3 (O, O), the pair indices pi, pj (P,) and the chunk size; output
    (P, B). Neither a chunk's (Pc, B, O) activation nor the (P, O) matrix
    :math:`V = v W_3` is kept: the backward pass recomputes them chunk by
    chunk and accumulates the gradients of ut / wt (``index_add_``) and
    W_3 in single buffers, so the memory of the pair branch is a few chunk
    activations plus its inputs and parameter gradients, whatever the
    number of chunks. Products are batched over pairs (bmm). Computed in
    ut's dtype with autocast off. Not twice differentiable.
    """

    @staticmethod
    def _activation(ut, wt, pi, pj):
        h = ut[pi]
        h += wt[pj].to(h.dtype)
        return h.relu_()

    @staticmethod
    def forward(ctx, ut, wt, v, w3, pi, pj, step):
        # the output is allocated once: small per-chunk results kept alive
        # between the chunks' large temporaries fragment the heap (the
        # process grows by about one activation per chunk)
        out = ut.new_empty(pi.numel(), ut.shape[1])
        with torch.autocast(ut.device.type, enabled=False):
            for s in range(0, pi.numel(), step):
                sl = slice(s, s + step)
                V = (v[sl] @ w3).to(ut.dtype)  # (Pc, O)
                h = _PairScores._activation(ut, wt, pi[sl], pj[sl])
                out[sl] = torch.bmm(h, V.unsqueeze(2)).squeeze(2)  # (Pc, B)
                del h, V
        ctx.save_for_backward(ut, wt, v, w3, pi, pj)
        ctx.step = step
        return out

    @staticmethod
    def backward(ctx, g):
        ut, wt, v, w3, pi, pj = ctx.saved_tensors
        step = ctx.step
        need_u, need_w, need_v, need_w3 = ctx.needs_input_grad[:4]
        with torch.autocast(ut.device.type, enabled=False):
            g = g.to(ut.dtype).contiguous()  # e.g. expanded by a sum()
            gu = torch.zeros_like(ut) if need_u else None
            gw = torch.zeros_like(wt) if need_w else None
            gv = torch.empty_like(v) if need_v else None
            gw3 = torch.zeros_like(w3) if need_w3 else None
            for s in range(0, pi.numel(), step):
                sl = slice(s, s + step)
                gc = g[sl]  # (Pc, B)
                h = _PairScores._activation(ut, wt, pi[sl], pj[sl])
                if need_v or need_w3:
                    gV = torch.bmm(h.transpose(1, 2), gc.unsqueeze(2)).squeeze(2)
                    gV = gV.to(v.dtype)  # (Pc, O)
                    if need_v:
                        gv[sl] = gV @ w3.t()
                    if need_w3:
                        gw3 += v[sl].t() @ gV
                if need_u or need_w:
                    V = (v[sl] @ w3).to(ut.dtype)
                    gh = torch.bmm(gc.unsqueeze(2), V.unsqueeze(1))  # (Pc, B, O)
                    gh = torch.ops.aten.threshold_backward(gh, h, 0)  # relu'
                    del h
                    if need_u:
                        gu.index_add_(0, pi[sl], gh)
                    if need_w:
                        gw.index_add_(0, pj[sl], gh.to(wt.dtype))
                    del gh
        return gu, gw, gv, gw3, None, None, None


@MODELS.register_module()
class IntraSemanticTransfer(BaseModule):
    r"""Pair co-occurrence branch and intra-image pseudo labels of HST.

    Pair logits, for every unordered class pair i < j (P = C(C-1)/2):

    .. math::
        g_c = W_{i1} f_c,\quad
        p_{ij} = W_{i3}\,\mathrm{relu}(W_{i2} [g_i ; g_j] + c_2) + c_3,\quad
        q_{ij} = \langle v_{ij}, p_{ij}\rangle + d_{ij}.

    Computed in an exact factorised form: with :math:`W_{i2} = [W_a\ W_b]`,
    :math:`u_i = W_a g_i` and :math:`w_j = W_b g_j + c_2` are computed once
    per class, and :math:`q_{ij} = \langle \mathrm{relu}(u_i + w_j),
    W_{i3}^\top v_{ij}\rangle + \langle v_{ij}, c_3\rangle + d_{ij}`, so the
    O x O layer is applied to the P per-pair weight vectors (independent of
    the batch) instead of to the B x P activations. All pairs are vectorised
    (no Python loop over classes); pairs are processed in chunks whose
    (B, P_chunk, O) activation fits ``max_chunk_mb``, recomputed in the
    backward pass by a fused autograd function (:class:`_PairScores`:
    gather-add, relu and the per-pair dot product as one batched product),
    so peak memory is bounded for any number of pairs (VG-200: 19,900).

    Pseudo labels (from epoch 5): :math:`P_{ii} = 1`,
    :math:`P_{ij} = P_{ji} = \sigma(q_{ij})`,
    :math:`\mathrm{score}_c = \sum_{j: y_j = +1} P_{cj} / \max(1, n_+)`,
    :math:`\mathrm{ist}_c = \mathrm{clamp}(\mathrm{score}_c - m, 0, 1)` with
    the learnable margin m (init 1.0).

    Args:
        num_classes (int): C.
        in_channels (int): D of the class features. Defaults to 1024.
        inter_channels (int): I. Defaults to 512.
        out_channels (int): O. Defaults to 1024.
        pair_chunk_size (int, optional): Pairs per chunk; None derives it
            from ``max_chunk_mb``.
        max_chunk_mb (float): Memory budget (MB) of one chunk's float32
            activations (about 3 tensors of (B, P_chunk, O)). Defaults to 256.
        recompute (bool): Recompute each chunk's activation in the backward
            pass (fused function). False keeps every activation (plain
            autograd; more memory, for checking). Defaults to True.
        margin_init (float): Initial margin. Defaults to 1.0.
    """

    def __init__(self, num_classes: int, in_channels: int = 1024,
                 inter_channels: int = 512, out_channels: int = 1024,
                 pair_chunk_size: Optional[int] = None,
                 max_chunk_mb: float = 256.0, recompute: bool = True,
                 margin_init: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes < 2:
            raise ValueError(f'IST needs at least 2 classes, got {num_classes}')
        if pair_chunk_size is not None and pair_chunk_size <= 0:
            raise ValueError(f'pair_chunk_size must be positive, got {pair_chunk_size}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.out_channels = out_channels
        self.pair_chunk_size = pair_chunk_size
        self.max_chunk_mb = float(max_chunk_mb)
        self.recompute = recompute
        self.fc_g = nn.Linear(in_channels, inter_channels)  # W_i1
        self.fc_pair1 = nn.Linear(2 * inter_channels, out_channels)  # W_i2
        self.fc_pair2 = nn.Linear(out_channels, out_channels)  # W_i3
        pi, pj = torch.triu_indices(num_classes, num_classes, offset=1)
        self.num_pairs = pi.numel()
        self.pair_classifier = ElementWiseLinear(self.num_pairs, out_channels)
        self.register_buffer('pair_i', pi, persistent=False)
        self.register_buffer('pair_j', pj, persistent=False)
        self.margin = nn.Parameter(torch.tensor(float(margin_init)))

    def chunk_pairs(self, batch: int) -> int:
        """Pairs per chunk for a batch size."""
        if self.pair_chunk_size is not None:
            return min(self.pair_chunk_size, self.num_pairs)
        per_pair = 3 * 4 * batch * self.out_channels
        n = int(self.max_chunk_mb * 2**20 // max(1, per_pair))
        return max(1, min(self.num_pairs, n))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Pair logits Q (B, P) from class features f (B, C, D)."""
        if f.dim() != 3 or f.shape[1:] != (self.num_classes, self.in_channels):
            raise ValueError(
                f'IntraSemanticTransfer expects f (B, {self.num_classes}, '
                f'{self.in_channels}), got {tuple(f.shape)}')
        I = self.inter_channels
        g = self.fc_g(f)  # (B, C, I)
        w2 = self.fc_pair1.weight
        u = g @ w2[:, :I].t()  # (B, C, O)
        w = g @ w2[:, I:].t() + self.fc_pair1.bias
        v = self.pair_classifier.weight  # (P, O)
        const = v @ self.fc_pair2.bias + self.pair_classifier.bias  # (P,)
        w3 = self.fc_pair2.weight
        step = self.chunk_pairs(f.shape[0])
        outs = []
        if not self.recompute:
            for s in range(0, self.num_pairs, step):
                outs.append(_pair_chunk(
                    u, w, self.pair_i[s:s + step], self.pair_j[s:s + step],
                    v[s:s + step], w3, const[s:s + step]))
            return torch.cat(outs, dim=1)
        ut = u.transpose(0, 1).contiguous()  # (C, B, O)
        wt = w.transpose(0, 1).contiguous()
        scores = _PairScores.apply(ut, wt, v, w3, self.pair_i, self.pair_j, step)
        return scores.t() + const

    def pair_matrix(self, q: torch.Tensor) -> torch.Tensor:
        """Symmetric (B, C, C) matrix: 1 on the diagonal, sigmoid(q_ij) off it."""
        B, C = q.shape[0], self.num_classes
        prob = torch.sigmoid(q.float())
        mat = prob.new_zeros(B, C, C)
        mat[:, self.pair_i, self.pair_j] = prob
        mat[:, self.pair_j, self.pair_i] = prob
        return mat + torch.eye(C, dtype=mat.dtype, device=mat.device)

    def scores(self, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """score_c = sum_{j: y_j=+1} P_cj / max(1, #known positives), (B, C)."""
        pos = (target == 1).to(torch.float32)
        mat = self.pair_matrix(q)
        return torch.einsum('bcj,bj->bc', mat, pos) / \
            pos.sum(1, keepdim=True).clamp(min=1)

    def pseudo_scores(self, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """ist = clamp(score - margin, 0, 1), (B, C)."""
        return torch.clamp(self.scores(q, target) - self.margin, 0, 1)
