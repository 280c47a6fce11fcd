"""docs/own_data.md end to end: a folder of images + a partial CSV ->
tools/data/convert_labels.py -> tools/train.py (configs/pbce_own_data.py,
shrunk; it validates on test.json) -> tools/infer.py -> the next annotation
round (tools/suggest_labels.py, the oracle, --merge) -> the merged file
trains."""
import importlib.util
import json
import os.path as osp
import sys

import numpy as np

from mlrpl_mm.datasets import load_partial_annotations

from .conftest import ROOT, run_tool


def _tool_main(path):
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(path))[0], osp.join(ROOT, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def own_data_options(root, work_dir, extra=()):
    return [
        '--work-dir', work_dir, '--cfg-options',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0', 'train_dataloader.batch_size=8',
        'model.backbone.base_channels=8', 'model.backbone.stem_channels=8',
        'model.head.in_channels=64', 'train_cfg.max_epochs=2',
        'train_cfg.val_interval=2', 'default_hooks.logger.interval=1',
    ] + list(extra)


def make_own_data(demo_data, root):
    """Steps 1-2 of docs/own_data.md: the example data, then the JSONs."""
    _tool_main('tools/data/make_own_data_demo.py')(
        ['--demo-root', demo_data, '--out', root])
    convert = _tool_main('tools/data/convert_labels.py')
    convert(['--format', 'csv', '--src', f'{root}/known_labels.csv',
             '--classes', f'{root}/classes.txt', '--image-root',
             f'{root}/images', '--add-images', 'train/*.jpg', '--out',
             f'{root}/train.json'])
    convert(['--format', 'csv', '--src', f'{root}/test_labels.csv',
             '--classes', f'{root}/classes.txt', '--image-root',
             f'{root}/images', '--out', f'{root}/test.json'])


def test_own_data_end_to_end(demo_data, tmp_path, capsys):
    root = str(tmp_path / 'own_demo')
    make_own_data(demo_data, root)
    out = capsys.readouterr().out
    assert 'known entries: ' in out and 'wrote ' in out
    paths, train, classes = load_partial_annotations(f'{root}/train.json')
    # every training image of the folder, about 30% of the entries known,
    # exactly the entries of the CSV
    assert len(paths) == 48 and classes == [str(d) for d in range(10)]
    assert 0.2 < (train != 0).mean() < 0.4
    with open(f'{root}/known_labels.csv') as f:
        assert sum(1 for _ in f) - 1 == int((train != 0).sum())
    _, test, _ = load_partial_annotations(f'{root}/test.json')
    assert (test != 0).all()

    work = str(tmp_path / 'work')
    run_tool([sys.executable, 'tools/train.py', 'configs/pbce_own_data.py']
             + own_data_options(root, work))
    cfg = osp.join(work, 'pbce_own_data.py')
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(cfg) and osp.isfile(ckpt)

    preds = str(tmp_path / 'preds.json')
    run_tool([sys.executable, 'tools/infer.py', cfg, ckpt,
              f'{root}/images/test', '--topk', '3', '--json', preds])
    with open(preds) as f:
        res = json.load(f)
    assert res['classes'] == classes and len(res['results']) == 24
    scores = np.array([r['scores'] for r in res['results']])
    assert scores.shape == (24, 10) and np.isfinite(scores).all()

    # the next annotation round
    sugg = str(tmp_path / 'to_annotate.csv')
    proc = run_tool([sys.executable, 'tools/suggest_labels.py', cfg, ckpt,
                     '--budget', '30', '--out', sugg, '--oracle',
                     f'{root}/oracle_labels.csv', '--strategy', 'uncertainty',
                     '--balance', 'none'])
    assert f'30 of {int((train == 0).sum())} unknown entries suggested' \
        in proc.stdout
    with open(sugg) as f:
        rows = [line.rstrip('\n').split(',') for line in f][1:]
    assert len(rows) == 30
    index = {p: i for i, p in enumerate(paths)}
    o_paths, oracle, _ = load_partial_annotations(
        f'{root}/oracle_labels.csv', classes)
    o_index = {p: i for i, p in enumerate(o_paths)}
    pri = [float(r[4]) for r in rows]
    assert pri == sorted(pri, reverse=True)
    for img, cls, label, score, _ in rows:
        r, c = index[img], classes.index(cls)
        assert train[r, c] == 0 and int(label) == oracle[o_index[img], c]
        assert abs(float(score) - 0.5) <= 0.5 * (1 - pri[-1]) + 1e-4
    r2 = f'{root}/train_round2.json'
    proc = run_tool([sys.executable, 'tools/suggest_labels.py', cfg,
                     '--merge', sugg, '--out', r2])
    assert 'merged 30 answers (30 new' in proc.stdout
    p2, merged, _ = load_partial_annotations(r2)
    assert p2 == paths and int((merged != 0).sum()) == \
        int((train != 0).sum()) + 30
    assert ((merged == train) | (train == 0)).all()
    # the default strategy (uncertain-positive, classes taking turns): the
    # first round holds the best entry of every class, priority u + p
    sugg2 = str(tmp_path / 'to_annotate_default.csv')
    run_tool([sys.executable, 'tools/suggest_labels.py', cfg, ckpt,
              '--budget', '30', '--out', sugg2])
    with open(sugg2) as f:
        rows = [line.rstrip('\n').split(',') for line in f][1:]
    assert len(rows) == 30
    n_cls = len({r[1] for r in rows})
    assert len({r[1] for r in rows[:n_cls]}) == n_cls
    for img, cls, label, score, p in rows:
        assert train[index[img], classes.index(cls)] == 0 and label == ''
        s = float(score)
        assert abs(float(p) - (1 - 2 * abs(s - 0.5) + s)) <= 2e-4
