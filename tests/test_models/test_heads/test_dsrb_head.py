"""DSRBHead: phases, loss of docs/equations/dsrb.md, batched branches,
ablations, hooks."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.losses.instance_contrastive_loss import \
    instance_contrastive_loss
from mlrpl_mm.models.losses.partial_bce_loss import partial_bce_with_logits

C, CIN, D = 5, 8, 16


def head_cfg(**kw):
    cfg = dict(
        type='DSRBHead', num_classes=C, in_channels=CIN,
        trunk=dict(type='SemanticTrunk', feat_channels=D, inter_channels=8,
                   out_channels=12, avg_pool=False,
                   class_embedding=dict(type='LearnableClassEmbedding',
                                        embed_dims=6)),
        pprb_seed=0)
    cfg.update(kw)
    return cfg


def make_head(**kw):
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(**kw))
    head.set_label_graph(torch.rand(C, C))
    if head.pprb is not None:
        head.pprb.set_prototypes(torch.randn(C, 4, D),
                                 torch.ones(C, dtype=torch.bool), 5)
    return head


def batch(B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, CIN, 4, 4, generator=g)
    target = torch.randint(-1, 2, (B, C), generator=g).float()
    target[0] = 0
    target[-1, :3] = 1
    samples = []
    for b in range(B):
        ds = DataSample(metainfo=dict(sample_idx=b))
        ds.set_field(target[b].numpy().astype('int8'), 'partial_label')
        samples.append(ds)
    return (x,), samples, target


@pytest.fixture
def progress():
    hub = MessageHub.get_current_instance()
    saved = {k: hub.get_info(k) for k in ('epoch', 'iter', 'max_iters', 'max_epochs')}

    def set_progress(epoch, inner=0, ipe=10, max_epochs=20):
        hub.update_info('epoch', epoch)
        hub.update_info('iter', epoch * ipe + inner)
        hub.update_info('max_epochs', max_epochs)
        hub.update_info('max_iters', ipe * max_epochs)
    yield set_progress
    for k, v in saved.items():
        hub.update_info(k, v)


def test_warmup_phase_terms_and_instance_ramp(progress):
    head = make_head(instance_loss=dict(type='InstanceContrastiveLoss',
                                        seed=1))
    feats, samples, target = batch()
    progress(0, inner=0)
    out = head.loss(feats, samples)
    assert set(out) == {'loss_cls', 'loss_instance'}
    assert float(out['loss_instance'].detach()) == 0.0  # ramp starts at 0
    progress(0, inner=4)
    out = head.loss(feats, samples)
    f, _, _, _ = head.class_features(feats)
    raw = instance_contrastive_loss(f, target, torch.Generator().manual_seed(1))
    # the loss's generator advanced by one call; recompute with a fresh one
    head.instance_loss.generator.manual_seed(1)
    out = head.loss(feats, samples)
    torch.testing.assert_close(out['loss_instance'], 0.4 * 0.05 * raw)
    torch.testing.assert_close(
        out['loss_cls'], partial_bce_with_logits(head.trunk.classify(f), target))
    progress(3, inner=4)
    head.instance_loss.generator.manual_seed(1)
    out = head.loss(feats, samples)
    torch.testing.assert_close(out['loss_instance'], 0.05 * raw)
    assert 'loss_iprb' not in out and 'loss_pprb' not in out


@pytest.mark.parametrize('epoch,inner', [(0, 3), (0, 7), (5, 2)])
def test_old_argument_names_give_the_same_bits(progress, epoch, inner):
    """contrastive_loss (+ its loss_weight), contrastive_ramp_epochs,
    iprb_weight / pprb_weight: the old names map to instance_loss,
    ramp_epochs and loss_weights with bit-identical losses."""
    progress(epoch, inner=inner, ipe=10)
    old = make_head(contrastive_loss=dict(type='InstanceContrastiveLoss',
                                          loss_weight=0.05, seed=1),
                    contrastive_ramp_epochs=1, iprb_weight=0.7,
                    pprb_weight=1.3)
    new = make_head(instance_loss=dict(type='InstanceContrastiveLoss', seed=1),
                    ramp_epochs=1,
                    loss_weights=dict(iprb=0.7, pprb=1.3, instance=0.05))
    assert old.loss_weights == new.loss_weights
    assert old.instance_loss.loss_weight == 1.0
    feats, samples, _ = batch(B=5, seed=3)
    old.generator.manual_seed(0)
    new.generator.manual_seed(0)
    a, b = old.loss(feats, samples), new.loss(feats, samples)
    assert list(a) == list(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # without the old loss_weight the term had weight 1
    plain = make_head(contrastive_loss=dict(type='InstanceContrastiveLoss'))
    assert plain.loss_weights['instance'] == 1.0
    assert make_head(contrastive_loss=None).instance_loss is None


@pytest.mark.parametrize('kw, check', [
    (dict(contrastive_loss=None, instance_loss=dict(
        type='InstanceContrastiveLoss')), lambda h: h.instance_loss is None),
    (dict(iprb_weight=0.5, loss_weights=dict(iprb=0.7)),
     lambda h: h.loss_weights['iprb'] == 0.5),
    (dict(contrastive_loss=dict(type='InstanceContrastiveLoss',
                                loss_weight=0.1),
          loss_weights=dict(instance=0.05)),
     lambda h: h.loss_weights['instance'] == 0.1),
    (dict(contrastive_ramp_epochs=2, ramp_epochs=1),
     lambda h: h.ramp_epochs == 2),
    (dict(feat_channels=D + 2),  # also inside trunk=dict(...)
     lambda h: h.trunk.feat_channels == D + 2),
])
def test_old_name_over_a_new_base_config_wins(kw, check):
    """An older child config (old names) merged over today's base config
    (new names): the old value wins, as the child's override did before."""
    assert check(MODELS.build(head_cfg(**kw)))


def test_blending_phase_loss_equals_direct_computation(progress):
    progress(5, inner=2)
    head = make_head(loss_weights=dict(iprb=0.7, pprb=1.3), instance_loss=None)
    feats, samples, target = batch(B=5, seed=3)
    out = head.loss(feats, samples)
    assert set(out) >= {'loss_cls', 'loss_iprb', 'loss_pprb', 'iprb_alpha',
                        'pprb_beta'}
    # direct computation with the same PPRB draws
    head.generator.manual_seed(0)
    f, _, energy, hw = head.class_features(feats)
    fi, yi, mi = head.iprb(f, target)
    fp, yp, mp, _ = head.pprb(f, energy, target, hw, generator=head.generator)
    assert mi.any() and mp.any()
    torch.testing.assert_close(out['loss_iprb'], 0.7 * partial_bce_with_logits(
        head.trunk.classify(fi), yi))
    torch.testing.assert_close(out['loss_pprb'], 1.3 * partial_bce_with_logits(
        head.trunk.classify(fp), yp))


def test_batched_branches_equal_separate(progress):
    progress(7)
    feats, samples, _ = batch(B=6, seed=4)
    res = []
    for batched in (True, False):
        head = make_head(batch_branches=batched)
        x = feats[0].clone().requires_grad_()
        out = head.loss((x, ), samples)
        total = sum(v for k, v in out.items() if 'loss' in k)
        params = [x, head.iprb.alpha, head.pprb.beta,
                  head.trunk.gnn.parameters().__next__()]
        res.append((out, torch.autograd.grad(total, params)))
    (o1, g1), (o2, g2) = res
    for k in o1:
        torch.testing.assert_close(o1[k], o2[k], rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('batched,fill', [(True, True), (False, True),
                                          (True, False)])
def test_skip_unblended_images_is_exact(progress, batched, fill):
    """Images without a blended entry reuse the plain logits: same losses and
    gradients as classifying every image of every branch."""
    progress(6)
    feats, samples, _ = batch(B=6, seed=5)
    t = torch.tensor([[0, 0, 0, 0, 0],      # partner 5: IPRB on 0, 1
                      [1, -1, 1, -1, 1],    # no unknown: no blend at all
                      [0, -1, 0, -1, 0],    # partner 3 has no +1: no IPRB
                      [-1, -1, -1, -1, 0],  # partner 2 has no +1: no IPRB
                      [0, 1, 0, 0, -1],     # partner 1: IPRB on 0, 2
                      [1, 1, -1, -1, -1]], dtype=torch.int8)  # no unknown
    for ds, y in zip(samples, t):
        ds.set_field(y.numpy(), 'partial_label')
    res = []
    for skip in (True, False):
        head = make_head(batch_branches=batched, skip_unblended=skip,
                         instance_loss=None,
                         pprb=dict(type='PPRB', fill_known=fill))
        x = feats[0].clone().requires_grad_()
        if skip:  # count the rows that reach the GNN
            seen = []
            head.trunk.gnn.register_forward_hook(
                lambda m, i, o: seen.append(i[0].shape[0]))
        out = head.loss((x, ), samples)
        total = sum(v for k, v in out.items() if 'loss' in k)
        params = [x, head.iprb.alpha, head.pprb.beta] + \
            list(head.trunk.gnn.parameters())
        res.append((out, torch.autograd.grad(total, params)))
        if skip:
            # plain 6 + IPRB images {0, 4} + PPRB: every image with the
            # reference default fill_known=True (1 and 5 have no unknown
            # label and blend a known class); with fill_known=False only
            # those with an unknown {0, 2, 3, 4}
            assert head.iprb.blend_mask(t.float()).any(1).tolist() == \
                [True, False, False, False, True, False]
            assert sum(seen) == 6 + 2 + (6 if fill else 4)
    (o1, g1), (o2, g2) = res
    for k in o1:
        torch.testing.assert_close(o1[k], o2[k], rtol=1e-5, atol=1e-6)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('iprb,pprb', [(None, dict(type='PPRB')),
                                       (dict(type='IPRB'), None),
                                       (None, None)])
def test_ablations(progress, iprb, pprb):
    progress(6)
    head = make_head(iprb=iprb, pprb=pprb)
    feats, samples, _ = batch()
    out = head.loss(feats, samples)
    assert ('loss_iprb' in out) == (iprb is not None)
    assert ('loss_pprb' in out) == (pprb is not None)


def test_predict_is_plain_classifier_and_label_graph(progress):
    progress(8)
    head = make_head()
    feats, samples, _ = batch()
    adj = torch.rand(C, C)
    head.set_label_graph(adj)
    assert torch.equal(head.trunk.adj, adj)
    head.eval()
    preds = head.predict(feats, samples)
    f, _, _, _ = head.class_features(feats)
    expected = torch.sigmoid(head.trunk.classify(f))
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]),
                               expected)


def test_buffers_in_state_dict_and_errors():
    head = make_head()
    sd = head.state_dict()
    for k in ('pprb.prototypes', 'pprb.prototype_valid', 'pprb.prototype_epoch',
              'trunk.adj'):
        assert k in sd
    head2 = MODELS.build(head_cfg())
    assert int(head2.pprb.prototype_epoch) == -1
    head2.load_state_dict(sd)
    assert int(head2.pprb.prototype_epoch) == 5
    assert torch.equal(head2.pprb.prototypes, head.pprb.prototypes)
    feats, samples, _ = batch()
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(head_cfg(num_classes=C + 1)).loss(feats, samples)


def test_clamp_hook_after_optimizer_step(progress):
    progress(5)
    head = make_head()
    opt = torch.optim.SGD(head.parameters(), lr=100.0)
    feats, samples, _ = batch(B=6, seed=2)
    hook = HOOKS.build(dict(type='BlendWeightClampHook'))
    runner = SimpleNamespace(model=torch.nn.ModuleDict(dict(head=head)))
    for _ in range(2):
        out = head.loss(feats, samples)
        opt.zero_grad()
        sum(v for k, v in out.items() if 'loss' in k).backward()
        assert head.iprb.alpha.grad.abs() > 0 and head.pprb.beta.grad.abs() > 0
        opt.step()
        hook.after_train_iter(runner, 0)
        for v in (head.iprb.alpha, head.pprb.beta):
            assert 0.0 <= float(v.detach()) <= 1.0
    # without the hook the next forward refuses out-of-range weights
    with torch.no_grad():
        head.pprb.beta.fill_(-0.5)
    with pytest.raises(ValueError, match='outside'):
        head.loss(feats, samples)
