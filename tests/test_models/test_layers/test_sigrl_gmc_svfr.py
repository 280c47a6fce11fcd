"""SigRL's GMC and SVFR against direct implementations of the equations in
docs/equations/sigrl.md (GATv2 attention, SDA, Q/T, VFR)."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401


def naive_gatv2(x, lin_w, attn, heads, feat, adj, concat):
    """e^h_ij = a_h^T LeakyReLU_0.2(W x_i + W x_j) (a_h = a for every head
    when ``attn`` has one row), softmax over the neighbours j."""
    n = x.shape[0]
    g = (x @ lin_w.t()).view(n, heads, feat)
    e = torch.empty(n, n, heads, dtype=x.dtype)
    for i in range(n):
        for j in range(n):
            for h in range(heads):
                a = attn[0] if attn.shape[0] == 1 else attn[h]
                e[i, j, h] = (F.leaky_relu(g[i, h] + g[j, h], 0.2) * a).sum()
    mask = torch.ones(n, n, dtype=torch.bool) if adj is None else \
        (adj > 0) | torch.eye(n, dtype=torch.bool)
    e = e.masked_fill(~mask[..., None], float('-inf'))
    alpha = torch.softmax(e, dim=1)
    out = torch.einsum('ijh,jhf->ihf', alpha, g)
    return out.reshape(n, -1) if concat else out.mean(1)


def naive_gmc(gmc, x, adj=None):
    l1, l2 = gmc.layer1, gmc.layer2
    h = F.elu(naive_gatv2(x, l1.linear.weight, l1.attn, l1.num_heads,
                          l1.out_features, adj, True))
    return naive_gatv2(h, l2.linear.weight, l2.attn, 1, l2.out_features, adj,
                       False)


def naive_svfr(m, P, E, H):
    """The (B, L, C, D) form of docs/equations/sigrl.md, with the explicit
    concatenation."""
    B, L, D = P.shape
    C = E.shape[0]
    P4 = P[:, :, None, :].expand(B, L, C, D)
    u = m.sda_fc(torch.tanh(P4 * E[None, None]))
    M = (torch.softmax(u, dim=1) * P4).sum(1)                      # (B, C, D)
    Q = F.normalize(F.relu(M.transpose(1, 2) @ E), dim=-1)        # (B, D, D)
    T = M @ Q
    O = m.fuse(torch.cat([T, H[None].expand(B, C, D)], -1))
    v = m.vfr_fc(torch.tanh(P4 * O[:, None]))
    return P * torch.softmax(v, dim=1).sum(2)


@pytest.mark.parametrize('share', [True, False])
def test_gmc_matches_naive_gatv2_forward_and_grad(share):
    torch.manual_seed(0)
    gmc = MODELS.build(dict(type='SigRLGMC', in_channels=8, hidden_channels=8,
                            num_heads=2, dropout=0.0, node_chunk=2,
                            share_attention=share)).double()
    # one attention vector shared by the heads (the reference) or one each
    assert gmc.layer1.attn.shape == ((1, 4) if share else (2, 4))
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    adj = (torch.rand(5, 5) > 0.5).double()
    for a in (None, adj):
        out = gmc(x, a)
        ref = naive_gmc(gmc, x, a)
        assert out.shape == (5, 8)
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-7)
        w = torch.randn_like(out)
        g1 = torch.autograd.grad((out * w).sum(), [x, gmc.layer1.attn,
                                                   gmc.layer2.linear.weight])
        g2 = torch.autograd.grad((ref * w).sum(), [x, gmc.layer1.attn,
                                                   gmc.layer2.linear.weight])
        for a1, a2 in zip(g1, g2):
            torch.testing.assert_close(a1, a2, atol=1e-10, rtol=1e-7)


def test_gmc_reference_size_and_errors():
    gmc = MODELS.build(dict(type='SigRLGMC'))
    # labml_nn GATv2 of the reference: 512*128 + 32 + 128*512 + 512
    assert sum(p.numel() for p in gmc.parameters()) == 131616
    assert sum(p.numel() for p in MODELS.build(dict(
        type='SigRLGMC', share_attention=False)).parameters()) == 131712
    # D -> 4 heads x 32 (concat) -> D, shared W without bias, dropout 0.3
    # on the input, the hidden features and both layers' attention
    assert (gmc.layer1.num_heads, gmc.layer1.out_features) == (4, 32)
    assert gmc.layer1.concat and not gmc.layer2.concat
    assert (gmc.layer2.num_heads, gmc.layer2.out_features) == (1, 512)
    for layer in (gmc.layer1, gmc.layer2):
        assert layer.linear.bias is None and layer.negative_slope == 0.2
        assert layer.attn_drop.p == 0.3
    assert gmc.dropout.p == 0.3
    # dropout is active in training (input, hidden, attention) and off in
    # eval
    x = torch.randn(6, 512)
    gmc.train()
    torch.manual_seed(0)
    a = gmc(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, gmc(x))
    gmc.eval()
    torch.testing.assert_close(gmc(x), gmc(x))
    assert gmc(torch.randn(7, 512)).shape == (7, 512)
    with pytest.raises(ValueError, match='adjacency'):
        gmc(torch.randn(3, 512), torch.ones(4, 4))
    with pytest.raises(ValueError, match='divisible'):
        MODELS.build(dict(type='SigRLGMC', hidden_channels=10, num_heads=4))


@pytest.mark.parametrize('chunk,ckpt', [(1, True), (2, False), (16, True)])
def test_svfr_matches_naive_forward_and_grad(chunk, ckpt):
    torch.manual_seed(0)
    m = MODELS.build(dict(type='SigRLSVFR', embed_dims=6, class_chunk=chunk,
                          use_checkpoint=ckpt)).double()
    P = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    E = F.normalize(torch.randn(3, 6, dtype=torch.float64), dim=-1)
    E.requires_grad_(True)
    H = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    out = m(P, E, H)
    ref = naive_svfr(m, P, E, H)
    assert out.shape == (2, 5, 6)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-7)
    w = torch.randn_like(out)
    params = [P, E, H, m.sda_fc.weight, m.fuse.weight, m.vfr_fc.bias]
    g1 = torch.autograd.grad((out * w).sum(), params)
    g2 = torch.autograd.grad((ref * w).sum(), params)
    for a1, a2 in zip(g1, g2):
        torch.testing.assert_close(a1, a2, atol=1e-10, rtol=1e-7)


def test_sda_is_a_channel_wise_softmax_over_patches():
    """M_bc = sum_l softmax_l(W_s tanh(P_bl * E_c) + b_s) * P_bl, written
    with explicit loops over (b, c)."""
    torch.manual_seed(0)
    m = MODELS.build(dict(type='SigRLSVFR', embed_dims=4, class_chunk=2)).double()
    P = torch.randn(2, 3, 4, dtype=torch.float64)
    E = torch.randn(5, 4, dtype=torch.float64)
    M = m.semantic_features(P, E)
    W, bias = m.sda_fc.weight, m.sda_fc.bias
    for b in range(2):
        for c in range(5):
            u = torch.tanh(P[b] * E[c]) @ W.t() + bias           # (L, D)
            a = torch.exp(u) / torch.exp(u).sum(0, keepdim=True)  # over l
            torch.testing.assert_close(M[b, c], (a * P[b]).sum(0))


def test_svfr_float32_chunked_equals_unchunked():
    torch.manual_seed(1)
    m = MODELS.build(dict(type='SigRLSVFR', embed_dims=16, class_chunk=3))
    P = torch.randn(3, 7, 16, requires_grad=True)
    E = F.normalize(torch.randn(10, 16), dim=-1)
    H = torch.randn(10, 16)
    out = m(P, E, H)
    g = torch.autograd.grad(out.square().sum(), P)[0]
    m.class_chunk = 100
    out2 = m(P, E, H)
    g2 = torch.autograd.grad(out2.square().sum(), P)[0]
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g, g2, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='SVFR'):
        m(P, E, torch.randn(9, 16))


def test_old_registry_names_build_the_same_classes():
    """``GMC`` / ``SVFR`` (older configs) are aliases of ``SigRLGMC`` /
    ``SigRLSVFR``: the same class, the same state-dict keys."""
    from mlrpl_mm.models.layers import GMC, SVFR
    for old, new, cls in (('GMC', 'SigRLGMC', GMC),
                          ('SVFR', 'SigRLSVFR', SVFR)):
        assert MODELS.get(old) is MODELS.get(new) is cls
        torch.manual_seed(0)
        a = MODELS.build(dict(type=old))
        torch.manual_seed(0)
        b = MODELS.build(dict(type=new))
        assert type(a) is type(b) is cls
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k])
