"""ZeroShotMultiLabelMetric: mAP and F1@k on hand-computed values."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401
from mlrpl_mm.evaluation.metrics.zero_shot_multi_label_metric import \
    zero_shot_scores


def test_zero_shot_scores_hand_values():
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.7, 0.6]])
    targets = np.array([[1, -1, 1], [-1, 1, 1]])
    out = zero_shot_scores(scores, targets, topks=(1, 2))
    # AP: class 0 (one positive ranked first) 1; class 1: positive ranked
    # 2nd of 2 -> 1/2; class 2: positives ranked 1st (0.6) and 2nd -> 1
    assert out['mAP'] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    # top-1: image 0 -> class 0 (TP), image 1 -> class 1 (TP): P=1, R=2/4
    assert out['P@1'] == pytest.approx(100.0)
    assert out['R@1'] == pytest.approx(50.0)
    assert out['F1@1'] == pytest.approx(100 * 2 * 0.5 / 1.5)
    # top-2: image 0 -> {0, 1} (1 TP), image 1 -> {1, 2} (2 TP): P=3/4, R=3/4
    assert out['F1@2'] == pytest.approx(75.0)


def _sample(idx, score, label, zsl=None):
    ds = DataSample(metainfo=dict(sample_idx=idx))
    ds.set_pred_score(torch.tensor(score))
    ds.set_field(np.asarray(label, np.int8), 'full_label')
    if zsl is not None:
        ds.set_field(torch.tensor(zsl), 'zsl_pred_score', field_type='data')
    return ds.to_dict()


def test_metric_both_modes_and_dataset_meta():
    metric = METRICS.build(dict(type='ZeroShotMultiLabelMetric',
                                topks=(1, )))
    metric.dataset_meta = dict(classes=('a', 'b', 'u1', 'u2'),
                               unseen_classes=('u1', 'u2'))
    metric.process(None, [
        _sample(0, [0.9, 0.1, 0.8, 0.2], [1, -1, 1, -1], zsl=[0.3, 0.7]),
        _sample(1, [0.1, 0.9, 0.2, 0.6], [-1, 1, -1, 1], zsl=[0.1, 0.9]),
        _sample(1, [0.1, 0.9, 0.2, 0.6], [-1, 1, -1, 1], zsl=[0.1, 0.9]),
    ])
    res = metric.evaluate(2)
    # GZSL: every class perfectly ranked
    assert res['zero-shot/GZSL_mAP'] == pytest.approx(100.0)
    # ZSL (scores over u1, u2 alone): u1 positive in image 0 scored 0.3 vs
    # 0.1 -> AP 1; u2 positive in image 1: 0.9 vs 0.7 -> AP 1; top-1 of
    # image 0 is u2 (wrong), of image 1 u2 (right): P@1 = 1/2
    assert res['zero-shot/ZSL_mAP'] == pytest.approx(100.0)
    assert res['zero-shot/ZSL_P@1'] == pytest.approx(50.0)
    assert res['zero-shot/GZSL_P@1'] == pytest.approx(100.0)


def test_metric_errors():
    with pytest.raises(ValueError, match='mode'):
        METRICS.build(dict(type='ZeroShotMultiLabelMetric', mode='x'))
    metric = METRICS.build(dict(type='ZeroShotMultiLabelMetric'))
    with pytest.raises(KeyError, match='zsl_pred_score'):
        metric.process(None, [_sample(0, [0.1, 0.2], [1, -1])])
    metric = METRICS.build(dict(type='ZeroShotMultiLabelMetric', mode='zsl'))
    with pytest.raises(ValueError, match='full_label'):
        metric.process(None, [_sample(0, [0.1, 0.2, 0.3], [1, -1])])
    metric = METRICS.build(dict(type='ZeroShotMultiLabelMetric'))
    metric.process(None, [_sample(0, [0.1, 0.2], [1, -1], zsl=[0.5])])
    with pytest.raises(ValueError, match='unseen_classes'):
        metric.evaluate(1)
