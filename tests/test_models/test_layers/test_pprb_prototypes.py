"""PPRB prototype math at the layer level (models/layers/pprb_prototypes.py,
PPRB.prototype_rows / prototype_accumulator), against the equations of
docs/equations/dsrb.md written as plain loops."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.layers import (QuadrantPrototypeAccumulator,
                                    energy_quadrants)
from mlrpl_mm.models.layers.pprb_prototypes import NUM_QUADRANTS


def naive_quadrant_means(sample, cls, quad, feat, C, cap, mean):
    r"""P_{c,q} = sum_{b in S_cq} f_b / (|S_cq| + z), S_cq the ``cap``
    smallest sample indices of cell (c, q) (all when None), z = 1 for
    'reference' (its all-zero placeholder row), 0 for 'exact'; an empty
    cell gets the class mean sum_q sum_{S_cq} f / sum_q |S_cq|; a class
    without rows is invalid (zeros)."""
    D = feat.shape[1]
    z = 1 if mean == 'reference' else 0
    protos = torch.zeros(C, NUM_QUADRANTS, D, dtype=torch.float64)
    counts = torch.zeros(C, NUM_QUADRANTS, dtype=torch.long)
    valid = torch.zeros(C, dtype=torch.bool)
    for c in range(C):
        kept = []
        for q in range(NUM_QUADRANTS):
            members = sorted((int(s), i) for i, s in enumerate(sample)
                             if int(cls[i]) == c and int(quad[i]) == q)
            if cap is not None:
                members = members[:cap]
            rows = [feat[i].double() for _, i in members]
            counts[c, q] = len(rows)
            kept += rows
            if rows:
                protos[c, q] = sum(rows) / (len(rows) + z)
        if kept:
            valid[c] = True
            class_mean = sum(kept) / len(kept)
            for q in range(NUM_QUADRANTS):
                if counts[c, q] == 0:
                    protos[c, q] = class_mean
    return protos.float(), valid, counts


@pytest.mark.parametrize('mean', ['reference', 'exact'])
@pytest.mark.parametrize('cap', [1, 4, None])
def test_accumulator_equals_the_equation(cap, mean):
    g = torch.Generator().manual_seed(3)
    C, D, R = 5, 3, 300
    sample = torch.randperm(2000, generator=g)[:R]  # one row per sample
    cls = torch.randint(0, C - 1, (R, ), generator=g)  # class 4: no row
    quad = torch.randint(0, NUM_QUADRANTS, (R, ), generator=g)
    quad[cls == 3] = 2  # class 3: one filled quadrant, three filled by mean
    feat = torch.randn(R, D, generator=g)
    acc = QuadrantPrototypeAccumulator(C, D, max_per_group=cap,
                                       compact_every=16, mean=mean)
    for chunk in torch.randperm(R, generator=g).split(23):  # any arrival order
        acc.add(sample[chunk], cls[chunk], quad[chunk], feat[chunk])
    p, v, n = acc.result()
    p_ref, v_ref, n_ref = naive_quadrant_means(sample, cls, quad, feat, C,
                                               cap, mean)
    assert p.shape == (C, NUM_QUADRANTS, D) and p.dtype == torch.float32
    assert torch.equal(n, n_ref) and torch.equal(v, v_ref)
    assert v.tolist() == [True] * 4 + [False] and (p[4] == 0).all()
    torch.testing.assert_close(p, p_ref, rtol=1e-6, atol=1e-6)


def test_accumulator_all_full_only_with_a_cap():
    acc = QuadrantPrototypeAccumulator(1, 1, max_per_group=1)
    acc.add(torch.arange(3), torch.zeros(3).long(), torch.arange(3),
            torch.ones(3, 1))
    assert not acc.all_full()
    acc.add(torch.tensor([3]), torch.zeros(1).long(), torch.tensor([3]),
            torch.ones(1, 1))
    assert acc.all_full()
    uncapped = QuadrantPrototypeAccumulator(1, 1, max_per_group=None)
    uncapped.add(torch.arange(4), torch.zeros(4).long(), torch.arange(4),
                 torch.ones(4, 1))
    assert not uncapped.all_full()
    with pytest.raises(ValueError, match='mean'):
        QuadrantPrototypeAccumulator(1, 1, mean='median')
    with pytest.raises(ValueError, match='max_per_group'):
        QuadrantPrototypeAccumulator(1, 1, max_per_group=0)


@pytest.mark.parametrize('split', ['floor', 'exact'])
def test_prototype_rows_are_the_known_positives_with_their_quadrant(split):
    g = torch.Generator().manual_seed(0)
    B, C, D, H, W = 4, 3, 5, 3, 5
    pprb = MODELS.build(dict(type='PPRB', num_classes=C, in_channels=D,
                             quadrant_split=split))
    f = torch.randn(B, C, D, generator=g)
    energy = torch.randn(B, H * W, C, generator=g)
    target = torch.randint(-1, 2, (B, C), generator=g).float()
    b, c, q, feat = pprb.prototype_rows(f, energy, target, (H, W))
    quad = energy_quadrants(energy, (H, W), split)
    expected = [(i, j) for i in range(B) for j in range(C)
                if target[i, j] == 1]  # row-major (b, c)
    assert list(zip(b.tolist(), c.tolist())) == expected
    for r, (i, j) in enumerate(expected):
        e = energy[i, :, j].view(H, W)
        h_star = int(e.amax(1).argmax())
        w_star = int(e.amax(0).argmax())
        half_h, half_w = (H // 2, W // 2) if split == 'floor' else (H / 2,
                                                                     W / 2)
        assert int(q[r]) == 2 * (h_star >= half_h) + (w_star >= half_w)
        assert int(q[r]) == int(quad[i, j])
        assert torch.equal(feat[r], f[i, j].float())


def test_prototype_accumulator_feeds_set_prototypes():
    C, D = 2, 3
    pprb = MODELS.build(dict(type='PPRB', num_classes=C, in_channels=D))
    acc = pprb.prototype_accumulator(max_per_quadrant=2, mean='exact')
    assert (acc.C, acc.D, acc.cap, acc.mean) == (C, D, 2, 'exact')
    acc.add(torch.tensor([0, 1]), torch.tensor([0, 0]), torch.tensor([1, 1]),
            torch.tensor([[1.0, 2, 3], [3.0, 4, 5]]))
    protos, valid, counts = acc.result()
    pprb.set_prototypes(protos, valid, epoch=5)
    assert pprb.prototype_valid.tolist() == [True, False]
    assert int(pprb.prototype_epoch) == 5
    for q in range(NUM_QUADRANTS):  # one filled cell: the class mean fills
        assert pprb.prototypes[0, q].tolist() == [2.0, 3.0, 4.0]
    assert sorted(pprb.state_dict()) == [
        'beta', 'prototype_epoch', 'prototype_valid', 'prototypes']
