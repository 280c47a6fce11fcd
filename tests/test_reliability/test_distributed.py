"""A 2-process CPU run (tools/dist_train.sh, gloo) and 1-process runs over the
same data: same label graph and CST prototypes (computed before the first
update, from the same initial weights), and the 2-process validation metric
equals tools/test.py's 1-process metric of the same checkpoint exactly, with
every one of the 7 (odd) validation images counted once although the
distributed sampler pads the split to 8."""
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

import mlrpl_mm  # noqa: F401
from mlrpl_mm.evaluation.metrics import MultiLabelMAP
from mlrpl_mm.utils import safe_torch_load

from .conftest import NUM_VAL, method_options, read_scalars, run_tool

KEY = 'multi-label/mAP_voc'
HST = [
    'model.head.trunk.feat_channels=16', 'model.head.trunk.inter_channels=8',
    'model.head.trunk.out_channels=16', 'model.head.trunk.class_embedding.embed_dims=8',
    'model.head.cst.num_prototypes=2', 'model.head.pseudo_label_epoch=0',
    'custom_hooks.1.start_epoch=0', 'custom_hooks.1.batch_size=3',
    'val_dataloader.batch_size=3', 'test_dataloader.batch_size=3',
]


def _state(work):
    ck = safe_torch_load(osp.join(work, 'epoch_1.pth'), map_location='cpu')
    return ck['state_dict']


def test_two_processes_match_one_process(rel_data, tmp_path):
    assert NUM_VAL % 2 == 1
    dist_work, single_work = str(tmp_path / 'dist'), str(tmp_path / 'single')
    run_tool(['bash', 'tools/dist_train.sh', 'configs/hst_demo.py', '2'] +
             method_options(rel_data, dist_work, 1,
                            HST + ['train_cfg.val_interval=1']),
             env=dict(PYTHON=sys.executable, PORT='29637'))
    run_tool([sys.executable, 'tools/train.py', 'configs/hst_demo.py'] +
             method_options(rel_data, single_work, 1, HST))

    # whole-training-set state: identical on 1 and 2 processes
    d, s = _state(dist_work), _state(single_work)
    torch.testing.assert_close(d['head.trunk.adj'], s['head.trunk.adj'],
                               rtol=0, atol=0)
    assert d['head.trunk.adj'].abs().sum() > 0
    assert int(d['head.cst.prototype_epoch']) == 0
    torch.testing.assert_close(d['head.cst.prototype_count'],
                               s['head.cst.prototype_count'], rtol=0, atol=0)
    torch.testing.assert_close(d['head.cst.prototypes'],
                               s['head.cst.prototypes'], rtol=1e-5, atol=1e-5)
    assert d['head.cst.prototype_count'].sum() > 0

    # the 2-process validation metric == 1-process test metric, exactly
    val = [r for r in read_scalars(dist_work) if KEY in r]
    assert len(val) == 1
    preds_file = str(tmp_path / 'preds.pkl')
    proc = run_tool([sys.executable, 'tools/test.py', 'configs/hst_demo.py',
                     osp.join(dist_work, 'epoch_1.pth'), '--out', preds_file]
                    + method_options(rel_data, str(tmp_path / 't'), 1, HST))
    with open(preds_file, 'rb') as f:
        preds = pickle.load(f)
    assert sorted(int(p['sample_idx']) for p in preds) == list(range(NUM_VAL))
    metric = MultiLabelMAP(ap_style='voc')
    metric.process(None, preds)
    single = metric.compute_metrics(metric.results)['mAP_voc']
    assert val[0][KEY] == pytest.approx(single, rel=1e-12, abs=1e-12)
    assert f'mAP_voc: {single:.4f}' in proc.stdout + proc.stderr

    # the padded duplicate (sample 0 on the second rank) would have changed
    # the metric: the comparison above can detect double counting
    scores = np.stack([np.asarray(p['pred_score']) for p in preds])
    targets = np.stack([np.asarray(p['full_label']) for p in preds])
    order = np.argsort([int(p['sample_idx']) for p in preds])
    scores, targets = scores[order], targets[order]
    dup = metric.compute(np.concatenate([scores, scores[:1]]),
                         np.concatenate([targets, targets[:1]]))['mAP_voc']
    assert dup != pytest.approx(single, abs=1e-6)
