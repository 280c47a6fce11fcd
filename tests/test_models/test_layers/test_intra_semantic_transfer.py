import pytest
import torch

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.losses.asymmetric_cooccurrence_loss import asymmetric_loss
from mmpretrain.registry import MODELS


def build(**kw):
    cfg = dict(type='IntraSemanticTransfer', num_classes=5, in_channels=4,
               inter_channels=3, out_channels=6)
    cfg.update(kw)
    return MODELS.build(cfg).double()


def naive_q(m, f):
    g = m.fc_g(f)
    B, C = f.shape[:2]
    cols, k = [], 0
    for i in range(C):
        for j in range(i + 1, C):
            p = m.fc_pair2(torch.relu(m.fc_pair1(torch.cat([g[:, i], g[:, j]], -1))))
            cols.append(p @ m.pair_classifier.weight[k] + m.pair_classifier.bias[k])
            k += 1
    return torch.stack(cols, 1)


@pytest.mark.parametrize('kw', [dict(), dict(pair_chunk_size=1),
                                dict(pair_chunk_size=4, recompute=False),
                                dict(max_chunk_mb=1e-4)])
def test_pair_logits_match_naive(kw):
    torch.manual_seed(0)
    m = build(**kw)
    assert m.num_pairs == 10
    f = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    gq = torch.randn(3, 10, dtype=torch.float64)
    q = m(f)
    assert q.shape == (3, 10)
    params = [p for p in m.parameters() if p is not m.margin]
    g1 = torch.autograd.grad((q * gq).sum(), params + [f])
    ref = naive_q(m, f)
    g2 = torch.autograd.grad((ref * gq).sum(), params + [f])
    torch.testing.assert_close(q, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_chunk_budget():
    m = build(max_chunk_mb=3 * 4 * 2 * 6 * 3 / 2**20)  # 3 pairs at B=2
    assert m.chunk_pairs(2) == 3
    assert build(pair_chunk_size=100).chunk_pairs(2) == 10
    with pytest.raises(ValueError, match='pair_chunk_size'):
        build(pair_chunk_size=0)
    with pytest.raises(ValueError, match=r'f \(B, 5, 4\)'):
        build()(torch.randn(2, 4, 4, dtype=torch.float64))


def test_pseudo_scores_match_naive():
    torch.manual_seed(1)
    m = build(margin_init=0.3)
    q = torch.randn(2, 10, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1, 0, -1, 1, 0], [0, 0, -1, 0, 0]])
    ist = m.pseudo_scores(q, y)
    C = 5
    ref = torch.zeros(2, C, dtype=torch.float64)
    for b in range(2):
        P = torch.eye(C, dtype=torch.float64)
        k = 0
        for i in range(C):
            for j in range(i + 1, C):
                P[i, j] = P[j, i] = torch.sigmoid(q[b, k])
                k += 1
        pos = [j for j in range(C) if y[b, j] == 1]
        for c in range(C):
            s = sum((P[c, j] for j in pos), torch.tensor(0., dtype=torch.float64))
            ref[b, c] = torch.clamp(s / max(1, len(pos)) - m.margin, 0, 1)
    torch.testing.assert_close(ist.double(), ref, atol=1e-6, rtol=1e-6)
    g1 = torch.autograd.grad(ist.sum(), [q, m.margin])
    g2 = torch.autograd.grad(ref.sum(), [q, m.margin])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)
    assert (ist[1] == 0).all()  # no known positive: score 0


def test_asymmetric_cooccurrence_loss_matches_naive():
    torch.manual_seed(2)
    m = build()
    x = torch.randn(2, 10, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1, 1, 0, 1, -1], [1, 0, 1, -1, -1]])
    loss = MODELS.build(dict(type='AsymmetricCooccurrenceLoss'))(x, y, m.pair_i, m.pair_j)
    terms = []
    k = 0
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    for b in range(2):
        for k, (i, j) in enumerate(pairs):
            t = float(y[b, i] == 1 and y[b, j] == 1)
            p = torch.sigmoid(x[b, k])
            pn = torch.clamp(1 - p + 0.05, max=1)
            if t:
                terms.append(-(1 - p) ** 1 * torch.log(p.clamp(min=1e-8)))
            else:
                terms.append(-(1 - pn) ** 2 * torch.log(pn.clamp(min=1e-8)))
    ref = torch.stack(terms).mean()
    torch.testing.assert_close(loss.double(), ref, atol=1e-6, rtol=1e-6)
    g1, = torch.autograd.grad(loss, x)
    g2, = torch.autograd.grad(ref, x)
    torch.testing.assert_close(g1.double(), g2, atol=1e-5, rtol=1e-5)
    # detached focusing weight changes the gradient, not the value
    l2 = asymmetric_loss(x, torch.zeros_like(x), focal_grad=False)
    l3 = asymmetric_loss(x, torch.zeros_like(x), focal_grad=True)
    torch.testing.assert_close(l2, l3)


def test_fused_recompute_matches_plain_autograd_float32():
    """The fused recomputing chunk function against plain autograd (which
    keeps every (B, P, O) activation), float32, several chunks, an expanded
    upstream gradient (sum()) and a random one; forward and every gradient
    to 1e-5."""
    torch.manual_seed(5)
    kw = dict(type='IntraSemanticTransfer', num_classes=12, in_channels=16,
              inter_channels=8, out_channels=32, pair_chunk_size=13)
    fused = MODELS.build(dict(kw, recompute=True))
    plain = MODELS.build(dict(kw, recompute=False))
    plain.load_state_dict(fused.state_dict())
    f = torch.randn(4, 12, 16, requires_grad=True)
    params = [n for n, _ in fused.named_parameters() if n != 'margin']
    for upstream in (None, torch.randn(4, 66)):
        outs = []
        for m in (fused, plain):
            q = m(f)
            loss = q.sum() if upstream is None else (q * upstream).sum()
            ps = dict(m.named_parameters())
            outs.append((q.detach(), torch.autograd.grad(
                loss, [ps[n] for n in params] + [f])))
        torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-5, rtol=1e-5)
        for a, b in zip(outs[0][1], outs[1][1]):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(fused(f), plain(f), atol=1e-5, rtol=1e-5)
