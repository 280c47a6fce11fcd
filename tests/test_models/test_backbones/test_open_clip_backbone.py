"""OpenCLIPBackbone: ViT tokens vs open_clip's own forward, teacher,
trainable blocks, CLIP ResNet tokens vs the attention pool, and the
offline fallback of the weights."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from tests.sigrl_fixtures import TINY_CLIP
from tests.sigrl_fixtures import partial_samples as _samples
from tests.sigrl_fixtures import tiny_sigrl_head as _tiny_head


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
                      gmc=dict(type='SigRLGMC', in_channels=64, hidden_channels=16,
                               num_heads=2),
                      svfr=dict(type='SigRLSVFR', embed_dims=64))
    assert head.train_embed.shape == (3, 64)


def test_resnet_backbone_tokens_match_the_attention_pool():
    from mlrpl_mm.models.backbones.open_clip_resnet import \
        attnpool_positional_embedding
    torch.manual_seed(0)
    bb = MODELS.build(dict(type='OpenCLIPBackbone',
                           model_name='mlrpl-tiny-rn', pretrained=None,
                           trainable='none', fallback_to_random=False))
    assert bb.is_resnet and bb.embed_dims == 64
    bb.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        P, g = bb(x)
        v = bb.visual
        torch.testing.assert_close(g, v(x), rtol=1e-5, atol=1e-5)
        fmap = v.layer4(v.layer3(v.layer2(v.layer1(v.stem(x)))))
        ap = v.attnpool
        flat = fmap.flatten(2).transpose(1, 2)                    # (B, L, C)
        dense = ap.c_proj(ap.v_proj(flat + ap.positional_embedding[1:]))
        torch.testing.assert_close(P, dense, rtol=1e-5, atol=1e-5)
        # 2x input: 4x4 regions, positional embedding resized, global equal
        # to the pool run with that embedding
        P2, g2 = bb(torch.randn(1, 3, 128, 128))
        assert P2.shape == (1, 16, 64) and g2.shape == (1, 64)
        pos = attnpool_positional_embedding(ap, 2, 2)
        assert pos is ap.positional_embedding
        assert attnpool_positional_embedding(ap, 4, 4).shape == (17, 256)
    # frozen: no trainable parameter, eval mode kept in train()
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not bb.visual.training and not bb.visual.layer1[0].bn1.training
    part = MODELS.build(dict(type='OpenCLIPBackbone',
                             model_name='mlrpl-tiny-rn', pretrained=None,
                             trainable=1, fallback_to_random=False))
    part.train()
    train_names = {n.split('.')[1] for n, p in part.named_parameters()
                   if p.requires_grad}
    assert train_names == {'layer4', 'attnpool'}
    assert part.visual.layer4.training and not part.visual.layer3.training
    with pytest.raises(ValueError, match=r"'all', 'none' or an int in "
                       r'\[0, 4\]'):
        MODELS.build(dict(type='OpenCLIPBackbone',
                          model_name='mlrpl-tiny-rn', pretrained=None,
                          trainable=7))
