"""End-to-end HST training: tools/train.py on a tiny COCO fixture, ConvNeXt."""
import argparse
import os.path as osp
import sys

import numpy as np
import pytest
import torch

import mlrpl_mm  # noqa: F401  (safe checkpoint loading)
from tests.fixtures import make_coco_fixture
from tests.test_tools.conftest import run_tool
from mlrpl_mm.utils import safe_torch_load

def _options(root, work_dir, extra=()):
    return [
        '--work-dir', work_dir, '--cfg-options',
        f'train_dataloader.dataset.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0', 'train_dataloader.batch_size=4',
        'val_dataloader.batch_size=8',
        'model.head.trunk.feat_channels=16', 'model.head.trunk.inter_channels=8',
        'model.head.trunk.out_channels=16',
        'model.head.trunk.class_embedding._delete_=True',
        'model.head.trunk.class_embedding.type=LearnableClassEmbedding',
        'model.head.trunk.class_embedding.embed_dims=8',
        'model.head.ist.max_chunk_mb=0.05',  # several pair chunks
        'model.head.pseudo_label_epoch=1',
        # custom_hooks[1] is CSTPrototypeHook in the HST model base
        'custom_hooks.1.start_epoch=1', 'custom_hooks.1.interval=1',
        'custom_hooks.1.batch_size=5',
        'train_cfg.max_epochs=2', 'default_hooks.logger.interval=1',
    ] + list(extra)


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    return make_coco_fixture(root, num_train=12, num_val=8, num_classes=80,
                             img_size=64)


def test_train_hst_coco_p30_config(coco, tmp_path):
    work = str(tmp_path / 'w')
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/hst_coco_p30.py'] +
                    _options(coco['data_root'], work, [
                        'model.backbone.depth=18', 'model.backbone.base_channels=8',
                        'model.backbone.stem_channels=8', 'model.backbone.init_cfg=None',
                        'model.head.in_channels=64']))
    log = proc.stdout + proc.stderr
    assert 'loss_cooc' in log and 'loss_prototype' in log and 'cst_new_pos' in log
    assert 'ist_precision' in log or 'IST pseudo labels' in log
    assert 'mAP' in log
    ck = safe_torch_load(osp.join(work, 'epoch_2.pth'), map_location='cpu')
    sd = ck['state_dict']
    # label graph of the 30% known training labels is in the checkpoint
    from mlrpl_mm.datasets import CocoMultiLabel, PartialLabelDataset, cooccurrence_graph
    ds = PartialLabelDataset(CocoMultiLabel(data_root=coco['data_root'], split='train'),
                             known_ratio=0.3)
    np.testing.assert_allclose(sd['head.trunk.adj'].numpy(),
                               cooccurrence_graph(ds.partial_labels))
    assert int(sd['head.cst.prototype_epoch']) == 1
    n_pos = (ds.partial_labels == 1).sum(0)
    np.testing.assert_array_equal(sd['head.cst.prototype_count'].numpy(),
                                  np.minimum(n_pos, 10))


def test_hst_head_on_convnext_trains_a_step(coco, tmp_path):
    from mmengine.config import Config, DictAction
    from mmengine.runner import Runner

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.apis import set_dataloader_defaults
    cfg = Config.fromfile('configs/hst_convnext_coco_p30.py')
    args = _options(coco['data_root'], str(tmp_path / 'cn'))
    p = argparse.ArgumentParser()
    p.add_argument('--work-dir')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    ns = p.parse_args(args)
    cfg.merge_from_dict(ns.cfg_options)
    cfg.model.backbone.arch = dict(depths=[1, 1, 1, 1], channels=[8, 8, 16, 16])
    cfg.model.head.in_channels = 16
    cfg.train_cfg = dict(by_epoch=False, max_iters=1, val_interval=100)
    cfg.param_scheduler = []
    for k in ('val_cfg', 'val_dataloader', 'val_evaluator', 'test_cfg',
              'test_dataloader', 'test_evaluator'):
        cfg[k] = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100)
    cfg.work_dir = ns.work_dir
    set_dataloader_defaults(cfg)
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    after = runner.model.state_dict()
    assert runner.iter == 1
    assert not torch.equal(before['head.trunk.sd.fc1.weight'], after['head.trunk.sd.fc1.weight'])
    assert not torch.equal(before['backbone.stages.3.0.depthwise_conv.weight'],
                           after['backbone.stages.3.0.depthwise_conv.weight'])
    assert after['head.trunk.adj'].abs().sum() > 0
