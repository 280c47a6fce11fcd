"""mlrpl_mm.apis.MultiLabelInferencer and tools/infer.py on a checkpoint of a
real (tiny) demo training run, and zero-shot class names with SigRLHead."""
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch

from .conftest import ROOT, run_tool
from .tiny_run import tiny_run

TINY_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=1, width=32, patch_size=8,
                    head_width=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                  layers=1))


@pytest.fixture(scope='module')
def run(tmp_path_factory, demo_data):
    return tiny_run(tmp_path_factory, demo_data)


def _test_loop_scores(run, out_pkl):
    """Every val image's pred_score from mmengine's own test loop."""
    import pickle

    from mmengine.config import Config
    from mmengine.evaluator import DumpResults

    from mlrpl_mm.apis import build_runner

    cfg = Config.fromfile(run['config'])
    cfg.work_dir = osp.dirname(out_pkl)
    cfg.load_from = run['checkpoint']
    cfg.visualizer = dict(type='UniversalVisualizer',
                          vis_backends=[dict(type='LocalVisBackend')],
                          name='infer_test_loop')
    cfg.experiment_name = 'infer_test_loop'
    runner = build_runner(cfg)  # MLRPLRunner: safe loading of the checkpoint
    runner.test_evaluator.metrics.append(DumpResults(out_file_path=out_pkl))
    runner.test()
    with open(out_pkl, 'rb') as f:
        preds = pickle.load(f)
    return {p['img_path']: np.asarray(p['pred_score']) for p in preds}


def test_inferencer_matches_the_test_loop(run, tmp_path):
    from mlrpl_mm.apis import MultiLabelInferencer
    inf = MultiLabelInferencer(run['config'], run['checkpoint'])
    assert inf.classes == [str(d) for d in range(10)]   # from the checkpoint
    val_dir = osp.join(run['data_root'], 'val2014')
    res = inf(val_dir, topk=3, batch_size=5)
    files = sorted(f for f in os.listdir(val_dir) if f.endswith('.jpg'))
    assert [osp.basename(r['img_path']) for r in res] == files
    ref = _test_loop_scores(run, str(tmp_path / 'preds.pkl'))
    assert len(ref) == len(res) == 24
    for r in res:
        np.testing.assert_allclose(r['pred_scores'], ref[r['img_path']],
                                   rtol=1e-5, atol=1e-6)
        order = np.argsort(-r['pred_scores'], kind='stable')[:3]
        assert r['pred_label'] == order.tolist()
        assert r['pred_class'] == [str(i) for i in order]
        assert [t['score'] for t in r['topk']] == pytest.approx(
            r['pred_scores'][order].tolist())
    # threshold instead of top-k; an array input gives the same scores
    thr = float(np.median(res[0]['pred_scores']))
    r0 = inf(res[0]['img_path'], thr=thr)[0]
    assert r0['pred_label'] == [i for i in np.argsort(
        -res[0]['pred_scores'], kind='stable') if res[0]['pred_scores'][i] >= thr]
    import mmcv
    arr = mmcv.imread(res[0]['img_path'])
    ra = inf([arr], topk=2)[0]
    assert ra['img_path'] is None
    np.testing.assert_allclose(ra['pred_scores'], res[0]['pred_scores'],
                               rtol=1e-6)


def test_inferencer_errors(run, tmp_path):
    from mlrpl_mm.apis import MultiLabelInferencer
    inf = MultiLabelInferencer(run['config'], run['checkpoint'])
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        inf(str(tmp_path / 'missing.jpg'))
    with pytest.raises(FileNotFoundError, match='no image file'):
        inf(str(tmp_path))
    with pytest.raises(ValueError, match='PartialLabelClsHead cannot score'):
        inf(osp.join(run['data_root'], 'val2014'), class_names=['cat'])
    with pytest.raises(ValueError, match='topk'):
        inf(osp.join(run['data_root'], 'val2014'), topk=0)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        MultiLabelInferencer(run['config'], str(tmp_path / 'nope.pth'))


def test_infer_cli_prints_top_labels_and_writes_json(run, tmp_path):
    img = osp.join(run['data_root'], 'val2014',
                   'COCO_val2014_000000100003.jpg')
    out = str(tmp_path / 'preds.json')
    proc = run_tool([sys.executable, 'tools/infer.py', run['config'],
                     run['checkpoint'], img, '--topk', '3', '--json', out])
    with open(out) as f:
        data = json.load(f)
    assert data['classes'] == [str(d) for d in range(10)]
    (r, ) = data['results']
    assert r['img_path'] == img and len(r['scores']) == 10
    top = np.argsort(-np.asarray(r['scores']), kind='stable')[:3]
    assert [t['label'] for t in r['topk']] == top.tolist()
    # the table row: the image then "<class> (<score>)" for the 3 top labels
    row = [line for line in proc.stdout.splitlines() if line.startswith(img)]
    assert len(row) == 1, proc.stdout
    expected = '  '.join(f"{t['class']} ({t['score']:.3f})" for t in r['topk'])
    assert row[0].endswith(expected), (row[0], expected)


def _tiny_sigrl(tmp_path):
    """A tiny SigRL model (random CLIP towers) saved as config + checkpoint."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS
    cfg_text = f"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mlrpl_mm'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(mean=[122.8, 116.7, 104.1], std=[68.5, 66.6, 70.3],
                           to_rgb=True),
    backbone=dict(type='OpenCLIPBackbone', model_cfg={TINY_CLIP!r}),
    head=dict(type='SigRLHead', num_classes=3,
              text_encoder=dict(model_cfg={TINY_CLIP!r}), embed_dims=32,
              topk=3, gmc=dict(type='GMC', in_channels=32, hidden_channels=16,
                               num_heads=2),
              svfr=dict(type='SVFR', embed_dims=32, class_chunk=2)))
test_pipeline = [dict(type='LoadImageFromFile'),
                 dict(type='Resize', scale=(32, 32)),
                 dict(type='PackInputs')]
"""
    config = str(tmp_path / 'sigrl_tiny.py')
    with open(config, 'w') as f:
        f.write(cfg_text)
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    ckpt = str(tmp_path / 'sigrl_tiny.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=['cat', 'dog', 'car']))),
               ckpt)
    return config, ckpt


def test_zero_shot_class_names_at_call_time(run, tmp_path, capsys):
    from mlrpl_mm.apis import MultiLabelInferencer
    from mlrpl_mm.models.heads.sigrl_head import build_label_embed
    config, ckpt = _tiny_sigrl(tmp_path)
    img = osp.join(run['data_root'], 'val2014', 'COCO_val2014_000000100001.jpg')
    inf = MultiLabelInferencer(config, ckpt)
    # the head had no class names: they come from the checkpoint meta
    base = inf(img, topk=3)[0]
    assert base['pred_class'] and set(base['pred_class']) <= {'cat', 'dog', 'car'}
    new = ['bird', 'car', 'tree', 'boat']
    zs = inf(img, topk=4, class_names=new)[0]
    assert len(zs['pred_scores']) == 4
    assert sorted(zs['pred_class']) == sorted(new)
    # reference: the head's score formula with the embeddings of the new names
    head = inf.model.head
    data = inf._load(img)
    from mmengine.dataset import pseudo_collate
    batch = inf.model.data_preprocessor(pseudo_collate([data]), False)
    with torch.no_grad():
        tokens, glob = inf.model.extract_feat(batch['inputs'])[-2:]
        emb = build_label_embed(new, None, head.text_encoder)
        ref = torch.sigmoid(head.scores(tokens, glob, emb))[0].numpy()
    np.testing.assert_allclose(zs['pred_scores'], ref, rtol=1e-5, atol=1e-6)
    # the training label set is back after the call
    again = inf(img, topk=3)[0]
    np.testing.assert_allclose(again['pred_scores'], base['pred_scores'])
    # CLI --classes (in this interpreter), from a file and from a list
    names_file = tmp_path / 'names.txt'
    names_file.write_text('bird\ncar\n\ntree\nboat\n')
    cli = _load_tool('infer')
    assert cli.read_class_names(str(names_file)) == new
    res = cli.main([config, ckpt, img, '--classes', 'bird,car,tree,boat',
                    '--topk', '2'])
    np.testing.assert_allclose(res[0]['pred_scores'], zs['pred_scores'],
                               rtol=1e-6)
    row = [line for line in capsys.readouterr().out.splitlines()
           if line.startswith(img)]
    top2 = [new[i] for i in np.argsort(-zs['pred_scores'], kind='stable')[:2]]
    assert len(row) == 1 and row[0].split()[1] == top2[0], row
    with pytest.raises(ValueError, match='no class name'):
        cli.read_class_names(' , ')


def _load_tool(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        f'tool_{name}', osp.join(ROOT, 'tools', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
