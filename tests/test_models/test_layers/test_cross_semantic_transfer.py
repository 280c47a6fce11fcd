import pytest
import torch
import torch.nn.functional as F

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.layers import kmeans
from mmpretrain.registry import MODELS


def test_kmeans_seeded_recovers_blobs_and_small_classes():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0., 0.], [10., 0.], [0., 10.]])
    x = torch.cat([c + 0.1 * torch.randn(20, 2, generator=g) for c in centres])
    a = kmeans(x, 3, torch.Generator().manual_seed(5))
    b = kmeans(x, 3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    d = torch.cdist(centres, a).min(1).values
    assert (d < 0.2).all()
    # fewer points than clusters: the points themselves
    assert torch.equal(kmeans(x[:2], 10), x[:2])
    # duplicated points: no NaN, k centres
    out = kmeans(torch.ones(12, 3), 4, torch.Generator().manual_seed(0))
    assert out.shape == (4, 3) and torch.isfinite(out).all()


def test_prototypes_similarity_and_pseudo_scores():
    torch.manual_seed(0)
    cst = MODELS.build(dict(type='CrossSemanticTransfer', num_classes=3,
                            in_channels=4, num_prototypes=2, margin_init=0.2))
    feats = torch.randn(7, 4)
    classes = torch.tensor([0, 0, 0, 0, 0, 1, 0])  # class 1: 1 point, class 2: none
    cst.update_prototypes(classes, feats, epoch=5)
    assert cst.prototype_count.tolist() == [2, 1, 0]
    assert int(cst.prototype_epoch) == 5 and cst.has_prototypes
    torch.testing.assert_close(cst.prototypes[1, 0], feats[5])
    f = torch.randn(2, 3, 4, requires_grad=True)
    sim = cst.similarity(f)
    ref = torch.zeros(2, 3)
    for b in range(2):
        for c in range(3):
            k = int(cst.prototype_count[c])
            if k:
                ref[b, c] = torch.stack([F.cosine_similarity(f[b, c], cst.prototypes[c, j], 0)
                                         for j in range(k)]).mean()
    torch.testing.assert_close(sim, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(cst.pseudo_scores(f), torch.clamp(ref - 0.2, 0, 1))
    # a negative learnt margin: still no pseudo label for class 2 (no prototype)
    with torch.no_grad():
        cst.margin.fill_(-0.3)
    valid = torch.tensor([1., 1., 0.])
    torch.testing.assert_close(cst.pseudo_scores(f), torch.clamp(ref + 0.3, 0, 1) * valid)
    assert (cst.pseudo_scores(f)[:, 2] == 0).all()
    torch.testing.assert_close(cst.pseudo_scores(f, sim=sim), cst.pseudo_scores(f))
    with torch.no_grad():
        cst.margin.fill_(0.2)
    g1, = torch.autograd.grad(sim.sum(), f)
    g2, = torch.autograd.grad(ref.sum(), f)
    torch.testing.assert_close(g1, g2, atol=1e-5, rtol=1e-5)
    # same seed and epoch -> same prototypes
    p = cst.prototypes.clone()
    cst.update_prototypes(classes, feats, epoch=5)
    assert torch.equal(p, cst.prototypes)
    assert set(cst.state_dict()) >= {'prototypes', 'prototype_count', 'prototype_epoch'}


@pytest.mark.parametrize('mode,sign', [('reference', 1.0), ('pull_push', -1.0)])
def test_prototype_contrastive_loss(mode, sign):
    sim = torch.tensor([[0.5, -0.2, 0.9], [0.1, 0.3, -0.4]], requires_grad=True)
    y = torch.tensor([[1, -1, 0], [-1, 1, 1]])
    valid = torch.tensor([True, True, False])
    # the switch: mean over the kept (known, with prototypes) entries
    loss = MODELS.build(dict(type='PrototypeContrastiveLoss', mode=mode,
                             average='known'))(sim, y, valid)
    terms = [1 + sign * y[b, c] * sim[b, c] for b in range(2) for c in range(2)]
    ref = torch.stack(terms).mean()
    torch.testing.assert_close(loss, ref)
    g1, = torch.autograd.grad(loss, sim)
    g2, = torch.autograd.grad(ref, sim)
    torch.testing.assert_close(g1, g2)
    # the default (issue 13.1): the reference reduction, mean over all 6
    # entries, the constant 1 where not kept
    loss_all = MODELS.build(dict(type='PrototypeContrastiveLoss',
                                 mode=mode))(sim, y, valid)
    terms = [1 + sign * y[b, c] * sim[b, c] for b in range(2) for c in range(2)]
    ref_all = (torch.stack(terms).sum() + 2) / 6
    torch.testing.assert_close(loss_all, ref_all)
    g1, = torch.autograd.grad(loss_all, sim)
    g2, = torch.autograd.grad(ref_all, sim)
    torch.testing.assert_close(g1, g2)
    with pytest.raises(ValueError, match='average'):
        MODELS.build(dict(type='PrototypeContrastiveLoss', average='x'))
    if mode == 'pull_push':  # positives pulled: d up -> loss down
        assert torch.isclose(terms[0], 1 - sim[0, 0])
    with pytest.raises(ValueError, match='mode'):
        MODELS.build(dict(type='PrototypeContrastiveLoss', mode='x'))
