"""Every HST / IST / CST / SSGRL config parses and states the protocol
(docs/equations/protocol.md, docs/equations/hst.md): schedule, batch, 2x2
pooling, loss weights, phases, and the frozen ResNet stages with layer4's BN in
train mode."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mlrpl_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CASES = [(m, d) for m in ('hst', 'ssgrl') for d in ('coco', 'voc', 'vg')] + \
    [('ist', 'coco'), ('cst', 'coco')]
CONFIGS = [osp.join(ROOT, 'configs', f'{m}_{d}_p{p}0.py')
           for m, d in CASES for p in range(1, 10)]
NUM_CLASSES = dict(coco=80, voc=20, vg=200)
HST_WEIGHTS = dict(cls=1.0, cls_ist=1.0, cls_cst=1.0, cooccurrence=10.0,
                   margin_ist=0.1, margin_cst=0.1, instance=0.05, prototype=0.05)


def test_all_configs_exist():
    missing = [p for p in CONFIGS if not osp.isfile(p)]
    assert not missing, missing


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_states_the_protocol(path):
    cfg = Config.fromfile(path)
    method, ds, p = osp.basename(path)[:-3].split('_')
    head = cfg.model.head
    assert head.num_classes == NUM_CLASSES[ds] == cfg.data_preprocessor.num_classes
    bb = cfg.model.backbone
    assert (bb.type, bb.depth, bb.out_indices) == ('ResNet', 101, (3, ))
    assert bb.frozen_stages == 3 and bb.norm_eval is False
    # the protocol's ImageNet weights (download on first use)
    assert dict(bb.init_cfg) == dict(type='Pretrained',
                                     checkpoint='torchvision://resnet101')
    trunk = head.trunk
    assert trunk.type == 'SemanticTrunk'
    assert trunk.avg_pool is True and head.in_channels == 2048
    assert (trunk.feat_channels, trunk.inter_channels, trunk.out_channels) == \
        (1024, 512, 1024)
    assert trunk.gnn_steps == 3
    assert trunk.class_embedding.path == f'data/{ds}/glove_embeddings.npy'
    tl = cfg.train_dataloader
    assert tl.batch_size == 32
    assert tl.dataset.type == 'PartialLabelDataset'
    assert tl.dataset.mode == 'proportion' and tl.dataset.seed == 0
    assert tl.dataset.known_ratio == pytest.approx(int(p[1:]) / 100)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('Adam', 1e-5, 5e-4)
    assert cfg.train_cfg.max_epochs == 20
    sch = cfg.param_scheduler
    assert (sch.type, sch.by_epoch, sch.milestones, sch.gamma) == \
        ('MultiStepLR', True, [10], 0.1)
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert 'LabelGraphHook' in hooks
    if method == 'ssgrl':
        assert head.type == 'SSGRLHead' and head.loss.type == 'PartialBCELoss'
        return
    assert head.type == 'HSTHead'
    assert dict(head.loss_weights) == HST_WEIGHTS
    assert head.pseudo_label_epoch == 5 and head.ramp_epochs == 1
    assert (head.ist is None) == (method == 'cst')
    assert (head.cst is None) == (method == 'ist')
    if head.ist is not None:
        assert head.ist.margin_init == 1.0
        cl = head.cooccurrence_loss
        assert (cl.gamma_neg, cl.gamma_pos, cl.clip, cl.eps) == (2, 1, 0.05, 1e-8)
    if head.cst is not None:
        assert (head.cst.num_prototypes, head.cst.margin_init) == (10, 1.0)
        assert head.prototype_loss.mode == 'reference'
        # the reference's reduction: mean over all B x C entries (issue 13.1)
        assert head.prototype_loss.average == 'all'
        ph = hooks['CSTPrototypeHook']
        assert (ph.start_epoch, ph.interval) == (5, 5)
        assert ph.pipeline == 'train'  # augmented images, as the reference
    assert 'PseudoLabelPrecisionHook' in hooks


@pytest.mark.parametrize('name', ['hst_coco_p30', 'ssgrl_coco_p30'])
def test_resnet_stages_1_3_frozen_layer4_bn_trains(name):
    """Reference: backbone.eval(); backbone.layer4.train(); only layer4's
    parameters train. The config's backbone gives exactly that."""
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    bb = MODELS.build(cfg.model.backbone.to_dict())
    bb.train()
    for stage in ('layer1', 'layer2', 'layer3', 'layer4'):
        mod = getattr(bb, stage)
        bns = [m for m in mod.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bns
        trains = stage == 'layer4'
        assert all(m.training == trains for m in bns), stage
        assert all(p.requires_grad == trains for p in mod.parameters()), stage
    assert not bb.norm1.training
    assert not any(p.requires_grad for p in bb.conv1.parameters())
    x = torch.randn(2, 3, 64, 64)
    before = bb.layer4[0].bn1.running_mean.clone()
    l3 = bb.layer3[0].bn1.running_mean.clone()
    bb(x)
    assert not torch.equal(before, bb.layer4[0].bn1.running_mean)
    assert torch.equal(l3, bb.layer3[0].bn1.running_mean)


@pytest.mark.parametrize('name', ['hst_demo', 'hst_demo_lite',
                                  'hst_convnext_coco_p30'])
def test_other_hst_configs_use_the_reference_prototype_loss(name):
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    pl = cfg.model.head.get('prototype_loss')
    if pl is not None:
        assert (pl.mode, pl.get('average', 'all')) == ('reference', 'all')
    # the class default too
    loss = MODELS.build(dict(type='PrototypeContrastiveLoss'))
    assert (loss.mode, loss.average) == ('reference', 'all')
