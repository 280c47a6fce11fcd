"""DSRB on another mmpretrain backbone: configs/dsrb_convnext_coco_p30.py
(ConvNeXt, atto arch for speed) trains with tools/train.py on the tiny COCO
fixture, through the blending phase and the prototype hook."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

import mlrpl_mm  # noqa: F401
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


def _ckpt(path):
    return safe_torch_load(path, map_location='cpu')['state_dict']


def test_dsrb_on_convnext_trains_a_step(coco, tmp_path):
    data_root, emb = coco
    work = str(tmp_path / 'convnext')
    log = run_train(['configs/dsrb_convnext_coco_p30.py'] +
                    options(data_root, emb, work, 1, [
                        'model.backbone.arch=atto', 'model.head.in_channels=320',
                        'train_dataloader.batch_size=8',
                        'train_cfg.val_interval=10',
                        'model.head.blend_start_epoch=0',
                        'custom_hooks.1.start_epoch=0']))
    assert 'PPRBPrototypeHook: prototypes at epoch 0' in log
    assert 'loss_pprb' in log and 'loss_iprb' in log
    sd = _ckpt(osp.join(work, 'epoch_1.pth'))
    assert int(sd['head.pprb.prototype_epoch']) == 0
    assert float(sd['head.pprb.beta']) != 0.5  # the blending step trained beta
