"""SemanticTrunkHead family (SSGRL / HST / DSRB): one trunk shape, one
loss-weight convention, one ramp, pre_logits, old names still accepted."""
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.heads import (DSRBHead, HSTHead, SemanticTrunkHead,
                                   SSGRLHead)
from mlrpl_mm.utils import TrainProgress, linear_ramp

C, CIN = 4, 12
EMB = dict(type='LearnableClassEmbedding', embed_dims=6)
FLAT = dict(feat_channels=8, inter_channels=4, out_channels=10,
            avg_pool=False, class_embedding=EMB)
TYPES = ('SSGRLHead', 'HSTHead', 'DSRBHead')

#: top-level state_dict prefixes of today's heads (checkpoint layout)
PREFIXES = dict(SSGRLHead={'trunk'}, HSTHead={'trunk', 'ist', 'cst'},
                DSRBHead={'trunk', 'iprb', 'pprb'})


def _build(type_, nested=True, **kw):
    torch.manual_seed(0)
    cfg = dict(type=type_, num_classes=C, in_channels=CIN, **kw)
    if nested:
        cfg['trunk'] = dict(type='SemanticTrunk', **FLAT)
    else:
        cfg.update(FLAT)
    return MODELS.build(cfg)


@pytest.mark.parametrize('type_', TYPES)
def test_flat_and_nested_trunk_build_the_same_head(type_):
    flat, nested = _build(type_, nested=False), _build(type_)
    assert isinstance(nested, SemanticTrunkHead)
    sd_flat, sd = flat.state_dict(), nested.state_dict()
    assert list(sd_flat) == list(sd)
    assert {k.split('.')[0] for k in sd} == PREFIXES[type_]
    for k in sd:
        assert torch.equal(sd_flat[k], sd[k]), k
    # a checkpoint of either shape loads strictly into the other
    nested.load_state_dict(sd_flat, strict=True)
    assert nested.trunk.feat_channels == 8 and nested.trunk.inter_channels == 4


@pytest.mark.parametrize('type_', TYPES)
def test_flat_key_overrides_the_nested_one(type_):
    """An older child config's flat key over today's nested base config
    (mmengine merges both into one head dict): the flat value wins, as the
    child's override did before the trunk was nested."""
    head = _build(type_, feat_channels=6)
    assert head.trunk.feat_channels == 6
    assert head.trunk.inter_channels == FLAT['inter_channels']
    torch.manual_seed(0)
    same = MODELS.build(dict(type=type_, num_classes=C, in_channels=CIN,
                             **{**FLAT, 'feat_channels': 6}))
    sd, sd_same = head.state_dict(), same.state_dict()
    assert list(sd) == list(sd_same)
    assert all(torch.equal(sd[k], sd_same[k]) for k in sd)
    with pytest.raises(TypeError, match='unexpected'):
        _build(type_, bogus_arg=1)


def test_old_state_dict_layout_loads():
    """A state_dict with today's key names (incl. the gated GNN's older
    per-gate layout) loads into the restructured heads."""
    head = _build('HSTHead')
    sd = head.state_dict()
    old = dict(sd)
    D = 8
    for fused, parts in (('w_m', ('w_z', 'w_r', 'w_h')),
                         ('u_zr', ('u_z', 'u_r'))):
        for kind in ('weight', 'bias'):
            blocks = old.pop(f'trunk.gnn.{fused}.{kind}').split(D, 0)
            for p, b in zip(parts, blocks):
                old[f'trunk.gnn.{p}.{kind}'] = b.clone()
    fresh = _build('HSTHead')
    fresh.load_state_dict(old, strict=True)
    for k, v in sd.items():
        assert torch.equal(fresh.state_dict()[k], v), k


@pytest.mark.parametrize('type_', TYPES)
def test_pre_logits_is_what_the_classifier_consumes(type_):
    head = _build(type_)
    head.set_label_graph(torch.rand(C, C))
    x = (torch.randn(3, CIN, 4, 4), )
    o = head.pre_logits(x)
    assert o.shape == (3, C, 10)  # (B, C, O)
    assert torch.equal(head.trunk.classifier(o), head(x))
    assert torch.equal(head(x), head.trunk(x[0])['logits'])


@pytest.mark.parametrize('type_', TYPES)
def test_extract_feat_pre_logits_on_a_tiny_classifier(type_):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, num_stages=4,
                      out_indices=(3, ), base_channels=4, stem_channels=4,
                      strides=(1, 2, 2, 1)),
        head=dict(type=type_, num_classes=C, in_channels=32,
                  trunk=dict(type='SemanticTrunk', **FLAT))))
    model.eval()
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        o = model.extract_feat(inputs, stage='pre_logits')
        assert o.shape == (2, C, 10)
        logits = model.head.trunk.classifier(o)
        assert torch.equal(logits, model(inputs, mode='tensor'))


def test_partial_label_cls_head_pre_logits_via_extract_feat():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18, num_stages=4,
                      out_indices=(3, ), base_channels=4, stem_channels=4),
        head=dict(type='PartialLabelClsHead', num_classes=C,
                  in_channels=32)))
    model.eval()
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        x = model.extract_feat(inputs, stage='pre_logits')
        assert x.shape == (2, 32)  # (B, Cin), pooled
        assert torch.equal(model.head.fc(x), model(inputs, mode='tensor'))


def test_loss_weights_convention():
    assert SSGRLHead.DEFAULT_LOSS_WEIGHTS == dict(cls=1.0)
    assert DSRBHead.DEFAULT_LOSS_WEIGHTS == dict(cls=1.0, iprb=1.0, pprb=1.0,
                                                 instance=0.05)
    assert HSTHead.DEFAULT_LOSS_WEIGHTS['instance'] == 0.05
    for type_ in TYPES:
        with pytest.raises(ValueError, match='unknown loss_weights'):
            _build(type_, loss_weights=dict(bogus=1.0))
    head = _build('SSGRLHead', loss_weights=dict(cls=2.0))
    assert head.loss_weights == dict(cls=2.0)


def test_linear_ramp_formula():
    assert linear_ramp(TrainProgress(0, 0, 10), 1) == 0.0
    assert linear_ramp(TrainProgress(0, 4, 10), 1) == 0.4
    assert linear_ramp(TrainProgress(1, 5, 10), 2) == 0.75
    assert linear_ramp(TrainProgress(1, 0, 10), 1) == 1.0
    assert linear_ramp(TrainProgress(0, 3, 10), 0) == 1.0  # no ramp


def test_weighted_keeps_each_heads_evaluation_order():
    hst, dsrb = _build('HSTHead'), _build('DSRBHead')
    loss = torch.tensor(1.7)
    w, r = 0.05, 0.3
    assert torch.equal(hst.weighted('instance', loss, r), w * r * loss)
    assert torch.equal(dsrb.weighted('instance', loss, r), r * (w * loss))
    assert torch.equal(dsrb.weighted('instance', loss), w * loss)


def test_ssgrl_logs_loss_cls():
    from mmpretrain.structures import DataSample
    head = _build('SSGRLHead')
    ds = DataSample()
    ds.set_field(torch.tensor([1., -1., 0., 1.]).numpy(), 'partial_label')
    MessageHub.get_current_instance()
    out = head.loss((torch.randn(1, CIN, 4, 4), ), [ds])
    assert set(out) == {'loss_cls'}


def test_old_layer_registry_names_still_build():
    new = MODELS.build(dict(type='SSGRLGatedGNN', in_channels=5))
    old = MODELS.build(dict(type='GatedGNN', in_channels=5))
    assert type(old) is type(new)
    assert type(MODELS.build(dict(type='ElementWiseLinear', num_classes=3,
                                  in_channels=4))) is \
        MODELS.get('SSGRLElementWiseLinear')
    from mlrpl_mm.models.layers import (ElementWiseLinear, GatedGNN,
                                        SSGRLElementWiseLinear, SSGRLGatedGNN)
    assert GatedGNN is SSGRLGatedGNN
    assert ElementWiseLinear is SSGRLElementWiseLinear
