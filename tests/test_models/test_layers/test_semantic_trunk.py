import pytest
import torch
import torch.nn.functional as F

import mlrpl_mm  # noqa: F401
from mmpretrain.registry import MODELS


def build(**kw):
    cfg = dict(type='SemanticTrunk', num_classes=4, in_channels=6,
               feat_channels=5, inter_channels=3, out_channels=7,
               class_embedding=dict(type='LearnableClassEmbedding', embed_dims=4))
    cfg.update(kw)
    return MODELS.build(cfg)


def test_forward_matches_composition():
    torch.manual_seed(0)
    t = build().double().eval()
    adj = torch.rand(4, 4, dtype=torch.float64)
    t.set_label_graph(adj)
    x = torch.randn(2, 6, 4, 6, dtype=torch.float64)
    out = t(x)
    assert out['feat'].shape == (2, 5, 2, 3)
    assert out['f'].shape == (2, 4, 5) and out['attn'].shape == (2, 6, 4)
    # naive: pooling, conv, BN (eval), SD, GGNN, classifier
    feat = t.reduction(F.avg_pool2d(x, 2, 2))
    torch.testing.assert_close(out['feat'], feat)
    f, _ = t.sd(feat, t.class_embedding())
    h = t.gnn(f, adj)
    o = torch.tanh(torch.cat([h, f], 2) @ t.fc_out.weight.t() + t.fc_out.bias)
    logits = (o * t.classifier.weight).sum(-1) + t.classifier.bias
    torch.testing.assert_close(out['logits'], logits)
    assert t.classify(out['f'][:1]).shape == (1, 4)


def test_no_pool_and_adj_buffer_in_state_dict():
    t = build(avg_pool=False)
    assert t.reduce(torch.randn(1, 6, 3, 3)).shape == (1, 5, 3, 3)
    assert torch.equal(t.adj, torch.zeros(4, 4))
    t.set_label_graph(torch.eye(4))
    sd = t.state_dict()
    assert torch.equal(sd['adj'], torch.eye(4))
    t2 = build(avg_pool=False)
    t2.load_state_dict(sd)
    assert torch.equal(t2.adj, torch.eye(4))


def test_clear_errors():
    t = build()
    with pytest.raises(ValueError, match=r'\(B, 6, H, W\).*\(2, 8\)'):
        t.reduce(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r'\(1, 3, 4, 4\)'):
        t.reduce(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match='avg_pool'):
        t.reduce(torch.randn(1, 6, 1, 1))
    with pytest.raises(ValueError, match='label graph'):
        t.set_label_graph(torch.zeros(3, 3))
    with pytest.raises(ValueError, match='NaN'):
        t.set_label_graph(torch.full((4, 4), float('nan')))


def test_trunk_matches_naive_equations_forward_and_grad():
    """Pool + 1x1 conv + BN (eval), SD (the literal (B, N, C, I) / (B, N, C, D)
    form), the gated GNN one class at a time and the classifier
    o_c = tanh(Wo [h_c; f_c] + bo), logit_c = <u_c, o_c> + e_c; forward and
    gradients of every parameter and the input, float64, 1e-5."""
    import sys
    import os.path as osp
    sys.path.insert(0, osp.dirname(__file__))
    from test_gated_gnn_and_classifier import naive_ggnn
    from test_semantic_decoupling import naive_sd
    torch.manual_seed(4)
    t = build(sd_chunk_size=3).double().eval()
    t.set_label_graph(torch.rand(4, 4, dtype=torch.float64))
    x = torch.randn(2, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    gl = torch.randn(2, 4, dtype=torch.float64)
    params = [p for p in t.parameters() if p.requires_grad]
    out = t(x)['logits']
    g1 = torch.autograd.grad((out * gl).sum(), params + [x])

    conv, bn = t.reduction
    p = F.avg_pool2d(x, 2, 2)
    feat = F.conv2d(p, conv.weight)
    feat = (feat - bn.running_mean[:, None, None]) / torch.sqrt(
        bn.running_var[:, None, None] + bn.eps) * bn.weight[:, None, None] + \
        bn.bias[:, None, None]
    f, _, _ = naive_sd(t.sd, feat, t.class_embedding())
    h = naive_ggnn(t.gnn, f, t.adj)
    logits = torch.zeros(2, 4, dtype=torch.float64)
    rows = []
    for b in range(2):
        row = []
        for c in range(4):
            o = torch.tanh(t.fc_out.weight @ torch.cat([h[b, c], f[b, c]]) + t.fc_out.bias)
            row.append(t.classifier.weight[c] @ o + t.classifier.bias[c])
        rows.append(torch.stack(row))
    logits = torch.stack(rows)
    g2 = torch.autograd.grad((logits * gl).sum(), params + [x], allow_unused=True)
    torch.testing.assert_close(out, logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(g1, g2):
        b = torch.zeros_like(a) if b is None else b
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_checkpoint_with_per_gate_gnn_keys_loads():
    """A trunk checkpoint from before the fused gated GNN (keys
    gnn.w_z.weight ... gnn.u_r.bias) loads strictly and gives the same
    logits."""
    torch.manual_seed(6)
    t = build().eval()
    t.set_label_graph(torch.rand(4, 4))
    sd = t.state_dict()
    D = t.feat_channels
    legacy = {k: v for k, v in sd.items()
              if not k.startswith(('gnn.w_m.', 'gnn.u_zr.'))}
    for fused, parts in (('w_m', ('w_z', 'w_r', 'w_h')), ('u_zr', ('u_z', 'u_r'))):
        for kind in ('weight', 'bias'):
            for k, name in enumerate(parts):
                legacy[f'gnn.{name}.{kind}'] = sd[f'gnn.{fused}.{kind}'][k * D:(k + 1) * D]
    t2 = build().eval()
    t2.load_state_dict(legacy, strict=True)
    x = torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(t2(x)['logits'], t(x)['logits'])
