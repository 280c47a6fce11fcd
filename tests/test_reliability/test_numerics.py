"""No NaN / inf from any registered mlrpl_mm loss or head on degenerate
batches: no known label at all, a class with no known positive, all
prototypes of a class empty, features exactly zero, extreme logits; and under
bf16 CPU autocast (what ``--amp`` uses without CUDA).

Every ``MODELS`` entry of mlrpl_mm whose name ends with ``Loss`` or ``Head``
must have a case here (``test_every_registered_loss_and_head_is_covered``),
so a new component cannot skip these checks."""
import itertools
from typing import Callable, Dict

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401

B, C, D = 4, 5, 8
SCENARIOS = ['no_known', 'no_positive_class', 'zero_features', 'extreme',
             'bf16']


def _registered(suffix: str):
    return sorted(n for n, cls in MODELS.module_dict.items()
                  if cls.__module__.startswith('mlrpl_mm')
                  and n.endswith(suffix))


def _target(scenario: str, gen: torch.Generator) -> torch.Tensor:
    t = torch.randint(-1, 2, (B, C), generator=gen).float()
    t[0, 0] = 1
    if scenario == 'no_known':
        t.zero_()
    elif scenario == 'no_positive_class':
        t[:, 1] = -1            # class 1: known negatives only
        t[:, 2] = 0             # class 2: nothing known
        t[3] = 0                # image 3: nothing known
    return t


def _logits(scenario: str, gen: torch.Generator) -> torch.Tensor:
    if scenario == 'zero_features':
        return torch.zeros(B, C)
    x = torch.randn(B, C, generator=gen)
    if scenario == 'extreme':
        x = x.sign() * 1e4
    return x


def _pairs():
    idx = list(itertools.combinations(range(C), 2))
    i = torch.tensor([a for a, _ in idx] + [b for _, b in idx])
    j = torch.tensor([b for _, b in idx] + [a for a, _ in idx])
    return i, j


def _feat(shape, scenario, gen):
    if scenario == 'zero_features':
        return torch.zeros(*shape)
    x = torch.randn(*shape, generator=gen)
    return x * 1e4 if scenario == 'extreme' else x


# name -> fn(loss_module, scenario, gen) returning (loss, leaf tensors)
LOSS_CASES: Dict[str, Callable] = {}


def _logit_loss(**kw):
    def run(m, s, g):
        x = _logits(s, g).requires_grad_()
        return m(x, _target(s, g), **kw), [x]
    return run


for _n in ['PartialBCELoss', 'PartialAsymmetricLoss', 'AssumeNegativeLoss',
           'WeakAssumeNegativeLoss', 'SPMLEMLoss', 'EMLoss',
           'SPMLRankingLoss', 'RankingLoss']:
    LOSS_CASES[_n] = _logit_loss()
LOSS_CASES['LargeLossRejectionLoss'] = _logit_loss(epoch=3)
LOSS_CASES['EMAPLLoss'] = _logit_loss(sample_idx=torch.arange(B))
LOSS_CASES['ROLELoss'] = _logit_loss(sample_idx=torch.arange(B))
#: constructor arguments of losses that have required ones
LOSS_ARGS = {'ROLELoss': dict(expected_num_pos=1.5)}


def _cooc(m, s, g):
    i, j = _pairs()
    x = _feat((B, len(i)), s, g).requires_grad_()
    return m(x, _target(s, g), i, j), [x]


def _instance(m, s, g):
    f = _feat((B, C, D), s, g).requires_grad_()
    return m(f, _target(s, g)), [f]


def _prototype(m, s, g):
    # all prototypes of classes 1 and 2 empty (invalid)
    sim = (torch.rand(B, C, generator=g) * 2 - 1) if s != 'zero_features' \
        else torch.zeros(B, C)
    sim.requires_grad_()
    valid = torch.tensor([True, False, False, True, True])
    return m(sim, _target(s, g), valid_class=valid), [sim]


def _distill(m, s, g):
    f = _feat((B, D), s, g).requires_grad_()
    return m(f, _feat((B, D), s, g)), [f]


LOSS_CASES.update(AsymmetricCooccurrenceLoss=_cooc,
                  InstanceContrastiveLoss=_instance,
                  PrototypeContrastiveLoss=_prototype,
                  SigRLL1DistillLoss=_distill, L1DistillLoss=_distill)


def _samples(target: torch.Tensor):
    out = []
    for i, row in enumerate(target):
        ds = DataSample(metainfo=dict(sample_idx=i))
        ds.set_field(row.to(torch.int8), 'partial_label')
        out.append(ds)
    return out


def _hst():
    head = MODELS.build(dict(
        type='HSTHead', num_classes=C, in_channels=D, feat_channels=8,
        inter_channels=8, out_channels=8, avg_pool=False,
        class_embedding=dict(type='LearnableClassEmbedding', embed_dims=4),
        cst=dict(type='CrossSemanticTransfer', num_prototypes=2, seed=0),
        instance_loss=dict(type='InstanceContrastiveLoss', seed=0),
        pseudo_label_epoch=1, ramp_epochs=1))
    # prototypes for classes 0, 3, 4 only (one of them from an all-zero
    # feature); every prototype of classes 1 and 2 is empty
    g = torch.Generator().manual_seed(1)
    classes = torch.tensor([0, 0, 3, 3, 3, 4])
    feats = torch.randn(len(classes), head.cst.in_channels, generator=g)
    feats[-1] = 0
    head.cst.update_prototypes(classes, feats, epoch=1)
    assert head.cst.prototype_count.tolist() == [2, 0, 0, 2, 1]
    return head


def _dsrb():
    head = MODELS.build(dict(
        type='DSRBHead', num_classes=C, in_channels=D,
        trunk=dict(type='SemanticTrunk', feat_channels=8, inter_channels=8,
                   out_channels=8, avg_pool=False,
                   class_embedding=dict(type='LearnableClassEmbedding',
                                        embed_dims=4)),
        blend_start_epoch=1, contrastive_ramp_epochs=1, pprb_seed=0))
    protos = torch.randn_like(head.pprb.prototypes)
    valid = torch.ones(C, dtype=torch.bool)
    valid[1:3] = False  # classes without any prototype
    protos[1:3] = 0
    head.pprb.set_prototypes(protos, valid, 1)
    return head


def _ssgrl():
    return MODELS.build(dict(
        type='SSGRLHead', num_classes=C, in_channels=D, feat_channels=8,
        inter_channels=8, out_channels=8, avg_pool=False,
        class_embedding=dict(type='LearnableClassEmbedding', embed_dims=4)))


def _sigrl():
    import os.path as osp
    import tempfile
    path = osp.join(tempfile.mkdtemp(), 'label_embed.npy')
    np.save(path, np.random.RandomState(0).randn(C, 16).astype(np.float32))
    return MODELS.build(dict(
        type='SigRLHead', label_embed_file=path, embed_dims=16, topk=2,
        gmc=dict(type='GMC', in_channels=16, hidden_channels=8, num_heads=2),
        svfr=dict(type='SVFR', embed_dims=16, class_chunk=2)))


def _cls():
    return MODELS.build(dict(type='PartialLabelClsHead', num_classes=C,
                             in_channels=D))


def _dualcoop():
    # tiny random-init CLIP text tower registered by mlrpl_mm (width 64)
    return MODELS.build(dict(
        type='DualCoOpHead', num_classes=C,
        class_names=[f'class {c}' for c in range(C)],
        prompt_learner=dict(type='DualPromptLearner', n_ctx=4,
                            text_encoder=dict(model_name='mlrpl-tiny-rn'))))


# name -> (builder, feature factory (scenario, gen) -> tuple of features)
HEAD_CASES = {
    'HSTHead': (_hst, lambda s, g: (_feat((B, D, 3, 3), s, g), )),
    'DSRBHead': (_dsrb, lambda s, g: (_feat((B, D, 4, 4), s, g), )),
    'SSGRLHead': (_ssgrl, lambda s, g: (_feat((B, D, 3, 3), s, g), )),
    'SigRLHead': (_sigrl, lambda s, g: (_feat((B, 6, 16), s, g),
                                        _feat((B, 16), s, g))),
    'PartialLabelClsHead': (_cls, lambda s, g: (_feat((B, D), s, g), )),
    # (region tokens (B, L, E), global token (B, E)) of a CLIP image tower
    'DualCoOpHead': (_dualcoop, lambda s, g: (_feat((B, 6, 64), s, g),
                                              _feat((B, 64), s, g))),
}


#: loss terms of the late phases that must be present (phase really active)
PHASE_KEYS = {'HSTHead': ['loss_prototype', 'loss_cls_ist', 'loss_cls_cst'],
              'DSRBHead': ['loss_iprb', 'loss_pprb']}


@pytest.fixture(autouse=True)
def _late_epoch():
    """Every phase active (pseudo labels, blending, prototypes)."""
    hub = MessageHub.get_current_instance()
    old = {k: hub.get_info(k) for k in ('epoch', 'iter', 'max_iters',
                                         'max_epochs')}
    hub.update_info('epoch', 5)
    hub.update_info('iter', 50)
    hub.update_info('max_iters', 100)
    hub.update_info('max_epochs', 10)
    yield
    for k, v in old.items():
        if v is not None:
            hub.update_info(k, v)


def _check(loss: torch.Tensor, leaves, params, what: str):
    assert loss.dim() == 0, what
    assert torch.isfinite(loss), f'{what}: loss {loss.item()}'
    loss.float().backward()
    for t in list(leaves) + list(params):
        if t.grad is not None:
            assert torch.isfinite(t.grad).all(), f'{what}: non-finite grad'


def test_every_registered_loss_and_head_is_covered():
    assert _registered('Loss') == sorted(LOSS_CASES), \
        'add the new loss to LOSS_CASES'
    assert _registered('Head') == sorted(HEAD_CASES), \
        'add the new head to HEAD_CASES'


@pytest.mark.parametrize('scenario', SCENARIOS)
@pytest.mark.parametrize('name', sorted(LOSS_CASES))
def test_loss_finite(name, scenario):
    gen = torch.Generator().manual_seed(0)
    m = MODELS.build(dict(type=name, **LOSS_ARGS.get(name, {})))
    if scenario == 'bf16':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            loss, leaves = LOSS_CASES[name](m, 'random', gen)
    else:
        loss, leaves = LOSS_CASES[name](m, scenario, gen)
    _check(loss, leaves, [], f'{name}/{scenario}')
    if scenario == 'no_known' and name in ('PartialBCELoss',
                                           'PartialAsymmetricLoss'):
        assert loss.item() == 0.0


@pytest.mark.parametrize('scenario', SCENARIOS)
@pytest.mark.parametrize('name', sorted(HEAD_CASES))
def test_head_loss_and_predict_finite(name, scenario):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    build, feats = HEAD_CASES[name]
    head = build()
    head.train()
    if hasattr(head, 'set_label_graph'):
        head.set_label_graph(torch.rand(C, C, generator=gen))
    s = 'random' if scenario == 'bf16' else scenario
    x = tuple(f.requires_grad_() for f in feats(s, gen))
    samples = _samples(_target(s, gen))
    if scenario == 'bf16':
        with torch.autocast('cpu', dtype=torch.bfloat16):
            losses = head.loss(x, samples)
    else:
        losses = head.loss(x, samples)
    terms = {k: v for k, v in losses.items() if 'loss' in k}
    assert terms, losses.keys()
    for k in PHASE_KEYS.get(name, []):
        assert k in terms, (k, list(terms))
    for k, v in losses.items():
        v = v if torch.is_tensor(v) else torch.tensor(float(v))
        assert torch.isfinite(v.float()).all(), f'{name}/{scenario}: {k}={v}'
    total = sum(v.float() for v in terms.values())
    _check(total, x, head.parameters(), f'{name}/{scenario}')
    head.eval()
    with torch.no_grad():
        preds = head.predict(tuple(f.detach() for f in x))
    scores = torch.stack([p.pred_score for p in preds])
    assert torch.isfinite(scores).all(), f'{name}/{scenario}: predict'
