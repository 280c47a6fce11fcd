"""tools/train.py -> tools/test.py -> tools/infer.py on configs/dualcoop_demo.py
(tiny random-init CLIP ResNet) with the demo data: the class names reach the
prompts from the dataset, the checkpoint carries them (test / infer work
without the dataset's names), and the three tools agree."""
import glob
import json
import os.path as osp
import re
import sys

import numpy as np

from .conftest import run_tool

CFG = 'configs/dualcoop_demo.py'


def _opts(data_root, work_dir, epochs=1):
    return ['--work-dir', work_dir, '--cfg-options',
            f'train_dataloader.dataset.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'test_dataloader.num_workers=0', 'train_dataloader.batch_size=8',
            f'train_cfg.max_epochs={epochs}', 'train_cfg.val_interval=1',
            'default_hooks.logger.interval=1']


def test_dualcoop_demo_train_test_infer(demo_data, tmp_path):
    work = str(tmp_path / 'work')
    proc = run_tool([sys.executable, 'tools/train.py', CFG] +
                    _opts(demo_data, work))
    log = proc.stdout + proc.stderr
    assert 'PromptClassNamesHook: 10 class names from the training dataset' \
        in log
    losses = [float(v) for v in re.findall(r'loss_cls: ([\d.]+)', log)]
    assert len(losses) == 6 and all(np.isfinite(losses))   # 48 / 8 iters
    val = re.findall(r'Epoch\(val\).*?multi-label/mAP_voc: ([\d.]+)', log)
    assert len(val) == 1
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    # test: the model is built without class names, the prompts come from
    # the checkpoint; same mAP as the last validation
    tproc = run_tool([sys.executable, 'tools/test.py', CFG, ckpt] +
                     _opts(demo_data, str(tmp_path / 'test')))
    tlog = tproc.stdout + tproc.stderr
    assert 'class names from the' not in tlog
    tmap = re.findall(r'multi-label/mAP_voc: ([\d.]+)', tlog)
    assert tmap and tmap[-1] == val[-1]
    # infer on two val images: a probability per class, from the checkpoint
    imgs = sorted(glob.glob(osp.join(demo_data, 'val2014', '*.jpg')))[:2]
    out_json = str(tmp_path / 'preds.json')
    run_tool([sys.executable, 'tools/infer.py', CFG, ckpt] + imgs +
             ['--topk', '3', '--json', out_json])
    with open(out_json) as f:
        preds = json.load(f)
    assert preds['classes'] == [str(d) for d in range(10)]
    rows = preds['results']
    assert len(rows) == 2
    for r in rows:
        scores = np.asarray(r['scores'])
        assert scores.shape == (10, ) and ((scores > 0) & (scores < 1)).all()
