"""asymmetric_loss / AsymmetricCooccurrenceLoss and the one ASL core
(asymmetric_loss_matrix) against a direct element-by-element formula."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.losses import (asymmetric_loss, asymmetric_loss_matrix,
                                    partial_asymmetric_loss)
from mlrpl_mm.models.losses.asymmetric_cooccurrence_loss import \
    pair_cooccurrence_targets


def naive_reference_asl(x, t, gn, gp, clip, eps=1e-8):
    """Ridnik et al.'s reference, element by element (float64):
    p_- = min(1, 1 - p + clip), weight (1 - p_t)^gamma_t, mean."""
    terms = []
    for xv, tv in zip(x.reshape(-1), t.reshape(-1)):
        p = torch.sigmoid(xv)
        pn = torch.clamp(1 - p + clip, max=1) if clip else 1 - p
        if tv:
            terms.append(-(1 - p) ** gp * torch.log(p.clamp(min=eps)))
        else:
            terms.append(-(1 - pn) ** gn * torch.log(pn.clamp(min=eps)))
    return torch.stack(terms).mean()


@pytest.mark.parametrize('kw', [dict(), dict(gamma_neg=4.0, gamma_pos=0.0),
                                dict(gamma_neg=0.0, gamma_pos=0.0),
                                dict(clip=0.0), dict(clip=0.2)])
def test_asymmetric_loss_vs_naive_formula(kw):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(5, 7, generator=g) * 3).double().requires_grad_()
    t = (torch.rand(5, 7, generator=g) > 0.6).double()
    gn, gp = kw.get('gamma_neg', 2.0), kw.get('gamma_pos', 1.0)
    clip = kw.get('clip', 0.05)
    x32 = x.detach().float().requires_grad_()
    ours = asymmetric_loss(x32, t.float(), **kw)
    ref = naive_reference_asl(x, t, gn, gp, clip)
    torch.testing.assert_close(ours.double(), ref, atol=1e-6, rtol=1e-6)
    g1, = torch.autograd.grad(ours, x32)
    g2, = torch.autograd.grad(ref, x)
    torch.testing.assert_close(g1.double(), g2, atol=1e-6, rtol=1e-5)


def test_both_asl_losses_are_the_one_core():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, generator=g) * 4
    y = torch.randint(-1, 2, (4, 6), generator=g).float()
    known = (y != 0).float()
    core = asymmetric_loss_matrix(x, y.clamp(min=0), 1.0, 3.0, 0.05, 1e-8)
    assert torch.equal(
        partial_asymmetric_loss(x, y, gamma_pos=1.0, gamma_neg=3.0),
        (core * known).sum() / known.sum().clamp(min=1.0))
    t = (y > 0).float()
    assert torch.equal(asymmetric_loss(x, t, gamma_neg=3.0, gamma_pos=1.0),
                       asymmetric_loss_matrix(x, t, 1.0, 3.0).mean())


def test_cooccurrence_module_targets_and_shape_check():
    y = torch.tensor([[1, 1, -1], [1, 0, 1]])
    i, j = torch.tensor([0, 0, 1]), torch.tensor([1, 2, 2])
    assert pair_cooccurrence_targets(y, i, j).tolist() == [[1, 0, 0],
                                                           [0, 1, 0]]
    m = MODELS.build(dict(type='AsymmetricCooccurrenceLoss', loss_weight=2.0))
    q = torch.randn(2, 3)
    assert torch.equal(
        m(q, y, i, j),
        2.0 * asymmetric_loss(q, pair_cooccurrence_targets(y, i, j)))
    with pytest.raises(ValueError, match='do not match'):
        m(torch.randn(2, 4), y, i, j)
