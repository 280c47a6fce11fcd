import pytest
import torch

import mlrpl_mm  # noqa: F401
from mmpretrain.registry import MODELS


def _lin(g, name, x):
    w, b = g.gate(name)
    return x @ w.t() + b


def naive_ggnn(g, h, adj):
    """The equation, one class and one image at a time."""
    B, C, D = h.shape
    for _ in range(g.num_steps):
        new = []
        for bi in range(B):
            rows = []
            for i in range(C):
                a_in = sum(adj[i, j] * h[bi, j] for j in range(C))
                a_out = sum(adj[j, i] * h[bi, j] for j in range(C))
                m = torch.cat([a_in, a_out])
                hi = h[bi, i]
                z = torch.sigmoid(_lin(g, 'w_z', m) + _lin(g, 'u_z', hi))
                r = torch.sigmoid(_lin(g, 'w_r', m) + _lin(g, 'u_r', hi))
                ht = torch.tanh(_lin(g, 'w_h', m) + _lin(g, 'u_h', r * hi))
                rows.append((1 - z) * hi + z * ht)
            new.append(torch.stack(rows))
        h = torch.stack(new)
    return h


class LegacyGatedGNN(torch.nn.Module):
    """The former layout: one nn.Linear per gate, two message matmuls."""

    def __init__(self, D, num_steps=3):
        super().__init__()
        self.num_steps = num_steps
        L = torch.nn.Linear
        self.w_z, self.w_r, self.w_h = L(2 * D, D), L(2 * D, D), L(2 * D, D)
        self.u_z, self.u_r, self.u_h = L(D, D), L(D, D), L(D, D)

    def forward(self, h, adj):
        for _ in range(self.num_steps):
            m = torch.cat([adj @ h, adj.t() @ h], dim=2)
            z = torch.sigmoid(self.w_z(m) + self.u_z(h))
            r = torch.sigmoid(self.w_r(m) + self.u_r(h))
            ht = torch.tanh(self.w_h(m) + self.u_h(r * h))
            h = (1 - z) * h + z * ht
        return h


@pytest.mark.parametrize('batch', [1, 3])
def test_gated_gnn_matches_naive(batch):
    torch.manual_seed(1)
    g = MODELS.build(dict(type='GatedGNN', in_channels=3, num_steps=3)).double()
    h = torch.randn(batch, 4, 3, dtype=torch.float64, requires_grad=True)
    adj = torch.rand(4, 4, dtype=torch.float64)  # asymmetric
    gout = torch.randn(batch, 4, 3, dtype=torch.float64)
    out = g(h, adj)
    (out * gout).sum().backward()
    grads = [p.grad.clone() for p in g.parameters()] + [h.grad.clone()]
    g.zero_grad()
    h.grad = None
    ref = naive_ggnn(g, h, adj)
    (ref * gout).sum().backward()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, [p.grad for p in g.parameters()] + [h.grad]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_gated_gnn_float32_matches_legacy_layout_and_loads_its_checkpoint():
    """A checkpoint of the per-gate layout loads into the fused layers and
    gives the same forward and gradients (float32, 1e-5)."""
    torch.manual_seed(3)
    B, C, D = 6, 7, 16
    old = LegacyGatedGNN(D)
    g = MODELS.build(dict(type='GatedGNN', in_channels=D, num_steps=3))
    missing = g.load_state_dict(old.state_dict(), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    for name in ('w_z', 'w_r', 'w_h', 'u_z', 'u_r', 'u_h'):
        w, b = g.gate(name)
        assert torch.equal(w, getattr(old, name).weight)
        assert torch.equal(b, getattr(old, name).bias)
    h = torch.randn(B, C, D, requires_grad=True)
    adj = torch.rand(C, C)
    gout = torch.randn(B, C, D)
    out = g(h, adj)
    gh, = torch.autograd.grad((out * gout).sum(), h)
    ref = old(h, adj)
    gh_ref, = torch.autograd.grad((ref * gout).sum(), h)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gh, gh_ref, atol=1e-5, rtol=1e-5)
    # weight gradients, gate by gate
    (g(h, adj) * gout).sum().backward()
    (old(h, adj) * gout).sum().backward()
    D_ = D
    for name, (layer, k) in {'w_z': ('w_m', 0), 'w_r': ('w_m', 1),
                             'w_h': ('w_m', 2), 'u_z': ('u_zr', 0),
                             'u_r': ('u_zr', 1)}.items():
        lin = getattr(g, layer)
        torch.testing.assert_close(lin.weight.grad[k * D_:(k + 1) * D_],
                                   getattr(old, name).weight.grad,
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lin.bias.grad[k * D_:(k + 1) * D_],
                                   getattr(old, name).bias.grad,
                                   atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g.u_h.weight.grad, old.u_h.weight.grad,
                               atol=1e-5, rtol=1e-5)
    # fused state dict round trip; zero steps is the identity
    g2 = MODELS.build(dict(type='GatedGNN', in_channels=D, num_steps=0))
    g2.load_state_dict(g.state_dict())
    assert torch.equal(g2(h, adj), h)
    with pytest.raises(KeyError, match='unknown layer'):
        g.gate('w_q')


def test_gated_gnn_shape_errors():
    g = MODELS.build(dict(type='GatedGNN', in_channels=3))
    with pytest.raises(ValueError, match='adjacency'):
        g(torch.randn(2, 4, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match='GatedGNN expects'):
        g(torch.randn(2, 4, 5), torch.zeros(4, 4))


def test_element_wise_linear_matches_naive():
    torch.manual_seed(2)
    m = MODELS.build(dict(type='ElementWiseLinear', num_classes=4,
                          in_channels=3)).double()
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    y = m(x)
    ref = torch.stack([torch.stack([m.weight[c] @ x[b, c] + m.bias[c]
                                    for c in range(4)]) for b in range(2)])
    torch.testing.assert_close(y, ref)
    gy = torch.randn(2, 4, dtype=torch.float64)
    gx, gw, gb = torch.autograd.grad((y * gy).sum(), [x, m.weight, m.bias])
    torch.testing.assert_close(gx, gy[..., None] * m.weight)
    torch.testing.assert_close(gw, (gy[..., None] * x).sum(0))
    torch.testing.assert_close(gb, gy.sum(0))
    with pytest.raises(ValueError, match='ElementWiseLinear expects'):
        m(torch.randn(2, 5, 3, dtype=torch.float64))
