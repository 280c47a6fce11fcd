"""End to end zero-shot: tools/train.py on configs/sigrl_nus_zsl.py (tiny
random-init open_clip) on the seen classes of a NUS-WIDE-format fixture, then
tools/test.py swaps in the unseen class names without retraining and reports
ZSL / GZSL mAP and F1@3/@5."""
import glob
import json
import os
import os.path as osp
import subprocess
import sys


from tests.fixtures import make_nus_wide_fixture

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


def test_sigrl_zero_shot_train_and_swap_unseen_classes(tmp_path):
    fx = make_nus_wide_fixture(str(tmp_path / 'nus'), num_train=8,
                               num_test=6, img_size=48)
    n_seen = len(fx['seen_classes'])
    work = str(tmp_path / 'work')
    opts = [
        f'train_dataloader.dataset.data_root={fx["data_root"]}',
        f'test_dataloader.dataset.data_root={fx["data_root"]}',
        f'val_dataloader.dataset.data_root={fx["data_root"]}',
        'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
        'default_hooks.logger.interval=1',
        f'model.head.num_classes={n_seen}',
        'train_dataloader.dataset.pipeline.1.scale=(64,64)',
        'val_dataloader.dataset.pipeline.1.scale=(64,64)',
        'test_dataloader.dataset.pipeline.1.scale=(64,64)',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1',
        'param_scheduler.1.end=2',
    ] + TINY
    out = run(['tools/train.py', 'configs/sigrl_nus_zsl.py', '--work-dir',
               work, '--cfg-options'] + opts)
    assert f'SigRLLabelSetHook: {n_seen} training classes' in out
    n_all = n_seen + len(fx['concepts'])
    assert f'evaluating on {n_all} classes ({len(fx["concepts"])} unseen' \
        in out
    rows = last_json_metrics(work)
    train = [r for r in rows if 'loss_cls' in r]
    assert train and all('loss_distill' in r for r in train)
    ckpt = glob.glob(osp.join(work, 'epoch_2.pth'))[0]
    out = run(['tools/test.py', 'configs/sigrl_nus_zsl.py', ckpt,
               '--work-dir', str(tmp_path / 'test'), '--cfg-options'] + opts)
    metrics = json.load(open(glob.glob(osp.join(str(tmp_path / 'test'), '*',
                                                '*.json'))[0]))
    for key in ('ZSL_mAP', 'GZSL_mAP', 'ZSL_F1@3', 'GZSL_F1@5'):
        assert 0.0 <= metrics[f'zero-shot/{key}'] <= 100.0, key
