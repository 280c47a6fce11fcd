import pytest
import torch
import torch.nn.functional as F

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.losses.instance_contrastive_loss import _mine
from mmpretrain.registry import MODELS


def naive_terms(f, y):
    pp, pn, nn_ = [], [], []
    B, C, _ = f.shape
    for i in range(B):
        for j in range(i + 1, B):
            for c in range(C):
                d = F.cosine_similarity(f[i, c], f[j, c], dim=0)
                a, b = int(y[i, c]), int(y[j, c])
                if a == 1 and b == 1:
                    pp.append(1 - d)
                elif {a, b} == {1, -1}:
                    pn.append(1 + d)
                elif a == -1 and b == -1:
                    nn_.append(1 + d)
    return pp, pn, nn_


def naive_terms_class_major(f, y):
    """The three term lists in the order (class, pair i < j)."""
    pp, pn, nn_ = [], [], []
    B, C, _ = f.shape
    for c in range(C):
        for i in range(B):
            for j in range(i + 1, B):
                d = F.cosine_similarity(f[i, c].float(), f[j, c].float(), dim=0)
                a, b = int(y[i, c]), int(y[j, c])
                if a == 1 and b == 1:
                    pp.append(1 - d)
                elif {a, b} == {1, -1}:
                    pn.append(1 + d)
                elif a == -1 and b == -1:
                    nn_.append(1 + d)
    return pp, pn, nn_


def naive_reference_mining(terms, n, g):
    """2n drawn at random from all the terms plus the n largest; every
    term when there is no (+1, +1) term."""
    if n == 0 or not terms:
        return list(terms)
    perm = torch.randperm(len(terms), generator=g)[:2 * n].tolist()
    top = sorted(range(len(terms)), key=lambda k: -float(terms[k].detach()))[:n]
    return [terms[k] for k in perm] + [terms[k] for k in top]


@pytest.mark.parametrize('y', [
    # many (+1, +1) terms: every negative set has < 2n terms
    [[1, 1, -1], [1, 1, 0], [1, -1, 1], [1, 1, -1]],
    # one (+1, +1) term: 2 random + the largest of larger sets
    [[1, -1, -1], [1, -1, -1], [-1, -1, 1], [-1, 1, -1], [-1, -1, -1],
     [-1, 1, -1]],
    # no (+1, +1) term: every negative term kept
    [[1, -1, -1], [-1, 1, -1], [-1, -1, 0], [0, -1, 1]],
])
def test_reference_mining_matches_naive_forward_and_grad(y):
    torch.manual_seed(0)
    y = torch.tensor(y)
    f = torch.randn(y.shape[0], 3, 5, dtype=torch.float64, requires_grad=True)
    loss = MODELS.build(dict(type='InstanceContrastiveLoss', seed=7))(f, y)
    g1, = torch.autograd.grad(loss, f)
    pp, pn, nn_ = naive_terms_class_major(f, y)
    g = torch.Generator().manual_seed(7)
    kept = pp + naive_reference_mining(pn, len(pp), g) + \
        naive_reference_mining(nn_, len(pp), g)
    ref = torch.stack(kept).mean()
    g2, = torch.autograd.grad(ref, f)
    torch.testing.assert_close(loss, ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(g1, g2, atol=1e-5, rtol=1e-5)


def test_no_positive_pair_reference_keeps_all_disjoint_gives_zero():
    torch.manual_seed(1)
    f = torch.randn(3, 2, 4, requires_grad=True)
    y = torch.tensor([[1, -1], [-1, -1], [0, -1]])
    _, pn, nn_ = naive_terms_class_major(f, y)
    loss = MODELS.build(dict(type='InstanceContrastiveLoss'))(f, y)
    torch.testing.assert_close(loss, torch.stack(pn + nn_).mean())
    loss = MODELS.build(dict(type='InstanceContrastiveLoss',
                             mining='disjoint'))(f, y)
    assert loss.item() == 0
    loss.backward()
    assert f.grad is not None
    with pytest.raises(ValueError, match='mining'):
        MODELS.build(dict(type='InstanceContrastiveLoss', mining='x'))


def test_disjoint_matches_naive_when_all_kept():
    # many (+1, +1) pairs: every negative term is kept once (<= 3n of each)
    torch.manual_seed(0)
    f = torch.randn(4, 3, 5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[1, 1, -1], [1, 1, 0], [1, -1, 1], [1, 1, -1]])
    loss_fn = MODELS.build(dict(type='InstanceContrastiveLoss', seed=0,
                                mining='disjoint'))
    loss = loss_fn(f, y)
    g1, = torch.autograd.grad(loss, f)
    pp, pn, nn_ = naive_terms(f, y)
    assert len(pn) + len(nn_) <= 3 * len(pp)
    ref = torch.stack(pp + pn + nn_).mean()
    g2, = torch.autograd.grad(ref, f)
    torch.testing.assert_close(loss.double(), ref, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(g1.double(), g2, atol=1e-5, rtol=1e-5)


def test_disjoint_hard_mining_rule():
    torch.manual_seed(1)
    B, C = 8, 2
    f = torch.randn(B, C, 4)
    y = -torch.ones(B, C)
    y[0, 0] = y[1, 0] = 1  # exactly one (+1, +1) term: n = 1
    pp, pn, nn_ = naive_terms(f, y)
    assert len(pp) == 1 and len(pn) > 3 and len(nn_) > 3
    pn_t, nn_t = torch.stack(pn), torch.stack(nn_)
    loss = MODELS.build(dict(type='InstanceContrastiveLoss', seed=3,
                             mining='disjoint'))(f, y)
    # the loss is the mean of 1 + 3 + 3 terms containing each set's maximum
    kept_pn = _mine(pn_t, 1, None, 'disjoint')
    assert kept_pn.numel() == 3 and torch.isclose(kept_pn.max(), pn_t.max())
    # same seed -> same loss; the loss is a mean of 7 naive terms
    loss2 = MODELS.build(dict(type='InstanceContrastiveLoss', seed=3,
                              mining='disjoint'))(f, y)
    assert torch.equal(loss, loss2)
    total = loss * 7 - pp[0] - pn_t.max() - nn_t.max()
    # the remaining 4 terms are 2 of pn (not the max) and 2 of nn
    import itertools
    found = False
    pn_rest = sorted(pn_t.tolist())[:-1]
    nn_rest = sorted(nn_t.tolist())[:-1]
    for a in itertools.combinations(pn_rest, 2):
        for b in itertools.combinations(nn_rest, 2):
            if abs(sum(a) + sum(b) - total.item()) < 1e-5:
                found = True
    assert found


def test_single_image_and_shape_errors():
    f = torch.randn(3, 2, 4, requires_grad=True)
    y = torch.tensor([[1, -1], [-1, -1], [0, -1]])
    assert MODELS.build(dict(type='InstanceContrastiveLoss'))(f[:1], y[:1]).item() == 0
    with pytest.raises(ValueError, match='target'):
        MODELS.build(dict(type='InstanceContrastiveLoss'))(f, y[:, :1])
