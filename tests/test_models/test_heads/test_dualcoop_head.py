"""DualCoOp against direct implementations of its equations: prompt encoding
vs open_clip's own text tower, region aggregation vs a per-class loop, the
loss vs a direct ASL over known entries, ``pre_logits`` and bounded
text-side memory for large label sets (the CLIP ResNet tokens:
test_backbones/test_open_clip_backbone.py)."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.heads import region_aggregation

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

#: a text tower even smaller than mlrpl-tiny-rn's, for the memory tests
MICRO_CLIP = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=[1, 1, 1, 1], width=8,
                    head_width=64),
    text_cfg=dict(context_length=77, vocab_size=49408, width=16, heads=2,
                  layers=2))


def _learner(num_classes, names=None, **kw):
    cfg = dict(type='DualPromptLearner', num_classes=num_classes,
               class_names=names,
               text_encoder=dict(model_name='mlrpl-tiny-rn'))
    cfg.update(kw)
    return MODELS.build(cfg)


def _open_clip_model(seed=0):
    """The same CLIP that the learner's text tower was built from."""
    import open_clip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model('mlrpl-tiny-rn', pretrained=None)


NAMES = ['cat', 'dog', 'traffic_light', 'potted plant']


@pytest.mark.parametrize('class_specific', [False, True])
def test_prompt_encoding_equals_open_clip_text_tower(class_specific):
    import open_clip
    pl = _learner(4, NAMES, n_ctx=4, class_specific=class_specific,
                  class_chunk=3)
    model = _open_clip_model()
    tok = open_clip.get_tokenizer('mlrpl-tiny-rn')
    prompts = ['X X X X cat.', 'X X X X dog.', 'X X X X traffic light.',
               'X X X X potted plant.']
    ids = tok(prompts)
    assert torch.equal(pl.token_ids, ids)
    # 1) contexts = the embedding of the placeholder word: the learner's
    #    features are open_clip's encode_text of the tokenised prompts
    x_emb = model.token_embedding(ids[:1, 1:2])[0]          # (1, W)
    with torch.no_grad():
        ctx = x_emb.expand(4, -1)
        if class_specific:
            ctx = ctx.expand(4, 4, -1)
        pl.ctx_pos.copy_(ctx)
        ref = F.normalize(model.encode_text(ids), dim=-1)
        got_pos, _ = pl()
    torch.testing.assert_close(got_pos, ref, rtol=1e-5, atol=1e-6)
    # 2) random contexts: assemble the embeddings by hand and run open_clip's
    #    own modules (positional embedding, transformer, ln_final, EOT,
    #    projection) as CLIP.encode_text does after its lookup
    with torch.no_grad():
        pl.ctx_neg.normal_(0, 0.5)
        x = model.token_embedding(ids).clone()
        for c in range(4):
            x[c, 1:5] = pl.ctx_neg[c] if class_specific else pl.ctx_neg
        x = x + model.positional_embedding
        x = model.transformer(x, attn_mask=model.attn_mask)
        x = model.ln_final(x)
        x = x[torch.arange(4), ids.argmax(-1)] @ model.text_projection
        _, got_neg = pl()
    torch.testing.assert_close(got_neg, F.normalize(x, dim=-1), rtol=1e-5,
                               atol=1e-6)


def test_prompt_errors_and_parameter_counts():
    pl = _learner(3, None, n_ctx=16, class_specific=False)
    assert not pl.has_class_names
    with pytest.raises(RuntimeError, match='PromptClassNamesHook'):
        pl()
    with pytest.raises(ValueError, match='3 class names given but|'
                       r'num_classes=3'):
        pl.set_class_names(['a', 'b'])
    with pytest.raises(ValueError, match='context length 77'):
        pl.set_class_names(['a', 'b', ' '.join(['word'] * 70)])
    trainable = {n: p.numel() for n, p in pl.named_parameters()
                 if p.requires_grad}
    assert trainable == {'ctx_pos': 16 * 64, 'ctx_neg': 16 * 64}
    cs = _learner(3, ['a', 'b', 'c'], class_specific=True)
    assert sum(p.numel() for p in cs.parameters() if p.requires_grad) == \
        2 * 3 * 16 * 64


def test_chunked_encoding_equals_unchunked_with_gradients():
    pl = _learner(5, ['a', 'b', 'c', 'd', 'e'], n_ctx=3,
                  class_specific=True, class_chunk=None)
    w = torch.randn(5, pl.embed_dims)
    grads = []
    outs = []
    for chunk in (None, 2):
        pl.class_chunk = chunk
        pl.ctx_pos.grad = None
        t_pos, _ = pl()
        (t_pos * w).sum().backward()
        outs.append(t_pos.detach())
        grads.append(pl.ctx_pos.grad.clone())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    scale = float(grads[0].abs().max())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3,
                               atol=1e-4 * scale)
    assert grads[0].abs().sum() > 0


def naive_aggregation(regions, text, tau):
    b, l, _ = regions.shape
    out = torch.zeros(b, text.shape[0], dtype=regions.dtype)
    for i in range(b):
        for c in range(text.shape[0]):
            s = torch.stack([regions[i, j] @ text[c] for j in range(l)])
            w = torch.exp(s / tau) / torch.exp(s / tau).sum()
            out[i, c] = (w * s).sum()
    return out


def test_region_aggregation_equals_naive_loop_forward_and_backward():
    torch.manual_seed(0)
    r = F.normalize(torch.randn(2, 5, 8, dtype=torch.float64), dim=-1)
    t = F.normalize(torch.randn(3, 8, dtype=torch.float64), dim=-1)
    r1, t1 = r.clone().requires_grad_(), t.clone().requires_grad_()
    r2, t2 = r.clone().requires_grad_(), t.clone().requires_grad_()
    a = region_aggregation(r1, t1, 0.02)
    b = naive_aggregation(r2, t2, 0.02)
    torch.testing.assert_close(a, b)
    w = torch.randn(2, 3, dtype=torch.float64)
    (a * w).sum().backward()
    (b * w).sum().backward()
    torch.testing.assert_close(r1.grad, r2.grad)
    torch.testing.assert_close(t1.grad, t2.grad)
    # a low temperature picks the best region, a high one averages
    hot = region_aggregation(r, t, 1e-4)
    s = torch.einsum('bld,cd->bcl', r, t)
    torch.testing.assert_close(hot, s.max(-1).values, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(region_aggregation(r, t, 1e4), s.mean(-1),
                               rtol=1e-3, atol=1e-3)


def _head(num_classes=4, **kw):
    cfg = dict(type='DualCoOpHead', num_classes=num_classes,
               class_names=NAMES[:num_classes],
               prompt_learner=dict(type='DualPromptLearner', n_ctx=4,
                                   text_encoder=dict(
                                       model_name='mlrpl-tiny-rn')))
    cfg.update(kw)
    return MODELS.build(cfg)


def _samples(target):
    out = []
    for row in target:
        ds = DataSample()
        ds.set_field(row, 'partial_label')
        out.append(ds)
    return out


def test_head_logits_probability_and_loss_equal_direct_asl():
    torch.manual_seed(0)
    head = _head()
    P = torch.randn(3, 6, 64)
    feats = (P, torch.randn(3, 64))
    f = F.normalize(P, dim=-1)
    t_pos, t_neg = head.prompt_learner()
    scale = head.prompt_learner.text.logit_scale.exp()
    lp = scale * naive_aggregation(f, t_pos, 0.02)
    ln = scale * naive_aggregation(f, t_neg, 0.02)
    x = head(feats)
    torch.testing.assert_close(x, lp - ln, rtol=1e-4, atol=1e-4)
    p = torch.softmax(torch.stack([lp, ln], -1), -1)[..., 0]
    pred = torch.stack([d.pred_score for d in head.predict(feats)])
    torch.testing.assert_close(pred, p, rtol=1e-4, atol=1e-5)
    # ASL (gamma+ = 1, gamma- = 2, clip 0.05) on p, summed over known
    target = torch.tensor([[1., -1, 0, 1], [0, 0, -1, 1], [-1, 0, 0, 0]])
    loss = head.loss(feats, _samples(target))['loss_cls']
    direct = 0.
    for i in range(3):
        for c in range(4):
            pc = p[i, c]
            if target[i, c] > 0:
                direct = direct - (1 - pc) * torch.log(pc)
            elif target[i, c] < 0:
                pm = torch.clamp(pc - 0.05, min=0)
                direct = direct - pm ** 2 * torch.log(1 - pm)
    torch.testing.assert_close(loss, direct, rtol=1e-4, atol=1e-5)
    loss.backward()
    names = {n for n, q in head.named_parameters() if q.grad is not None}
    assert names == {'prompt_learner.ctx_pos', 'prompt_learner.ctx_neg'}
    with pytest.raises(ValueError, match='class-count mismatch'):
        head.loss(feats, _samples(torch.zeros(3, 5)))
    with pytest.raises(ValueError, match='text tower gives 64-d'):
        head((torch.randn(1, 4, 32), torch.randn(1, 32)))


def test_eval_cache_follows_the_contexts():
    head = _head()
    head.eval()
    feats = (torch.randn(2, 4, 64), torch.randn(2, 64))
    with torch.no_grad():
        a = head(feats)
        assert head.prompt_learner._cache is not None
        # an optimizer-like in-place step (not a constant shift: the text
        # tower's LayerNorms are blind to one)
        step = torch.randn_like(head.prompt_learner.ctx_pos)
        head.prompt_learner.ctx_pos.add_(step)
        b = head(feats)
        assert not torch.allclose(a, b)
        state = {k: v.clone() for k, v in head.state_dict().items()}
        head.prompt_learner.ctx_pos.sub_(step)
        torch.testing.assert_close(head(feats), a)
        head.load_state_dict(state)
        torch.testing.assert_close(head(feats), b)
    # the token ids are in the state dict: a head built without names
    # gets the prompts from a checkpoint
    fresh = MODELS.build(dict(type='DualCoOpHead', num_classes=4,
                              prompt_learner=dict(
                                  type='DualPromptLearner', n_ctx=4,
                                  text_encoder=dict(
                                      model_name='mlrpl-tiny-rn'))))
    assert not fresh.has_class_names
    fresh.load_state_dict(state)
    fresh.eval()
    assert fresh.has_class_names
    with torch.no_grad():
        torch.testing.assert_close(fresh(feats), b)


class _SavedBytes:
    """Bytes of the tensors autograd keeps for backward (deduplicated by
    storage; parameters and buffers excluded)."""

    def __init__(self, module):
        self.skip = {t.untyped_storage().data_ptr()
                     for t in list(module.parameters()) +
                     list(module.buffers())}
        self.seen = {}

    def pack(self, t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in self.skip:
            self.seen[ptr] = t.untyped_storage().nbytes()
        return t

    @property
    def total(self):
        return sum(self.seen.values())


def _text_pass(pl, chunk):
    """Forward + backward of both prompt sets; returns (features, grad,
    max prompts per transformer call, bytes kept for backward)."""
    calls = []
    hook = pl.text.transformer.register_forward_hook(
        lambda m, i, o: calls.append(i[0].shape[0]))
    pl.class_chunk = chunk
    pl.ctx_pos.grad = None
    saved = _SavedBytes(pl)
    try:
        with torch.autograd.graph.saved_tensors_hooks(saved.pack,
                                                      lambda t: t):
            t_pos, t_neg = pl()
        (t_pos.sum(-1) + t_neg[:, 0]).sum().backward()
    finally:
        hook.remove()
    return t_pos.detach(), pl.ctx_pos.grad.clone(), max(calls), saved.total


@pytest.mark.parametrize('num_classes', [200, 1006])
def test_text_side_memory_is_bounded_by_the_chunk(num_classes):
    names = [f'class {i}' for i in range(num_classes)]
    pl = MODELS.build(dict(type='DualPromptLearner', num_classes=num_classes,
                           class_names=names, n_ctx=4, class_specific=True,
                           text_encoder=dict(model_cfg=MICRO_CLIP)))
    width, length = pl.text.width, pl.text.context_length
    chunk = 64
    feats, grad, widest, kept = _text_pass(pl, chunk)
    # at most one chunk of prompts per transformer call, also when
    # recomputed in backward
    assert widest == chunk
    # what is kept for backward grows by a few values per class, not by the
    # (layers x tokens x width) activations of every prompt
    per_prompt = length * width * 4
    assert kept < 4 * per_prompt * chunk + 2 * num_classes * 64 * 4
    if num_classes == 200:
        ref, ref_grad, widest_ref, kept_ref = _text_pass(pl, None)
        assert widest_ref == num_classes
        assert kept_ref > 10 * kept            # the unchunked graph
        torch.testing.assert_close(feats, ref, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-3,
                                   atol=1e-4 * float(ref_grad.abs().max()))


def test_protocol_configs():
    """The 27 protocol configs: dataset, known ratio, the paper's model and
    schedule, no silent random weights; the COCO model has the paper's
    1.3 M trainable parameters (class-specific contexts)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    sizes = dict(coco=(80, 'CocoMultiLabel'), voc=(20, 'VOCMultiLabel'),
                 vg=(200, 'VGMultiLabel'))
    for ds, (c, dtype) in sizes.items():
        for p in range(10, 100, 10):
            cfg = Config.fromfile(osp.join(ROOT, 'configs',
                                           f'dualcoop_{ds}_p{p}.py'))
            tr = cfg.train_dataloader
            assert tr.dataset.type == 'PartialLabelDataset'
            assert tr.dataset.mode == 'proportion' and tr.dataset.seed == 0
            assert tr.dataset.known_ratio == pytest.approx(p / 100)
            assert tr.dataset.dataset.type == dtype
            assert tr.batch_size == 32
            head = cfg.model.head
            assert head.type == 'DualCoOpHead' and head.num_classes == c
            assert cfg.data_preprocessor.num_classes == c
            assert head.tau == 0.02 and head.prompt_learner.n_ctx == 16
            assert head.prompt_learner.class_specific
            assert head.loss.gamma_neg == 2 and head.loss.gamma_pos == 1
            assert cfg.model.backbone.model_name == 'RN101'
            assert cfg.model.backbone.trainable == 'none'
            assert cfg.model.backbone.fallback_to_random is False
            assert head.prompt_learner.text_encoder.fallback_to_random is \
                False
            assert cfg.optim_wrapper.optimizer.type == 'SGD'
            # the authors' code: 0.001 on VOC 2007, 0.002 on MS-COCO
            assert cfg.optim_wrapper.optimizer.lr == \
                (0.001 if ds == 'voc' else 0.002)
            assert cfg.train_cfg.max_epochs == 50
            assert cfg.val_evaluator.ap_style == 'voc'
            assert [h.type for h in cfg.custom_hooks] == \
                ['PromptClassNamesHook']
            sizes_seen = [t.get('scale') for t in cfg.test_pipeline
                          if t['type'] == 'Resize']
            assert sizes_seen == [(448, 448)]
    # the sweep takes them
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'tool_sweep', osp.join(ROOT, 'tools', 'sweep.py'))
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    run = sweep.build_run_config(
        osp.join(ROOT, 'configs', 'dualcoop_voc_p50.py'), 0.2, 2, None, {})
    assert run.train_dataloader.dataset.known_ratio == 0.2
    # CLIP RN101 (random init, offline): only the contexts train
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'dualcoop_coco_p30.py'))
    cfg.model.backbone.pretrained = None
    cfg.model.head.prompt_learner.text_encoder.pretrained = None
    cfg.model.head.class_names = [f'c{i}' for i in range(80)]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 2 * 80 * 16 * 512 == 1310720
    assert model.backbone.embed_dims == model.head.prompt_learner.embed_dims


def _classifier(model_name, class_names):
    """ImageClassifier: frozen random-init tower + DualCoOpHead."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='OpenCLIPBackbone', model_name=model_name,
                          pretrained=None, trainable='none',
                          fallback_to_random=False),
            neck=None,
            head=dict(type='DualCoOpHead', num_classes=len(class_names),
                      class_names=class_names,
                      prompt_learner=dict(
                          type='DualPromptLearner', n_ctx=4,
                          text_encoder=dict(model_name=model_name)))))


def test_vit_tower_with_dualcoop_head():
    """ViT towers: the projected patch tokens are the regions;
    trainable='none' freezes the tower."""
    model = _classifier('mlrpl-tiny-vit', ['cat', 'dog'])
    assert not any(p.requires_grad for p in model.backbone.parameters())
    x = torch.randn(2, 3, 64, 64)
    P, _ = model.extract_feat(x)
    assert P.shape == (2, 16, 64)
    logits = model(x, mode='tensor')
    assert logits.shape == (2, 2)
    f = F.normalize(P, dim=-1)
    t_pos, t_neg = model.head.prompt_learner()
    scale = model.head.logit_scale
    ref = scale * (region_aggregation(f, t_pos, 0.02) -
                   region_aggregation(f, t_neg, 0.02))
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)


def test_extract_feat_pre_logits_gives_the_region_features():
    """``extract_feat(x, stage='pre_logits')`` of an ImageClassifier: the
    unit region features f (B, L, D) that the logits aggregate."""
    torch.manual_seed(0)
    model = _classifier('mlrpl-tiny-rn', ['cat', 'dog', 'car']).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = model.extract_feat(x, stage='pre_logits')
        P, _ = model.extract_feat(x)
        logits = model(x, mode='tensor')
        t_pos, t_neg = model.head.prompt_learner()
    assert f.shape == (2, 4, 64) and f.dtype == torch.float32   # 2x2 map
    torch.testing.assert_close(f, F.normalize(P, dim=-1))
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(2, 4))
    ref = model.head.logit_scale * (region_aggregation(f, t_pos, 0.02) -
                                    region_aggregation(f, t_neg, 0.02))
    torch.testing.assert_close(logits, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('name,lr', [('dualcoop_coco_p30', 0.002),
                                     ('dualcoop_voc_p10', 0.001),
                                     ('dualcoop_vg_p90', 0.002)])
def test_protocol_configs_use_the_authors_schedule(name, lr):
    """The authors' code (rn101_ep50.yaml + README): SGD, lr 0.002 COCO /
    0.001 VOC, batch 32, 50 epochs, one constant warm-up epoch at 1e-5,
    then per-epoch cosine; frozen image tower, class-specific contexts."""
    import os.path as osp

    from mmengine.config import Config
    root = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(root, 'configs', name + '.py'))
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.momentum, opt.weight_decay) == \
        ('SGD', lr, 0.9, 5e-4)
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_cfg.max_epochs == 50
    warm, cos = cfg.param_scheduler
    assert warm.type == 'ConstantLR' and (warm.begin, warm.end) == (0, 1)
    assert warm.factor * lr == pytest.approx(1e-5)
    assert cos.type == 'CosineAnnealingLR' and cos.by_epoch
    assert (cos.begin, cos.end, cos.T_max) == (1, 50, 50)
    assert not cos.get('convert_to_iter_based', False)
