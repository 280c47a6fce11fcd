"""End to end: tools/train.py on the DSRB configs with a tiny COCO fixture.

Covers ``configs/dsrb_coco_p30.py`` as users run it (label graph, prototype
hook, blending phase, clamp hook, validation, checkpoints, ``--resume``
keeping valid prototypes); the ConvNeXt config is in
test_dsrb_convnext.py. The protocol's pipelines (448 px, so the reference's
7 x 7 map after the 2 x 2 pooling) with tiny networks: ResNet-18 with 8 base
channels / ConvNeXt-atto, D = 32.
"""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch

import mlrpl_mm  # noqa: F401  (safe checkpoint loading allow-list)
from mlrpl_mm.utils import safe_torch_load

from tests.fixtures import make_coco_fixture

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def run_train(args, timeout=600):
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([sys.executable, 'tools/train.py'] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp('coco')
    fx = make_coco_fixture(str(root), num_train=16, num_val=6, num_classes=80,
                           img_size=32)
    emb = osp.join(str(root), 'glove_embeddings.npy')
    np.save(emb, np.random.RandomState(0).randn(80, 300).astype(np.float32))
    return fx['data_root'], emb


def options(data_root, emb, work_dir, max_epochs, extra=()):
    return ['--work-dir', work_dir, '--cfg-options',
            f'train_dataloader.dataset.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'test_dataloader.num_workers=0', 'train_dataloader.batch_size=4',
            'train_dataloader.persistent_workers=False',
            'val_dataloader.persistent_workers=False',
            'test_dataloader.persistent_workers=False',
            f'model.head.trunk.class_embedding.path={emb}',
            'model.head.trunk.feat_channels=32',
            'model.head.trunk.inter_channels=16',
            'model.head.trunk.out_channels=32',
            # blending and prototypes from epoch 1 (0-based), every 5 epochs
            'model.head.blend_start_epoch=1', 'custom_hooks.1.start_epoch=1',
            f'train_cfg.max_epochs={max_epochs}', 'optim_wrapper.optimizer.lr=1e-3',
            'default_hooks.logger.interval=1'] + list(extra)


RESNET = ['model.backbone.depth=18', 'model.backbone.base_channels=8',
          'model.backbone.stem_channels=8', 'model.backbone.init_cfg=None',
          'model.head.in_channels=64']


def _ckpt(path):
    return safe_torch_load(path, map_location='cpu')['state_dict']


def test_train_dsrb_coco_p30_and_resume(coco, tmp_path):
    data_root, emb = coco
    work = str(tmp_path / 'run')
    log = run_train(['configs/dsrb_coco_p30.py'] +
                    options(data_root, emb, work, 2, RESNET))
    assert 'PPRBPrototypeHook: prototypes at epoch 1' in log
    assert 'loss_iprb' in log and 'loss_pprb' in log and 'loss_instance' in log
    assert 'mAP' in log
    sd = _ckpt(osp.join(work, 'epoch_2.pth'))
    assert int(sd['head.pprb.prototype_epoch']) == 1
    assert sd['head.pprb.prototypes'].shape == (80, 4, 32)
    assert sd['head.pprb.prototype_valid'].any()
    assert sd['head.trunk.adj'].abs().sum() > 0  # label graph set
    for k in ('head.iprb.alpha', 'head.pprb.beta'):
        assert 0.0 <= float(sd[k]) <= 1.0 and float(sd[k]) != 0.5, k
    # resume at epoch 2: the restored prototypes (epoch 1) are still valid
    log = run_train(['configs/dsrb_coco_p30.py', '--resume',
                     osp.join(work, 'epoch_2.pth')] +
                    options(data_root, emb, work, 3, RESNET))
    assert 'PPRBPrototypeHook: prototypes at epoch' not in log
    sd3 = _ckpt(osp.join(work, 'epoch_3.pth'))
    assert int(sd3['head.pprb.prototype_epoch']) == 1
    assert torch.equal(sd3['head.pprb.prototypes'], sd['head.pprb.prototypes'])
