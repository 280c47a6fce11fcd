"""IPRB / PPRB: pooled formulation vs the literal (B, N, C, D) one of docs/equations/dsrb.md."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.layers import IPRB, PPRB, energy_quadrants
from mlrpl_mm.models.losses.partial_bce_loss import partial_bce_with_logits



# ----------------------------------------------------------------------------
# literal formulation, written directly from docs/equations/dsrb.md with Python
# loops
# ----------------------------------------------------------------------------
def literal_quadrant(e_map: torch.Tensor, H: int, W: int,
                     split: str = 'floor') -> int:
    """e_map (N,) of one (image, class): quadrant of the energy peak.

    ``'floor'``: the reference's ``halfSize = H // 2``; ``'exact'``: H / 2.
    """
    g = e_map.detach().view(H, W).tolist()
    row_max = [max(r) for r in g]
    col_max = [max(g[h][w] for h in range(H)) for w in range(W)]
    h_star = row_max.index(max(row_max))
    w_star = col_max.index(max(col_max))
    if split == 'floor':
        return 2 * int(h_star >= H // 2) + int(w_star >= W // 2)
    return 2 * int(h_star >= H / 2) + int(w_star >= W / 2)


def literal_dsrb(x, attn, target, proto_map, alpha, beta, choices, H, W,
                 split='floor'):
    """Literal IPRB + PPRB on F (B, N, C, D) = alpha_{n,c} x_{b,n}.

    Args:
        x: (B, D, H, W); attn: (B, N, C); target (B, C);
        proto_map: (C, 4, N, D) spatial prototypes Proto_{c,q}[n].
    Returns:
        pooled plain f, IPRB f~, IPRB y~, PPRB f~, PPRB y~, quadrants.
    """
    B, D = x.shape[:2]
    C = attn.shape[2]
    xs = x.flatten(2).transpose(1, 2)  # (B, N, D)
    Fm = attn.unsqueeze(-1) * xs.unsqueeze(2)  # (B, N, C, D)
    # IPRB: pair b with B-1-b
    Fi_rows = []
    yi = [[target[b, c] for c in range(C)] for b in range(B)]
    for b in range(B):
        p = B - 1 - b
        cols = []
        for c in range(C):
            if target[b, c] == 0 and target[p, c] == 1:
                cols.append(alpha * Fm[b, :, c] + (1 - alpha) * Fm[p, :, c])
                yi[b][c] = 1 - alpha
            else:
                cols.append(Fm[b, :, c])
        Fi_rows.append(torch.stack(cols, 1))  # (N, C, D)
    Fi = torch.stack(Fi_rows)
    yi = torch.stack([torch.stack([torch.as_tensor(v).to(x.dtype) for v in r])
                      for r in yi])
    # PPRB
    energy = Fm.sum(-1)  # (B, N, C)
    quad = torch.tensor([[literal_quadrant(energy[b, :, c], H, W, split)
                          for c in range(C)] for b in range(B)])
    Fp_rows, yp = [], [[target[b, c] for c in range(C)] for b in range(B)]
    for b in range(B):
        chosen = {}
        for k in range(choices['cls'].shape[1]):
            if choices['sel'][b, k]:
                c = int(choices['cls'][b, k])
                q_new = (int(quad[b, c]) - int(choices['shift'][b, k])) % 4
                # an unknown entry, or (fill_known, the reference default) a
                # known entry filling a draw the image has no unknown for
                assert target[b, c] == 0 or choices['filled'][b, k]
                chosen[c] = q_new
        cols = []
        for c in range(C):
            if c in chosen:
                cols.append(beta * Fm[b, :, c] + (1 - beta) * proto_map[c, chosen[c]])
                yp[b][c] = 1 - beta
            else:
                cols.append(Fm[b, :, c])
        Fp_rows.append(torch.stack(cols, 1))
    Fp = torch.stack(Fp_rows)
    yp = torch.stack([torch.stack([torch.as_tensor(v).to(x.dtype) for v in r])
                      for r in yp])
    return Fm.sum(1), Fi.sum(1), yi, Fp.sum(1), yp, quad, energy


def _inputs(B=5, C=6, D=4, H=3, W=4, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, D, H, W, generator=g, dtype=dtype).requires_grad_()
    logits = torch.randn(B, H * W, C, generator=g, dtype=dtype).requires_grad_()
    target = torch.randint(-1, 2, (B, C), generator=g).to(dtype)
    target[0] = 0  # an image with only unknown entries
    target[1] = 1  # an image with no unknown entry (PPRB fills with known)
    proto_map = torch.randn(C, 4, H * W, D, generator=g, dtype=dtype)
    head_w = torch.randn(C, D, generator=g, dtype=dtype)
    return x, logits, target, proto_map, head_w


def _downstream(f, head_w):
    """A fixed nonlinear classifier standing in for GNN + classifier."""
    return (torch.tanh(f) * head_w).sum(-1) + 0.1 * f.pow(2).sum(-1)


@pytest.mark.parametrize('top_k,hw,split', [
    (1, (3, 4), 'floor'), (2, (3, 4), 'floor'), (1, (7, 7), 'floor'),
    (3, (2, 5), 'floor'), (1, (7, 7), 'exact')])
def test_pooled_equals_literal_forward_and_grad(top_k, hw, split):
    H, W = hw
    B, C, D = 5, 6, 4
    x, logits, target, proto_map, head_w = _inputs(B, C, D, H, W, seed=top_k)
    iprb = MODELS.build(dict(type='IPRB', init_alpha=0.3)).double()
    pprb = MODELS.build(dict(type='PPRB', num_classes=C, in_channels=D,
                             init_beta=0.7, top_k=top_k,
                             quadrant_split=split)).double()
    pprb.set_prototypes(proto_map.sum(2), torch.ones(C, dtype=torch.bool), 5)
    choices = pprb.sample_choices(target, torch.Generator().manual_seed(123))

    # pooled
    attn = torch.softmax(logits, 1)
    xs = x.flatten(2).transpose(1, 2)
    f = torch.bmm(attn.transpose(1, 2), xs)  # (B, C, D)
    energy = attn * xs.sum(-1, keepdim=True)  # (B, N, C)
    fi, yi, mi = iprb(f, target)
    fp, yp, mp, info = pprb(f, energy, target, hw, choices=choices)
    loss = (partial_bce_with_logits(_downstream(f, head_w), target)
            + partial_bce_with_logits(_downstream(fi, head_w), yi)
            + partial_bce_with_logits(_downstream(fp, head_w), yp))
    grads = torch.autograd.grad(loss, [x, logits, iprb.alpha, pprb.beta])

    # literal
    alpha_l = iprb.alpha.detach().clone().requires_grad_()
    beta_l = pprb.beta.detach().clone().requires_grad_()
    attn_l = torch.softmax(logits, 1)
    f_l, fi_l, yi_l, fp_l, yp_l, quad_l, energy_l = literal_dsrb(
        x, attn_l, target, proto_map, alpha_l, beta_l, choices, H, W, split)
    loss_l = (partial_bce_with_logits(_downstream(f_l, head_w), target)
              + partial_bce_with_logits(_downstream(fi_l, head_w), yi_l)
              + partial_bce_with_logits(_downstream(fp_l, head_w), yp_l))
    grads_l = torch.autograd.grad(loss_l, [x, logits, alpha_l, beta_l])

    assert torch.equal(info['quadrant'], quad_l)
    torch.testing.assert_close(energy, energy_l, rtol=1e-10, atol=1e-10)
    for a, b in [(f, f_l), (fi, fi_l), (yi, yi_l), (fp, fp_l), (yp, yp_l)]:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loss, loss_l, rtol=1e-10, atol=1e-10)
    for a, b in zip(grads, grads_l):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    # something was actually blended, and the gradients are not trivial
    assert mi.any() and mp.any()
    assert grads[2].abs() > 0 and grads[3].abs() > 0
    # image 1 has no unknown entry: the reference default (fill_known) blends
    # its top_k lowest-index (known) classes, target 1 - beta
    assert mp[1].nonzero().flatten().tolist() == list(range(top_k))
    torch.testing.assert_close(yp[1, :top_k],
                               (1 - pprb.beta.detach()).expand(top_k))
    assert int(mp.sum(1)[0]) == top_k


def test_pooled_equals_literal_float32_tolerance():
    """Same comparison in float32: forward and gradients to 1e-5."""
    H, W, B, C, D = 4, 4, 4, 5, 8
    x, logits, target, proto_map, head_w = _inputs(B, C, D, H, W, seed=7,
                                                   dtype=torch.float32)
    iprb, pprb = IPRB(0.4), PPRB(C, D, init_beta=0.6)
    pprb.set_prototypes(proto_map.sum(2), torch.ones(C, dtype=torch.bool), 5)
    choices = pprb.sample_choices(target, torch.Generator().manual_seed(1))
    attn = torch.softmax(logits, 1)
    xs = x.flatten(2).transpose(1, 2)
    f = torch.bmm(attn.transpose(1, 2), xs)
    fi, yi, _ = iprb(f, target)
    fp, yp, _, _ = pprb(f, attn * xs.sum(-1, keepdim=True), target, (H, W),
                        choices=choices)
    loss = partial_bce_with_logits(_downstream(fi, head_w), yi) + \
        partial_bce_with_logits(_downstream(fp, head_w), yp)
    g = torch.autograd.grad(loss, [x, logits])
    _, fi_l, yi_l, fp_l, yp_l, _, _ = literal_dsrb(
        x, torch.softmax(logits, 1), target, proto_map, iprb.alpha, pprb.beta,
        choices, H, W)
    loss_l = partial_bce_with_logits(_downstream(fi_l, head_w), yi_l) + \
        partial_bce_with_logits(_downstream(fp_l, head_w), yp_l)
    g_l = torch.autograd.grad(loss_l, [x, logits])
    torch.testing.assert_close(loss, loss_l, rtol=1e-5, atol=1e-5)
    for a, b in zip(g, g_l):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------
# quadrants, draws, clamping, errors
# ----------------------------------------------------------------------------
@pytest.mark.parametrize('split', ['floor', 'exact'])
@pytest.mark.parametrize('H,W', [(7, 7), (4, 6), (1, 3), (5, 2)])
def test_energy_quadrants_match_literal(H, W, split):
    g = torch.Generator().manual_seed(H * 10 + W)
    e = torch.rand(3, H * W, 5, generator=g)
    q = energy_quadrants(e, (H, W), split)
    for b in range(3):
        for c in range(5):
            assert int(q[b, c]) == literal_quadrant(e[b, :, c], H, W, split)


def test_energy_quadrants_boundaries():
    H = W = 7
    e = torch.zeros(1, H * W, 6)
    for c, (h, w) in enumerate([(2, 2), (2, 3), (3, 2), (3, 3), (4, 4), (6, 6)]):
        e[0, h * W + w, c] = 1.0
    # default = the reference (halfSize = 7 // 2 = 3): the middle row/column
    # 3 is in the bottom/right half
    assert energy_quadrants(e, (H, W)).tolist() == [[0, 1, 2, 3, 3, 3]]
    assert PPRB(6, 2).quadrants(e, (H, W)).tolist() == [[0, 1, 2, 3, 3, 3]]
    # 'exact' (H / 2 = 3.5): the middle row/column is in the top/left half
    assert energy_quadrants(e, (H, W), 'exact').tolist() == [[0, 0, 0, 0, 3, 3]]
    assert PPRB(6, 2, quadrant_split='exact').quadrants(
        e, (H, W)).tolist() == [[0, 0, 0, 0, 3, 3]]
    # even sides: both rules agree
    e8 = torch.rand(2, 64, 3)
    assert torch.equal(energy_quadrants(e8, (8, 8)),
                       energy_quadrants(e8, (8, 8), 'exact'))
    with pytest.raises(ValueError, match='H\\*W'):
        energy_quadrants(e, (6, 6))
    with pytest.raises(ValueError, match='split'):
        energy_quadrants(e, (H, W), 'round')
    with pytest.raises(ValueError, match='quadrant_split'):
        PPRB(6, 2, quadrant_split='round')


def test_iprb_rule_and_odd_batch():
    t = torch.tensor([[0., 0., 1., -1.], [1., 0., 0., 0.], [1., 1., -1., 0.]])
    f = torch.randn(3, 4, 2)
    iprb = IPRB(0.25)
    fb, yb, m = iprb(f, t)
    # image 0 pairs with 2, image 1 (middle) with itself
    assert m.tolist() == [[True, True, False, False], [False] * 4,
                          [False, False, False, False]]
    torch.testing.assert_close(fb[0, 0], 0.25 * f[0, 0] + 0.75 * f[2, 0])
    torch.testing.assert_close(fb[1:], f[1:])
    assert yb[0].tolist() == [0.75, 0.75, 1.0, -1.0]
    assert torch.equal(yb[1:], t[1:])


def test_pprb_draws_only_unknown_valid_classes_reproducibly():
    # fill_known=False: the switch that blends only unknown entries (the
    # default fills with known entries, tests/test_models/test_faithful_defaults.py)
    C = 6
    pprb = PPRB(C, 3, top_k=2, fill_known=False)
    valid = torch.tensor([1, 1, 1, 1, 0, 1], dtype=torch.bool)
    pprb.set_prototypes(torch.randn(C, 4, 3), valid, 5)
    t = torch.tensor([[0, 0, 1, -1, 0, 0], [1, 1, 1, 1, 0, -1],
                      [0, 1, 1, 1, 0, 1]], dtype=torch.float32)
    ch = pprb.sample_choices(t, torch.Generator().manual_seed(5))
    ch2 = pprb.sample_choices(t, torch.Generator().manual_seed(5))
    for k in ch:
        assert torch.equal(ch[k], ch2[k])
    assert ch['sel'].tolist() == [[True, True], [False, False], [True, False]]
    for b in range(3):
        for k in range(2):
            if ch['sel'][b, k]:
                c = int(ch['cls'][b, k])
                assert t[b, c] == 0 and valid[c]
    assert ch['cls'][2, 0] == 0
    assert set(ch['shift'].flatten().tolist()) <= {1, 2, 3}
    # uniform over eligible classes and shifts
    t1 = torch.tensor([[0., 1., 0., -1., 0., 1.]]).repeat(3000, 1)
    p1 = PPRB(C, 3)
    p1.set_prototypes(torch.zeros(C, 4, 3), torch.ones(C, dtype=torch.bool), 0)
    d = p1.sample_choices(t1, torch.Generator().manual_seed(0))
    freq = torch.bincount(d['cls'].flatten(), minlength=C).float() / 3000
    assert freq[[1, 3, 5]].sum() == 0
    assert ((freq[[0, 2, 4]] - 1 / 3).abs() < 0.04).all()
    sfreq = torch.bincount(d['shift'].flatten(), minlength=4).float() / 3000
    assert ((sfreq[1:] - 1 / 3).abs() < 0.04).all()


def test_pprb_new_quadrant_differs_and_uses_global_rng():
    C, D, H, W = 4, 3, 4, 4
    pprb = PPRB(C, D)
    pprb.set_prototypes(torch.randn(C, 4, D), torch.ones(C, dtype=torch.bool), 5)
    t = torch.zeros(16, C)
    f = torch.randn(16, C, D)
    e = torch.rand(16, H * W, C)
    torch.manual_seed(3)
    out1 = pprb(f, e, t, (H, W))
    torch.manual_seed(3)
    out2 = pprb(f, e, t, (H, W))
    assert torch.equal(out1[0], out2[0])
    info = out1[3]
    q_old = info['quadrant'].gather(1, info['cls'])
    assert (q_old != info['new_quadrant']).all()


def test_blend_weights_out_of_range_and_missing_prototypes_raise():
    iprb = IPRB()
    with torch.no_grad():
        iprb.alpha.fill_(1.3)
    with pytest.raises(ValueError, match='BlendWeightClampHook'):
        iprb(torch.zeros(2, 3, 4), torch.zeros(2, 3))
    iprb.clamp_()
    assert float(iprb.alpha.detach()) == 1.0
    iprb(torch.zeros(2, 3, 4), torch.zeros(2, 3))
    pprb = PPRB(3, 4)
    with pytest.raises(RuntimeError, match='PPRBPrototypeHook'):
        pprb(torch.zeros(2, 3, 4), torch.zeros(2, 4, 3), torch.zeros(2, 3), (2, 2))
    with pytest.raises(ValueError, match='prototypes must be'):
        pprb.set_prototypes(torch.zeros(3, 4, 5), torch.ones(3), 5)
    with pytest.raises(ValueError, match='init_beta'):
        PPRB(3, 4, init_beta=1.5)
    with pytest.raises(ValueError, match='top_k'):
        PPRB(3, 4, top_k=0)


# ----------------------------------------------------------------------------
# the whole DSRB head loss vs the literal formulation through the real trunk
# ----------------------------------------------------------------------------
@pytest.fixture
def blending_phase():
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    keys = ('epoch', 'iter', 'max_iters', 'max_epochs')
    saved = {k: hub.get_info(k) for k in keys}
    for k, v in zip(keys, (6, 6 * 10 + 3, 200, 20)):
        hub.update_info(k, v)
    yield
    for k, v in saved.items():
        hub.update_info(k, v)


def test_dsrb_head_loss_equals_literal(blending_phase):
    from mmpretrain.structures import DataSample

    from mlrpl_mm.models.losses.instance_contrastive_loss import \
        instance_contrastive_loss
    B, C, CIN, D, H, W = 6, 5, 8, 12, 4, 4
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type='DSRBHead', num_classes=C, in_channels=CIN,
        trunk=dict(type='SemanticTrunk', feat_channels=D, inter_channels=8,
                   out_channels=10, avg_pool=False,
                   class_embedding=dict(type='LearnableClassEmbedding',
                                        embed_dims=6)),
        iprb=dict(type='IPRB', init_alpha=0.35),
        pprb=dict(type='PPRB', init_beta=0.6, top_k=2),
        contrastive_loss=dict(type='InstanceContrastiveLoss', loss_weight=0.05,
                              seed=3),
        iprb_weight=0.8, pprb_weight=1.2, pprb_seed=11))
    g = torch.Generator().manual_seed(2)
    head.set_label_graph(torch.rand(C, C, generator=g))
    proto_map = torch.randn(C, 4, H * W, D, generator=g) / (H * W)
    head.pprb.set_prototypes(proto_map.sum(2), torch.ones(C, dtype=torch.bool), 5)
    x = torch.randn(B, CIN, H, W, generator=g).requires_grad_()
    target = torch.randint(-1, 2, (B, C), generator=g).float()
    target[0], target[-1, :2] = 0, 1
    samples = []
    for b in range(B):
        ds = DataSample(metainfo=dict(sample_idx=b))
        ds.set_field(target[b].numpy().astype('int8'), 'partial_label')
        samples.append(ds)
    params = [x] + [p for p in head.parameters() if p.requires_grad]

    out = head.loss((x, ), samples)
    total = sum(v for k, v in out.items() if 'loss' in k)
    grads = torch.autograd.grad(total, params, allow_unused=True)

    xr = head.trunk.reduce(x)
    _, attn = head.trunk.decouple(xr)
    choices = head.pprb.sample_choices(target, torch.Generator().manual_seed(11))
    f_l, fi_l, yi_l, fp_l, yp_l, _, _ = literal_dsrb(
        xr, attn, target, proto_map, head.iprb.alpha, head.pprb.beta, choices,
        H, W)
    cls = head.trunk.classify
    ramp = 1.0  # epoch 6
    total_l = (partial_bce_with_logits(cls(f_l), target)
               + 0.8 * partial_bce_with_logits(cls(fi_l), yi_l)
               + 1.2 * partial_bce_with_logits(cls(fp_l), yp_l)
               + ramp * 0.05 * instance_contrastive_loss(
                   f_l, target, torch.Generator().manual_seed(3)))
    grads_l = torch.autograd.grad(total_l, params, allow_unused=True)
    torch.testing.assert_close(total, total_l, rtol=1e-5, atol=1e-6)
    n_checked = 0
    for a, b in zip(grads, grads_l):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
            n_checked += 1
    assert n_checked == len(params)  # alpha, beta and the input included
