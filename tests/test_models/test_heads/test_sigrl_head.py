"""SigRLHead against direct implementations of its scores
(docs/equations/sigrl.md), its label sets, losses and graph."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from tests.sigrl_fixtures import ROOT, TINY_CLIP
from tests.sigrl_fixtures import partial_samples as _samples
from tests.sigrl_fixtures import tiny_sigrl_head as _tiny_head


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
    root = ROOT
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
                  gmc=dict(type='SigRLGMC', in_channels=32, hidden_channels=16,
                           num_heads=2),
                  svfr=dict(type='SigRLSVFR', embed_dims=32))))
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


def test_head_label_graph_is_used_and_checkpointed():
    torch.manual_seed(0)
    head = _tiny_head(gmc=dict(type='SigRLGMC', in_channels=32, hidden_channels=16,
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
    fresh = _tiny_head(gmc=dict(type='SigRLGMC', in_channels=32,
                                hidden_channels=16, num_heads=2,
                                dropout=0.0)).eval()
    fresh.load_state_dict(head.state_dict())
    torch.testing.assert_close(fresh.adjacency, graph)
    torch.testing.assert_close(fresh((P, g)), with_graph)
    head.set_label_graph(None)
    torch.testing.assert_close(head((P, g)), complete)
    with pytest.raises(ValueError, match='label graph'):
        head.set_label_graph(torch.ones(2, 2))


def test_extract_feat_pre_logits_gives_the_scored_features():
    """``extract_feat(x, stage='pre_logits')`` of an ImageClassifier with a
    random-init tiny tower: (P_hat (B, L, D), g (B, D)), from which
    ``score_features`` gives exactly the head's scores."""
    from mmengine.registry import DefaultScope
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='OpenCLIPBackbone', model_cfg=TINY_CLIP,
                          with_teacher=True),
            head=dict(type='SigRLHead', class_names=['a', 'b', 'c'],
                      text_encoder=dict(model_cfg=TINY_CLIP), embed_dims=32,
                      topk=3,
                      gmc=dict(type='SigRLGMC', in_channels=32,
                               hidden_channels=16, num_heads=2),
                      svfr=dict(type='SigRLSVFR', embed_dims=32))))
    x = torch.randn(2, 3, 32, 32)
    for mode in (True, False):      # training: the teacher's g is dropped
        model.train(mode)
        torch.manual_seed(1)
        rec, g = model.extract_feat(x, stage='pre_logits')
        assert rec.shape == (2, 16, 32) and g.shape == (2, 32)
        feats = model.extract_feat(x)
        torch.testing.assert_close(g, feats[-1])
        torch.manual_seed(1)
        score = model.head(feats)
        E = model.head.train_embed
        torch.testing.assert_close(model.head.score_features(rec, g, E),
                                   score)
        torch.manual_seed(1)
        torch.testing.assert_close(
            rec, model.head.reconstruct(feats[-2], E, None))

