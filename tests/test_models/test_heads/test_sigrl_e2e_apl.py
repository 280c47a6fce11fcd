"""End to end EM+APL: tools/train.py on configs/sigrl_voc_spml_emapl.py (tiny
random-init open_clip) on a VOC-format fixture: the APL hook updates the
pseudo labels after the warm-up and they reach the checkpoint."""
import glob

import torch
import os
import os.path as osp
import re
import subprocess
import sys

from tests.fixtures import make_voc_fixture

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

TINY = [
    'model.backbone.model_name=mlrpl-tiny-vit',
    'model.backbone.pretrained=None',
    'model.head.text_encoder.model_name=mlrpl-tiny-vit',
    'model.head.text_encoder.pretrained=None',
    'model.head.embed_dims=64', 'model.head.topk=4',
    'model.head.gmc.in_channels=64', 'model.head.gmc.hidden_channels=32',
    'model.head.svfr.embed_dims=64', 'model.head.svfr.class_chunk=4',
]


def run(args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{" ".join(args)} failed:\n{proc.stdout[-3000:]}\n'
        f'{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def last_json_metrics(work_dir):
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    assert files, f'no scalar log in {work_dir}'
    rows = [json.loads(line) for f in files for line in open(f)]
    return rows


def test_sigrl_em_apl_updates_pseudo_labels(tmp_path):
    fx = make_voc_fixture(str(tmp_path / 'voc'), year='2012',
                          split_sizes=dict(train=10, val=6), img_size=48)
    root = fx['data_root']
    work = str(tmp_path / 'work')
    opts = [
        f'train_dataloader.dataset.dataset.data_root={root}',
        f'val_dataloader.dataset.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_cfg.max_epochs=3', 'model.head.loss.warmup_epoch=1',
        'default_hooks.logger.interval=1',
        'train_dataloader.dataset.pipeline.1.scale=(64,64)',
        'train_dataloader.dataset.pipeline.3.scale=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(64,64)',
        'val_dataloader.dataset.pipeline.2.scale=(64,64)',
    ] + TINY
    out = run(['tools/train.py', 'configs/sigrl_voc_spml_emapl.py',
               '--work-dir', work, '--cfg-options'] + opts)
    # 8 training images, 19 unknown classes each: per class
    # int(0.9 * 8 / (3 - 1)) = 3 new pseudo-negatives per epoch
    assert 'APL: epoch 1: 60 new pseudo-negatives, 60 in total' in out
    assert 'APL: epoch 2: 60 new pseudo-negatives, 120 in total' in out
    ckpt = torch.load(osp.join(work, 'epoch_3.pth'), map_location='cpu',
                      weights_only=False)
    mask = ckpt['state_dict']['head.loss_module.pseudo_mask']
    # epoch 3 takes what is left (at most 3 per class): the saved state is
    # the one after the last update
    total = int(re.search(r'APL: epoch 3: \d+ new pseudo-negatives, (\d+) in '
                          r'total', out).group(1))
    assert 120 < total <= 180
    assert mask.shape == (8, 20) and int(mask.sum()) == total
