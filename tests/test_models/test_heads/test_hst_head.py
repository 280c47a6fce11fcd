import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.losses import (asymmetric_loss, instance_contrastive_loss,
                                    partial_bce_with_logits)
from mlrpl_mm.models.losses.asymmetric_cooccurrence_loss import \
    pair_cooccurrence_targets
from mmpretrain.registry import MODELS

C = 4


def build(**kw):
    cfg = dict(type='HSTHead', num_classes=C, in_channels=6, feat_channels=5,
               inter_channels=3, out_channels=7,
               class_embedding=dict(type='LearnableClassEmbedding', embed_dims=4),
               instance_loss=dict(type='InstanceContrastiveLoss', seed=0))
    cfg.update(kw)
    return MODELS.build(cfg)


def samples(y):
    out = []
    for i, row in enumerate(y):
        ds = DataSample()
        ds.set_field(row.numpy(), 'partial_label')
        ds.set_metainfo(dict(sample_idx=i))
        out.append(ds)
    return out


def set_progress(epoch, it=0, iters_per_epoch=10):
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', epoch)
    hub.update_info('max_epochs', 20)
    hub.update_info('max_iters', 20 * iters_per_epoch)
    hub.update_info('iter', epoch * iters_per_epoch + it)


Y = torch.tensor([[1, 0, -1, 1], [1, 1, 0, -1], [0, -1, 1, 1]])


def test_phase1_losses_and_ramp():
    torch.manual_seed(0)
    head = build()
    x = (torch.randn(3, 6, 4, 4),)
    set_progress(0, it=5)
    losses = head.loss(x, samples(Y))
    assert set(losses) == {'loss_cls', 'loss_cooc', 'loss_instance'}
    out = head.trunk(x[0])
    q = head.ist(out['f'])
    t = pair_cooccurrence_targets(Y.float(), head.ist.pair_i, head.ist.pair_j)
    torch.testing.assert_close(losses['loss_cooc'], 10 * 0.5 * asymmetric_loss(q, t))
    torch.testing.assert_close(losses['loss_cls'],
                               partial_bce_with_logits(out['logits'], Y.float()))
    torch.testing.assert_close(
        losses['loss_instance'],
        0.05 * 0.5 * instance_contrastive_loss(out['f'], Y.float()), atol=1e-6, rtol=1e-5)
    set_progress(3)
    losses = head.loss(x, samples(Y))
    torch.testing.assert_close(losses['loss_cooc'], 10 * asymmetric_loss(q, t))


def test_phase2_full_loss_matches_spec():
    torch.manual_seed(1)
    head = build(ist=dict(type='IntraSemanticTransfer', margin_init=0.3),
                 cst=dict(type='CrossSemanticTransfer', num_prototypes=2,
                          margin_init=-0.5))
    x = (torch.randn(3, 6, 4, 4),)
    set_progress(6)
    with pytest.raises(RuntimeError, match='CSTPrototypeHook'):
        head.loss(x, samples(Y))
    head.cst.update_prototypes(torch.tensor([0, 0, 1, 3, 3, 3]), torch.randn(6, 5), 5)
    losses = head.loss(x, samples(Y))
    assert set(losses) == {'loss_cls', 'loss_cls_ist', 'loss_cls_cst', 'loss_cooc',
                           'loss_margin_ist', 'loss_margin_cst', 'loss_instance',
                           'loss_prototype', 'ist_new_pos', 'cst_new_pos',
                           'ist_margin', 'cst_margin'}
    # naive recomputation of every term from the spec
    out = head.trunk(x[0])
    logits, f, y = out['logits'], out['f'], Y.float()
    q = head.ist(f)
    ist = head.ist.pseudo_scores(q, y)
    # class 2 has no prototype: no inter pseudo label whatever the margin
    has_proto = (head.cst.prototype_count > 0).to(f.dtype)
    assert has_proto.tolist() == [1, 1, 0, 1]
    cst = torch.clamp(head.cst.similarity(f) + 0.5, 0, 1) * has_proto
    y_ist, y_cst = y.clone(), y.clone()
    for b in range(3):
        for c in range(C):
            if y[b, c] == 0 and ist[b, c] > 0:
                y_ist[b, c] = 1
            if y[b, c] == 0 and cst[b, c] > 0:
                y_cst[b, c] = 1
    d = head.cst.similarity(f)
    # the reference reduction (default average='all'): mean over all B x C
    # entries, 1 for an unknown entry or a class without prototypes
    terms = [1 + y[b, c] * d[b, c]
             if y[b, c] != 0 and head.cst.prototype_count[c] > 0
             else torch.ones((), dtype=d.dtype)
             for b in range(3) for c in range(C)]
    expected = dict(
        loss_cls=partial_bce_with_logits(logits, y),
        loss_cls_ist=partial_bce_with_logits(logits, y_ist),
        loss_cls_cst=partial_bce_with_logits(logits, y_cst),
        loss_margin_ist=0.1 * partial_bce_with_logits(ist, y),
        loss_margin_cst=0.1 * partial_bce_with_logits(cst, y),
        loss_prototype=0.05 * torch.stack(terms).mean())
    for k, v in expected.items():
        torch.testing.assert_close(losses[k], v, atol=1e-6, rtol=1e-5)
    assert losses['ist_new_pos'] == ((y == 0) & (ist > 0)).sum()
    # the learnable margins are logged as their current values
    assert float(losses['ist_margin']) == float(head.ist.margin)
    assert float(losses['cst_margin']) == -0.5 == float(head.cst.margin)
    assert not losses['ist_margin'].requires_grad
    assert losses['cst_new_pos'] == ((y == 0) & (cst > 0)).sum() > 0
    assert set(head.last_pseudo_labels) == {'sample_idx', 'ist', 'cst'}
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    assert head.ist.margin.grad is not None and head.cst.margin.grad is not None
    assert head.trunk.sd.fc1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('ist,cst', [(None, dict(type='CrossSemanticTransfer')),
                                     (dict(type='IntraSemanticTransfer'), None)])
def test_ablations(ist, cst):
    head = build(ist=ist, cst=cst)
    if cst is not None:
        head.cst.update_prototypes(torch.tensor([0, 1]), torch.randn(2, 5), 5)
    set_progress(5)
    keys = set(head.loss((torch.randn(3, 6, 4, 4),), samples(Y)))
    assert ('loss_cooc' in keys) == (ist is not None)
    assert ('loss_prototype' in keys) == (cst is not None)


def test_predict_and_errors():
    head = build()
    preds = head.predict((torch.randn(2, 6, 4, 4),))
    assert preds[0].pred_score.shape == (C,)
    assert ((preds[0].pred_score >= 0) & (preds[0].pred_score <= 1)).all()
    with pytest.raises(ValueError, match='loss_weights'):
        build(loss_weights=dict(bogus=1.0))
    with pytest.raises(ValueError, match='class-count mismatch'):
        set_progress(0)
        head.loss((torch.randn(2, 6, 4, 4),), samples(torch.ones(2, 3)))
    head.set_label_graph(torch.eye(C))
    assert torch.equal(head.state_dict()['trunk.adj'], torch.eye(C))


def test_ssgrl_head():
    head = MODELS.build(dict(type='SSGRLHead', num_classes=C, in_channels=6,
                             feat_channels=5, inter_channels=3, out_channels=7))
    x = (torch.randn(3, 6, 4, 4),)
    loss = head.loss(x, samples(Y))['loss_cls']
    torch.testing.assert_close(loss, partial_bce_with_logits(head(x), Y.float()))


def _naive_bce(logits, t):
    """Partial BCE, entry by entry: mean over t != 0 of BCE(t * x, 1)."""
    terms = [torch.nn.functional.softplus(-t[b, c] * logits[b, c])
             for b in range(t.shape[0]) for c in range(t.shape[1]) if t[b, c] != 0]
    return torch.stack(terms).mean()


def _naive_total(head, x, y, phase2, ramp):
    """docs/equations/hst.md's total loss from naive pieces (loops over pairs /
    classes)."""
    import os.path as osp
    import sys
    here = osp.dirname(osp.dirname(__file__))
    sys.path.insert(0, osp.join(here, 'test_layers'))
    sys.path.insert(0, osp.join(here, 'test_losses'))
    from test_instance_contrastive_loss import (naive_reference_mining,
                                                naive_terms_class_major)
    from test_intra_semantic_transfer import naive_q
    out = head.trunk(x)  # the trunk itself is checked against its naive form
    logits, f = out['logits'], out['f']
    B = y.shape[0]
    pairs = [(i, j) for i in range(C) for j in range(i + 1, C)]
    q = naive_q(head.ist, f)
    cooc = []
    for b in range(B):
        for k, (i, j) in enumerate(pairs):
            p = torch.sigmoid(q[b, k])
            if y[b, i] == 1 and y[b, j] == 1:
                cooc.append(-(1 - p) * torch.log(p.clamp(min=1e-8)))
            else:
                pn = torch.clamp(1 - p + 0.05, max=1)
                cooc.append(-(1 - pn) ** 2 * torch.log(pn.clamp(min=1e-8)))
    pp, pn, nn_ = naive_terms_class_major(f, y)
    g = torch.Generator().manual_seed(0)
    inst = torch.stack(pp + naive_reference_mining(pn, len(pp), g) +
                       naive_reference_mining(nn_, len(pp), g)).mean()
    total = _naive_bce(logits, y) + 10 * ramp * torch.stack(cooc).mean() + \
        0.05 * ramp * inst
    if not phase2:
        return total
    ist = torch.zeros(B, C, dtype=f.dtype)
    cst = torch.zeros(B, C, dtype=f.dtype)
    d = torch.zeros(B, C, dtype=f.dtype)
    P = head.cst.prototypes
    for b in range(B):
        pos = [j for j in range(C) if y[b, j] == 1]
        for c in range(C):
            s = 0
            for j in pos:
                s = s + (1.0 if j == c else torch.sigmoid(
                    q[b, pairs.index((min(c, j), max(c, j)))]))
            ist[b, c] = torch.clamp(s / max(1, len(pos)) - head.ist.margin, 0, 1)
            K = int(head.cst.prototype_count[c])
            if K:
                d[b, c] = torch.stack([torch.nn.functional.cosine_similarity(
                    f[b, c], P[c, k].to(f.dtype), dim=0) for k in range(K)]).mean()
                cst[b, c] = torch.clamp(d[b, c] - head.cst.margin, 0, 1)
    y_ist = torch.where((y == 0) & (ist > 0), torch.ones_like(y), y)
    y_cst = torch.where((y == 0) & (cst > 0), torch.ones_like(y), y)
    # reference reduction: every (b, c) counts, 1 where not kept
    proto = [1 + y[b, c] * d[b, c]
             if y[b, c] != 0 and head.cst.prototype_count[c] > 0
             else torch.ones((), dtype=d.dtype)
             for b in range(B) for c in range(C)]
    return total + _naive_bce(logits, y_ist) + _naive_bce(logits, y_cst) + \
        0.1 * _naive_bce(ist, y) + 0.1 * _naive_bce(cst, y) + \
        0.05 * torch.stack(proto).mean()


@pytest.mark.parametrize('epoch,it,ramp', [(0, 5, 0.5), (6, 3, 1.0)])
def test_total_loss_and_gradients_match_naive(epoch, it, ramp):
    """Sum of the loss terms of each phase (ramp in epoch 0, every term from
    epoch 5) and its gradient w.r.t. every parameter (margins included)."""
    torch.manual_seed(2)
    head = build(ist=dict(type='IntraSemanticTransfer', margin_init=0.3),
                 cst=dict(type='CrossSemanticTransfer', num_prototypes=2,
                          margin_init=-0.5)).double()
    head.set_label_graph(torch.rand(C, C))
    head.cst.update_prototypes(torch.tensor([0, 0, 1, 3, 3, 3]),
                               torch.randn(6, 5), 5)
    # the last row has no known positive: its ist scores are 0
    y = torch.tensor([[1, 0, -1, 1], [1, 1, 0, -1], [0, -1, 1, 1],
                      [-1, 1, 0, -1], [1, -1, -1, 0], [0, -1, 0, 0]]).double()
    x = torch.randn(6, 6, 4, 4, dtype=torch.float64)
    set_progress(epoch, it=it)
    params = [p for p in head.parameters() if p.requires_grad]
    head.instance_loss.generator.manual_seed(0)
    losses = head.loss((x, ), samples(y))
    total = sum(v for k, v in losses.items() if 'loss' in k)
    g1 = torch.autograd.grad(total, params, allow_unused=True)
    ref = _naive_total(head, x, y, epoch >= 5, ramp)
    g2 = torch.autograd.grad(ref, params, allow_unused=True)
    torch.testing.assert_close(total.double(), ref, atol=1e-6, rtol=1e-5)
    if epoch >= 5:  # both kinds of pseudo labels, and unknowns left unknown
        assert 0 < losses['ist_new_pos'] < (y == 0).sum()
        assert 0 < losses['cst_new_pos'] < (y == 0).sum()
    n_checked = 0
    for p, a, b in zip(params, g1, g2):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        torch.testing.assert_close(a.double(), b.double(), atol=1e-5, rtol=1e-5)
        n_checked += int(a.abs().sum() > 0)
    assert n_checked > 10
    if epoch >= 5:
        idx = {id(p): i for i, p in enumerate(params)}
        assert g1[idx[id(head.ist.margin)]] is not None
        assert g1[idx[id(head.cst.margin)]].abs() > 0
