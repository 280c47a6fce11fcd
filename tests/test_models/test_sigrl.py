"""SigRL modules against direct implementations of the equations in
../shared/specs/sigrl.md (GATv2 attention, SDA, Q/T, VFR, scores)."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401

TINY_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8,
                    head_width=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                  layers=1))


def naive_gatv2(x, lin_w, attn, heads, feat, adj, concat):
    """e^h_ij = a_h^T LeakyReLU_0.2(W x_i + W x_j) (a_h = a for every head
    when ``attn`` has one row), softmax over the neighbours j."""
    n = x.shape[0]
    g = (x @ lin_w.t()).view(n, heads, feat)
    e = torch.empty(n, n, heads, dtype=x.dtype)
    for i in range(n):
        for j in range(n):
            for h in range(heads):
                a = attn[0] if attn.shape[0] == 1 else attn[h]
                e[i, j, h] = (F.leaky_relu(g[i, h] + g[j, h], 0.2) * a).sum()
    mask = torch.ones(n, n, dtype=torch.bool) if adj is None else \
        (adj > 0) | torch.eye(n, dtype=torch.bool)
    e = e.masked_fill(~mask[..., None], float('-inf'))
    alpha = torch.softmax(e, dim=1)
    out = torch.einsum('ijh,jhf->ihf', alpha, g)
    return out.reshape(n, -1) if concat else out.mean(1)


def naive_gmc(gmc, x, adj=None):
    l1, l2 = gmc.layer1, gmc.layer2
    h = F.elu(naive_gatv2(x, l1.linear.weight, l1.attn, l1.num_heads,
                          l1.out_features, adj, True))
    return naive_gatv2(h, l2.linear.weight, l2.attn, 1, l2.out_features, adj,
                       False)


def naive_svfr(m, P, E, H):
    """The (B, L, C, D) form of sigrl.md, with the explicit concatenation."""
    B, L, D = P.shape
    C = E.shape[0]
    P4 = P[:, :, None, :].expand(B, L, C, D)
    u = m.sda_fc(torch.tanh(P4 * E[None, None]))
    M = (torch.softmax(u, dim=1) * P4).sum(1)                      # (B, C, D)
    Q = F.normalize(F.relu(M.transpose(1, 2) @ E), dim=-1)        # (B, D, D)
    T = M @ Q
    O = m.fuse(torch.cat([T, H[None].expand(B, C, D)], -1))
    v = m.vfr_fc(torch.tanh(P4 * O[:, None]))
    return P * torch.softmax(v, dim=1).sum(2)


@pytest.mark.parametrize('share', [True, False])
def test_gmc_matches_naive_gatv2_forward_and_grad(share):
    torch.manual_seed(0)
    gmc = MODELS.build(dict(type='GMC', in_channels=8, hidden_channels=8,
                            num_heads=2, dropout=0.0, node_chunk=2,
                            share_attention=share)).double()
    # one attention vector shared by the heads (the reference) or one each
    assert gmc.layer1.attn.shape == ((1, 4) if share else (2, 4))
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    adj = (torch.rand(5, 5) > 0.5).double()
    for a in (None, adj):
        out = gmc(x, a)
        ref = naive_gmc(gmc, x, a)
        assert out.shape == (5, 8)
        torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-7)
        w = torch.randn_like(out)
        g1 = torch.autograd.grad((out * w).sum(), [x, gmc.layer1.attn,
                                                   gmc.layer2.linear.weight])
        g2 = torch.autograd.grad((ref * w).sum(), [x, gmc.layer1.attn,
                                                   gmc.layer2.linear.weight])
        for a1, a2 in zip(g1, g2):
            torch.testing.assert_close(a1, a2, atol=1e-10, rtol=1e-7)


def test_gmc_reference_size_and_errors():
    gmc = MODELS.build(dict(type='GMC'))
    # labml_nn GATv2 of the reference: 512*128 + 32 + 128*512 + 512
    assert sum(p.numel() for p in gmc.parameters()) == 131616
    assert sum(p.numel() for p in MODELS.build(dict(
        type='GMC', share_attention=False)).parameters()) == 131712
    # D -> 4 heads x 32 (concat) -> D, shared W without bias, dropout 0.3
    # on the input, the hidden features and both layers' attention
    assert (gmc.layer1.num_heads, gmc.layer1.out_features) == (4, 32)
    assert gmc.layer1.concat and not gmc.layer2.concat
    assert (gmc.layer2.num_heads, gmc.layer2.out_features) == (1, 512)
    for layer in (gmc.layer1, gmc.layer2):
        assert layer.linear.bias is None and layer.negative_slope == 0.2
        assert layer.attn_drop.p == 0.3
    assert gmc.dropout.p == 0.3
    # dropout is active in training (input, hidden, attention) and off in
    # eval
    x = torch.randn(6, 512)
    gmc.train()
    torch.manual_seed(0)
    a = gmc(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, gmc(x))
    gmc.eval()
    torch.testing.assert_close(gmc(x), gmc(x))
    assert gmc(torch.randn(7, 512)).shape == (7, 512)
    with pytest.raises(ValueError, match='adjacency'):
        gmc(torch.randn(3, 512), torch.ones(4, 4))
    with pytest.raises(ValueError, match='divisible'):
        MODELS.build(dict(type='GMC', hidden_channels=10, num_heads=4))


@pytest.mark.parametrize('chunk,ckpt', [(1, True), (2, False), (16, True)])
def test_svfr_matches_naive_forward_and_grad(chunk, ckpt):
    torch.manual_seed(0)
    m = MODELS.build(dict(type='SVFR', embed_dims=6, class_chunk=chunk,
                          use_checkpoint=ckpt)).double()
    P = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    E = F.normalize(torch.randn(3, 6, dtype=torch.float64), dim=-1)
    E.requires_grad_(True)
    H = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    out = m(P, E, H)
    ref = naive_svfr(m, P, E, H)
    assert out.shape == (2, 5, 6)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-7)
    w = torch.randn_like(out)
    params = [P, E, H, m.sda_fc.weight, m.fuse.weight, m.vfr_fc.bias]
    g1 = torch.autograd.grad((out * w).sum(), params)
    g2 = torch.autograd.grad((ref * w).sum(), params)
    for a1, a2 in zip(g1, g2):
        torch.testing.assert_close(a1, a2, atol=1e-10, rtol=1e-7)


def test_sda_is_a_channel_wise_softmax_over_patches():
    """M_bc = sum_l softmax_l(W_s tanh(P_bl * E_c) + b_s) * P_bl, written
    with explicit loops over (b, c)."""
    torch.manual_seed(0)
    m = MODELS.build(dict(type='SVFR', embed_dims=4, class_chunk=2)).double()
    P = torch.randn(2, 3, 4, dtype=torch.float64)
    E = torch.randn(5, 4, dtype=torch.float64)
    M = m.semantic_features(P, E)
    W, bias = m.sda_fc.weight, m.sda_fc.bias
    for b in range(2):
        for c in range(5):
            u = torch.tanh(P[b] * E[c]) @ W.t() + bias           # (L, D)
            a = torch.exp(u) / torch.exp(u).sum(0, keepdim=True)  # over l
            torch.testing.assert_close(M[b, c], (a * P[b]).sum(0))


def test_svfr_float32_chunked_equals_unchunked():
    torch.manual_seed(1)
    m = MODELS.build(dict(type='SVFR', embed_dims=16, class_chunk=3))
    P = torch.randn(3, 7, 16, requires_grad=True)
    E = F.normalize(torch.randn(10, 16), dim=-1)
    H = torch.randn(10, 16)
    out = m(P, E, H)
    g = torch.autograd.grad(out.square().sum(), P)[0]
    m.class_chunk = 100
    out2 = m(P, E, H)
    g2 = torch.autograd.grad(out2.square().sum(), P)[0]
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g, g2, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='SVFR'):
        m(P, E, torch.randn(9, 16))


def _tiny_head(**kw):
    cfg = dict(type='SigRLHead', class_names=['cat', 'dog', 'car'],
               text_encoder=dict(model_cfg=TINY_CLIP), embed_dims=32, topk=3,
               gmc=dict(type='GMC', in_channels=32, hidden_channels=16,
                        num_heads=2),
               svfr=dict(type='SVFR', embed_dims=32, class_chunk=2))
    cfg.update(kw)
    return MODELS.build(cfg)


def test_head_scores_match_formula():
    torch.manual_seed(0)
    head = _tiny_head().eval()
    P = torch.randn(2, 5, 32)
    g = torch.randn(2, 32)
    E = head.train_embed
    score = head((P, g))
    rec = head.svfr(P, E, head.gmc(E))
    sim = rec @ E.t()                                   # (B, L, C)
    local = sim.sort(dim=1, descending=True).values[:, :3].mean(1)
    glob = g @ E.t()
    ref = (local / local.norm(dim=1, keepdim=True) +
           glob / glob.norm(dim=1, keepdim=True)) / 2
    torch.testing.assert_close(score, ref, atol=1e-6, rtol=1e-5)
    preds = head.predict((P, g))
    torch.testing.assert_close(preds[0].pred_score, torch.sigmoid(ref[0]))
    assert torch.allclose(E.norm(dim=1), torch.ones(3))


def test_head_topk_is_capped_at_L_and_logit_scale_multiplies():
    torch.manual_seed(0)
    head = _tiny_head(topk=16, logit_scale=2.5).eval()
    P, g = torch.randn(2, 5, 32), torch.randn(2, 32)
    E = head.train_embed
    rec = head.svfr(P, E, head.gmc(E))
    local = (rec @ E.t()).mean(1)          # k = min(16, L = 5): all patches
    glob = g @ E.t()
    ref = 2.5 * (local / local.norm(dim=1, keepdim=True) +
                 glob / glob.norm(dim=1, keepdim=True)) / 2
    torch.testing.assert_close(head((P, g)), ref, atol=1e-6, rtol=1e-5)
    out = head.predict((P, g))
    torch.testing.assert_close(out[1].pred_score, torch.sigmoid(ref[1]))
    head.score_activation = 'none'     # zero-shot: raw scores
    torch.testing.assert_close(head.predict((P, g))[1].pred_score, ref[1])


def test_head_embeddings_are_deterministic_and_swappable(tmp_path):
    h1, h2 = _tiny_head(), _tiny_head()
    torch.testing.assert_close(h1.train_embed, h2.train_embed)
    # from a file; the test label set replaces the training one in eval mode
    emb = torch.randn(4, 32)
    np.save(tmp_path / 'e.npy', emb.numpy())
    head = _tiny_head(test_label_embed_file=str(tmp_path / 'e.npy'),
                      zsl_class_indices=[2, 3], score_activation='none')
    P, g = torch.randn(2, 5, 32), torch.randn(2, 32)
    head.train()
    assert head((P, g)).shape == (2, 3)
    head.eval()
    out = head.predict((P, g))
    assert out[0].pred_score.shape == (4,)
    zsl = head.scores(P, g, head.test_embed[[2, 3]])
    torch.testing.assert_close(out[1].zsl_pred_score, zsl[1])
    head.set_test_classes(label_embed=torch.randn(6, 32))
    assert head.predict((P, g))[0].pred_score.shape == (6,)
    with pytest.raises(ValueError, match='rows'):
        _tiny_head(label_embed_file=str(tmp_path / 'e.npy'))
    with pytest.raises(FileNotFoundError, match='missing.npy'):
        _tiny_head(label_embed_file=str(tmp_path / 'missing.npy'))
    with pytest.raises(ValueError, match='embed_dims'):
        _tiny_head(embed_dims=16)


def _samples(labels):
    out = []
    for i, row in enumerate(labels):
        ds = DataSample(metainfo=dict(sample_idx=i))
        ds.set_field(np.asarray(row, np.int8), 'partial_label')
        out.append(ds)
    return out


def test_backbone_teacher_distill_and_trainable():
    torch.manual_seed(0)
    bb = MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                           with_teacher=True, trainable=1))
    x = torch.randn(2, 3, 32, 32)
    bb.train()
    t, P, g = bb(x)
    assert P.shape == (2, 16, 32) and g.shape == (2, 32)
    torch.testing.assert_close(t, g)            # teacher = initial tower
    # CLS/patch tokens = ln_post(tokens) @ proj (open_clip's own pooled output)
    torch.testing.assert_close(g, bb.visual(x), atol=1e-5, rtol=1e-5)
    trainable = {n for n, p in bb.named_parameters() if p.requires_grad}
    assert all(n.startswith(('visual.transformer.resblocks.1.',
                             'visual.ln_post', 'visual.proj'))
               for n in trainable) and 'visual.proj' in trainable
    assert not any(p.requires_grad for p in bb.teacher.parameters())
    bb.eval()
    assert len(bb(x)) == 2
    assert bb.get_layer_depth('backbone.visual.conv1.weight', 'backbone.') == (0, 4)
    assert bb.get_layer_depth('backbone.visual.transformer.resblocks.1.mlp.c_fc.weight',
                              'backbone.') == (2, 4)
    assert bb.get_layer_depth('head.gmc.layer1.attn', 'backbone.') == (3, 4)
    head = _tiny_head(distill_loss=dict(type='L1DistillLoss'))
    losses = head.loss((t, P, g), _samples([[1, 0, 0], [0, 0, 1]]))
    assert set(losses) == {'loss_cls', 'loss_distill'}
    with pytest.raises(ValueError, match='with_teacher'):
        head.loss((P, g), _samples([[1, 0, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match='trainable'):
        MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                          trainable=5))
    with pytest.raises(ValueError, match='pretrained'):
        MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                          pretrained='openai'))


def test_backbone_patch_tokens_are_ln_post_times_proj():
    torch.manual_seed(0)
    bb = MODELS.build(dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP))
    bb.eval()
    x = torch.randn(2, 3, 32, 32)
    P, g = bb(x)
    # open_clip's own forward: pooled (CLS after ln_post) @ proj and the
    # ln_post patch tokens (unprojected)
    bb.visual.output_tokens = True
    pooled, tokens = bb.visual(x)
    bb.visual.output_tokens = False
    torch.testing.assert_close(g, pooled, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(P, tokens @ bb.visual.proj, atol=1e-5,
                               rtol=1e-5)
    assert P.shape == (2, 16, 32)


def test_quick_gelu_follows_the_openai_weights(monkeypatch, tmp_path):
    import open_clip
    from open_clip.transformer import QuickGELU

    from mlrpl_mm.models.backbones.open_clip_backbone import \
        resolve_quick_gelu
    assert resolve_quick_gelu('ViT-B-16', 'openai', None, 't') is True
    assert resolve_quick_gelu('ViT-B-16', 'laion2b_s34b_b88k', None,
                              't') is False
    assert resolve_quick_gelu('ViT-B-16', None, None, 't') is False
    assert resolve_quick_gelu('ViT-B-16', 'openai', False, 't') is False
    assert resolve_quick_gelu('ViT-B-16', None, True, 't') is True

    real = open_clip.create_model
    calls = []

    def no_download(name, pretrained=None, force_quick_gelu=False, **kw):
        # stands in for the real weights: a tiny tower with the activation
        # open_clip would build
        calls.append((name, pretrained, force_quick_gelu))
        quick = force_quick_gelu or name.endswith('-quickgelu')
        return real('mlrpl-tiny-vit', pretrained=None,
                    force_quick_gelu=quick)

    monkeypatch.setattr(open_clip, 'create_model', no_download)

    def acts(module):
        return {type(m) for m in module.modules()
                if isinstance(m, (QuickGELU, nn.GELU))}

    bb = MODELS.build(dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
                           pretrained='openai'))
    assert calls[-1] == ('ViT-B-16', 'openai', True)
    assert acts(bb.visual) == {QuickGELU}
    bb = MODELS.build(dict(type='OpenCLIPBackbone', model_name='ViT-B-16',
                           pretrained='laion2b_s34b_b88k'))
    assert calls[-1][2] is False and acts(bb.visual) == {nn.GELU}
    # the text tower: the QuickGELU variant of the same weights, cached
    # under its own key (not the GELU network's)
    kw = dict(embed_dims=64,
              gmc=dict(type='GMC', in_channels=64, hidden_channels=16,
                       num_heads=2),
              svfr=dict(type='SVFR', embed_dims=64))
    enc = dict(model_name='ViT-B-16', pretrained='openai',
               cache_dir=str(tmp_path))
    h1 = _tiny_head(text_encoder=enc, **kw)
    assert calls[-1] == ('ViT-B-16-quickgelu', 'openai', False)
    h2 = _tiny_head(text_encoder=dict(enc, quick_gelu=False), **kw)
    assert calls[-1] == ('ViT-B-16', 'openai', False)
    assert not torch.allclose(h1.train_embed, h2.train_embed)
    cached = sorted(osp.basename(f) for f in tmp_path.iterdir())
    assert len(cached) == 2 and \
        sum(f.startswith('ViT-B-16-quickgelu-') for f in cached) == 1
    # a cached entry is used without building the tower again
    n = len(calls)
    h3 = _tiny_head(text_encoder=enc, **kw)
    assert len(calls) == n
    torch.testing.assert_close(h3.train_embed, h1.train_embed)


def test_label_embedding_cache_is_keyed_by_model_weights_template_names(
        monkeypatch, tmp_path):
    import open_clip

    from mlrpl_mm.models.backbones.open_clip_backbone import \
        register_open_clip_configs
    from mlrpl_mm.models.utils import DEFAULT_TEMPLATE, encode_class_names
    register_open_clip_configs()
    assert DEFAULT_TEMPLATE == 'There is a {} in the scene'
    real = open_clip.create_model
    built = []

    def fake(name, pretrained=None, **kw):      # no download
        built.append((name, pretrained))
        torch.manual_seed(len(built))
        return real('mlrpl-tiny-vit', pretrained=None)

    monkeypatch.setattr(open_clip, 'create_model', fake)

    def enc(**kw):
        args = dict(class_names=['cat', 'dog'], model_name='mlrpl-tiny-vit',
                    pretrained='tag', cache_dir=str(tmp_path))
        args.update(kw)
        return encode_class_names(**args)

    e1 = enc()
    assert len(built) == 1 and e1.shape == (2, 64)
    torch.testing.assert_close(e1.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(enc(), e1)          # from the disk cache
    torch.testing.assert_close(enc(template=DEFAULT_TEMPLATE), e1)
    assert len(built) == 1
    # each part of the key makes a new entry
    enc(template='a photo of a {}')
    enc(class_names=['cat', 'bird'])
    enc(pretrained='other')
    enc(model_name='ViT-B-16')
    assert len(built) == 5
    assert len(list(tmp_path.iterdir())) == 5
    # random weights (pretrained=None) are never cached
    enc(pretrained=None)
    enc(pretrained=None)
    assert len(built) == 7 and len(list(tmp_path.iterdir())) == 5


def test_label_embedding_cache_of_a_local_checkpoint_follows_the_file(
        monkeypatch, tmp_path):
    """A local checkpoint path is keyed by the file (size, mtime), not only
    by its name: replacing the file re-encodes instead of returning the old
    file's cached embeddings. Names registered by mlrpl_mm (the tiny model)
    work without calling register_open_clip_configs() first."""
    import os

    import open_clip

    from mlrpl_mm.models.utils import encode_class_names
    real = open_clip.create_model
    built = []

    def fake(name, pretrained=None, **kw):      # reads nothing from the file
        built.append((name, pretrained))
        torch.manual_seed(len(built))
        return real(name, pretrained=None)

    monkeypatch.setattr(open_clip, 'create_model', fake)
    # as in a fresh process: open_clip does not know the tiny model yet
    monkeypatch.delitem(open_clip.factory._MODEL_CONFIGS, 'mlrpl-tiny-vit',
                        raising=False)
    assert 'mlrpl-tiny-vit' not in open_clip.list_models()
    ckpt = tmp_path / 'weights.pt'
    ckpt.write_bytes(b'a' * 10)
    cache = tmp_path / 'cache'

    def enc():
        return encode_class_names(['cat', 'dog'], model_name='mlrpl-tiny-vit',
                                  pretrained=str(ckpt), cache_dir=str(cache))

    e1 = enc()
    torch.testing.assert_close(enc(), e1)           # same file: cached
    assert len(built) == 1
    ckpt.write_bytes(b'b' * 20)                     # replaced weights
    st = os.stat(ckpt)
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    e2 = enc()
    assert len(built) == 2 and len(list(cache.iterdir())) == 2
    assert not torch.allclose(e1, e2)


def test_nothing_is_downloaded_at_import_or_config_load():
    """Importing every mlrpl_mm module and loading the SigRL configs must not
    try to fetch weights (open_clip's download entry points raise)."""
    code = (
        'import importlib, pkgutil, glob\n'
        'import open_clip, open_clip.pretrained as op, open_clip.factory as of\n'
        'def boom(*a, **k): raise SystemExit("download attempted")\n'
        'op.download_pretrained = of.download_pretrained = boom\n'
        'op.download_pretrained_from_hf = boom\n'
        'import mlrpl_mm\n'
        'for m in pkgutil.walk_packages(mlrpl_mm.__path__, "mlrpl_mm."):\n'
        '    importlib.import_module(m.name)\n'
        'from mmengine.config import Config\n'
        'for f in glob.glob("configs/sigrl_*.py"): Config.fromfile(f)\n'
        'print("ok")\n')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    proc = subprocess.run([sys.executable, '-c', code], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == 'ok', \
        proc.stdout[-2000:] + proc.stderr[-2000:]


def test_head_loss_gradients_reach_every_module():
    torch.manual_seed(0)
    head = _tiny_head().train()
    P = torch.randn(2, 5, 32, requires_grad=True)
    g = torch.randn(2, 32, requires_grad=True)
    losses = head.loss((P, g), _samples([[1, 0, 0], [0, 1, 0]]))
    losses['loss_cls'].backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match='class-count'):
        head.loss((P, g), _samples([[1, 0], [0, 1]]))


def test_head_with_role_loss_updates_the_estimates():
    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    c = Config.fromfile(osp.join(root, 'configs', 'sigrl_voc_spml_role.py'))
    assert c.model.head.loss == dict(type='ROLELoss', expected_num_pos=1.5,
                                     estimator_lr=1e-4)
    torch.manual_seed(0)
    head = _tiny_head(loss=dict(c.model.head.loss, estimator_lr=0.1)).train()
    P = torch.randn(2, 5, 32, requires_grad=True)
    g = torch.randn(2, 32, requires_grad=True)
    samples = _samples([[1, 0, 0], [0, 0, 1]])
    losses = head.loss((P, g), samples)
    role = head.loss_module
    assert role.est_logits.shape == (2, 3) and int(role.adam_step) == 1
    before = role.est_logits.clone()
    losses['loss_cls'].backward()
    assert P.grad.abs().sum() > 0
    head.loss((P.detach(), g.detach()), samples)
    assert not torch.allclose(before, role.est_logits)


def test_layer_wise_lr_decay_with_mmpretrain_constructor():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                      trainable=1, with_teacher=True),
        head=dict(type='SigRLHead', class_names=['a', 'b'],
                  text_encoder=dict(model_cfg=TINY_CLIP), embed_dims=32,
                  gmc=dict(type='GMC', in_channels=32, hidden_channels=16,
                           num_heads=2),
                  svfr=dict(type='SVFR', embed_dims=32))))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05),
            constructor='LearningRateDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.5, flat_decay_mult=0.0)))
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    # frozen parameters (first block, embeddings, teacher) stay out
    assert not any('teacher' in n or 'resblocks.0.' in n or 'conv1' in n
                   for n in groups)
    blk = 'backbone.visual.transformer.resblocks.1.mlp.c_fc.'
    assert groups[blk + 'weight']['lr'] == pytest.approx(0.5)     # depth 2/4
    assert groups[blk + 'weight']['weight_decay'] == pytest.approx(0.05)
    assert groups[blk + 'bias']['weight_decay'] == 0.0             # 1-D
    assert groups['backbone.visual.proj']['lr'] == pytest.approx(1.0)
    assert groups['head.svfr.sda_fc.weight']['lr'] == pytest.approx(1.0)


def test_fallback_to_random_when_weights_cannot_be_loaded(monkeypatch):
    import open_clip

    real = open_clip.create_model

    def offline(name, pretrained=None, **kw):
        if pretrained is not None:
            raise RuntimeError(f'Failed to download weights for tag '
                               f'{pretrained!r}')
        return real(name, pretrained=None, **kw)

    monkeypatch.setattr(open_clip, 'create_model', offline)
    cfg = dict(type='OpenCLIPBackbone', model_name='mlrpl-tiny-vit',
               pretrained='openai')
    with pytest.raises(RuntimeError, match='download'):
        MODELS.build(cfg)
    bb = MODELS.build(dict(cfg, fallback_to_random=True))
    assert bb(torch.randn(1, 3, 64, 64))[0].shape == (1, 16, 64)
    enc = dict(model_name='mlrpl-tiny-vit', pretrained='openai')
    with pytest.raises(RuntimeError, match='download'):
        _tiny_head(text_encoder=enc, embed_dims=64)
    head = _tiny_head(text_encoder=dict(enc, fallback_to_random=True),
                      embed_dims=64,
                      gmc=dict(type='GMC', in_channels=64, hidden_channels=16,
                               num_heads=2),
                      svfr=dict(type='SVFR', embed_dims=64))
    assert head.train_embed.shape == (3, 64)


def test_head_label_graph_is_used_and_checkpointed():
    torch.manual_seed(0)
    head = _tiny_head(gmc=dict(type='GMC', in_channels=32, hidden_channels=16,
                               num_heads=2, dropout=0.0)).eval()
    P, g = torch.randn(2, 5, 32), torch.randn(2, 32)
    complete = head((P, g))
    graph = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 1.0]])
    head.set_label_graph(graph)
    with_graph = head((P, g))
    assert not torch.allclose(complete, with_graph)
    torch.testing.assert_close(
        with_graph, head.scores(P, g, head.train_embed, graph))
    # reaches the state dict and is restored into a fresh head
    fresh = _tiny_head(gmc=dict(type='GMC', in_channels=32,
                                hidden_channels=16, num_heads=2,
                                dropout=0.0)).eval()
    fresh.load_state_dict(head.state_dict())
    torch.testing.assert_close(fresh.adjacency, graph)
    torch.testing.assert_close(fresh((P, g)), with_graph)
    head.set_label_graph(None)
    torch.testing.assert_close(head((P, g)), complete)
    with pytest.raises(ValueError, match='label graph'):
        head.set_label_graph(torch.ones(2, 2))
