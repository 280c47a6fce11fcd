"""Every DSRB config parses and states the published protocol
(docs/equations/dsrb.md)."""
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = [osp.join(ROOT, 'configs', f'{m}_{d}_p{p}0.py')
           for m, d in [('dsrb', 'coco'), ('dsrb', 'voc'), ('dsrb', 'vg'),
                        ('iprb', 'coco'), ('pprb', 'coco')]
           for p in range(1, 10)]
NUM_CLASSES = dict(coco=80, voc=20, vg=200)


def test_all_configs_exist():
    missing = [p for p in CONFIGS if not osp.isfile(p)]
    assert not missing, missing


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_states_the_protocol(path):
    cfg = Config.fromfile(path)
    name = osp.basename(path)[:-3]
    method, ds, p = name.split('_')
    head = cfg.model.head
    assert head.type == 'DSRBHead'
    assert head.num_classes == NUM_CLASSES[ds]
    assert cfg.data_preprocessor.num_classes == NUM_CLASSES[ds]
    bb = cfg.model.backbone
    assert bb.type == 'ResNet' and bb.depth == 101
    assert bb.frozen_stages == 3 and bb.norm_eval is False
    # the protocol's ImageNet weights (download on first use)
    assert dict(bb.init_cfg) == dict(type='Pretrained',
                                     checkpoint='torchvision://resnet101')
    assert head.trunk.avg_pool and head.trunk.feat_channels == 1024
    assert head.trunk.class_embedding.path == f'data/{ds}/glove_embeddings.npy'
    tl = cfg.train_dataloader
    assert tl.batch_size == 8
    assert tl.dataset.type == 'PartialLabelDataset'
    assert tl.dataset.mode == 'proportion' and tl.dataset.seed == 0
    assert tl.dataset.known_ratio == pytest.approx(int(p[1:]) / 100)
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('Adam', 1e-5, 5e-4)
    assert cfg.train_cfg.max_epochs == 20
    assert cfg.param_scheduler.milestones == [10]
    assert cfg.param_scheduler.gamma == 0.1
    assert head.blend_start_epoch == 5
    assert head.instance_loss.type == 'InstanceContrastiveLoss'
    assert 'loss_weight' not in head.instance_loss
    assert dict(head.loss_weights) == dict(cls=1.0, iprb=1.0, pprb=1.0,
                                           instance=0.05)
    assert head.ramp_epochs == 1
    assert (head.iprb is None) == (method == 'pprb')
    assert (head.pprb is None) == (method == 'iprb')
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert 'LabelGraphHook' in hooks and 'BlendWeightClampHook' in hooks
    if head.pprb is not None:
        assert head.pprb.top_k == 1
        assert head.pprb.quadrant_split == 'floor'  # the reference's H // 2
        ph = hooks['PPRBPrototypeHook']
        assert (ph.start_epoch, ph.interval, ph.max_per_quadrant) == (5, 5, 100)
        assert ph.pipeline == 'train'  # augmented images, as the reference
        # faithful defaults (issue 13.2 / 13.3): the reference's placeholder
        # row in a cell's mean, and known entries blended by an image without
        # an unknown label; the pass stops early only when exact
        assert ph.quadrant_mean == 'reference' and ph.early_stop is True
        assert head.pprb.fill_known is True
    else:
        assert 'PPRBPrototypeHook' not in hooks
    assert cfg.model_wrapper_cfg.find_unused_parameters


def test_dsrb_faithful_defaults_when_built():
    """The classes' own defaults are the reference's too (configs that do not
    name the switches, e.g. configs/dsrb_demo.py)."""
    import mlrpl_mm  # noqa: F401
    from mmpretrain.registry import HOOKS, MODELS
    pprb = MODELS.build(dict(type='PPRB', num_classes=3, in_channels=2))
    assert pprb.fill_known is True
    hook = HOOKS.build(dict(type='PPRBPrototypeHook'))
    assert hook.quadrant_mean == 'reference' and hook.early_stop is True
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'dsrb_demo.py'))
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert 'quadrant_mean' not in hooks['PPRBPrototypeHook']
    assert 'fill_known' not in cfg.model.head.pprb
