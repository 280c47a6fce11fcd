import json

import numpy as np
import pytest
import torch
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from sklearn.metrics import average_precision_score

import mlrpl_mm  # noqa: F401
from mlrpl_mm.evaluation import average_precision, multilabel_prf


def naive_voc_ap(scores, targets):
    """Direct VOC all-points envelope AP with loops
    (docs/equations/protocol.md)."""
    keep = targets != 0
    s, t = scores[keep], targets[keep] == 1
    order = sorted(range(len(s)), key=lambda i: -s[i])
    tp = fp = 0
    rec, prec = [], []
    for i in order:
        tp += t[i]
        fp += 1 - t[i]
        rec.append(tp / t.sum())
        prec.append(tp / (tp + fp))
    mrec = [0.0] + rec + [1.0]
    mpre = [0.0] + prec + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]
               for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


def random_data(n=60, c=6, seed=0, ties=False):
    rng = np.random.RandomState(seed)
    scores = rng.rand(n, c)
    if ties:
        scores = np.round(scores * 5) / 5
    targets = np.where(rng.rand(n, c) < 0.3, 1, -1)
    targets[rng.rand(n, c) < 0.2] = 0
    targets[0] = 1  # every class has a positive
    return scores, targets.astype(np.int8)


@pytest.mark.parametrize('ties', [False, True])
def test_ap_matches_sklearn_and_envelope(ties):
    scores, targets = random_data(ties=ties, seed=int(ties))
    for c in range(scores.shape[1]):
        k = targets[:, c] != 0
        ref = average_precision_score(targets[k, c] == 1, scores[k, c])
        assert abs(
            average_precision(scores[:, c], targets[:, c], 'sklearn') -
            ref) < 1e-6
        if not ties:
            assert abs(
                average_precision(scores[:, c], targets[:, c], 'voc') -
                naive_voc_ap(scores[:, c], targets[:, c])) < 1e-6
    # the envelope is never below the non-interpolated AP
    assert all(
        average_precision(scores[:, c], targets[:, c], 'voc') >=
        average_precision(scores[:, c], targets[:, c], 'sklearn') - 1e-12
        for c in range(scores.shape[1]))


def test_ap_style_validation_and_no_positive():
    with pytest.raises(ValueError, match='ap_style'):
        average_precision(np.zeros(3), np.ones(3), 'coco')
    assert np.isnan(average_precision(np.zeros(3), -np.ones(3)))
    with pytest.raises(ValueError, match='ap_style'):
        METRICS.build(dict(type='MultiLabelMAP', ap_style='11point'))


def samples(scores, targets, key='full_label', idx=None):
    out = []
    for i, (s, t) in enumerate(zip(scores, targets)):
        ds = DataSample().set_pred_score(torch.tensor(s, dtype=torch.float32))
        ds.set_field(t, key)
        ds.set_metainfo(dict(sample_idx=i if idx is None else idx[i]))
        out.append(ds.to_dict())
    return out


@pytest.mark.parametrize('style', ['voc', 'sklearn'])
def test_metric_end_to_end(style, tmp_path):
    scores, targets = random_data(n=40, c=5, seed=2)
    targets[:, 4] = np.where(targets[:, 4] == 1, -1, targets[:, 4])  # no pos
    out_file = tmp_path / 'ap.json'
    metric = METRICS.build(
        dict(
            type='MultiLabelMAP',
            ap_style=style,
            per_class_ap_file=str(out_file)))
    metric.dataset_meta = dict(classes=list('abcde'))
    data = samples(scores, targets)
    metric.process(None, data[:25])
    # duplicates (e.g. a sampler's padding) inside the result list: dropped
    # by sample_idx even when the size given does not truncate them
    metric.process(None, data[:3] + data[25:])
    res = metric.evaluate(43)
    assert metric.num_images == 40
    key = f'multi-label/mAP_{style}'
    assert key in res
    ap = []
    for c in range(4):
        k = targets[:, c] != 0
        s32 = scores[k, c].astype(np.float32)
        ap.append(
            average_precision_score(targets[k, c] == 1, s32) if style ==
            'sklearn' else naive_voc_ap(s32, targets[k, c]))
    ap.append(0.0)
    assert abs(res[key] - 100 * np.mean(ap)) < 1e-4
    np.testing.assert_allclose(
        metric.per_class_ap, 100 * np.array(ap), atol=1e-4)
    dumped = json.loads(out_file.read_text())
    assert dumped['classes'] == list('abcde') and len(dumped['ap']) == 5
    # excluded class: mean over the 4 classes with a positive
    metric2 = METRICS.build(
        dict(type='MultiLabelMAP', ap_style=style, no_positive='exclude'))
    metric2.process(None, data)
    res2 = metric2.evaluate(40)
    assert abs(res2[key] - 100 * np.mean(ap[:4])) < 1e-4
    assert np.isnan(metric2.per_class_ap[4])


def naive_prf(scores, targets, thr=None, k=None):
    n, c = scores.shape
    pred = np.zeros((n, c), bool)
    for i in range(n):
        if k is None:
            pred[i] = scores[i] >= thr
        else:
            pred[i, np.argsort(-scores[i])[:k]] = True
    tp = np.zeros(c)
    np_ = np.zeros(c)
    ng = np.zeros(c)
    for i in range(n):
        for j in range(c):
            if targets[i, j] == 0:
                continue
            tp[j] += pred[i, j] and targets[i, j] == 1
            np_[j] += pred[i, j]
            ng[j] += targets[i, j] == 1
    cp = np.mean([tp[j] / np_[j] if np_[j] else 0 for j in range(c)])
    cr = np.mean([tp[j] / ng[j] if ng[j] else 0 for j in range(c)])
    op, orr = tp.sum() / np_.sum(), tp.sum() / ng.sum()
    return dict(
        CP=cp,
        CR=cr,
        CF1=2 * cp * cr / (cp + cr),
        OP=op,
        OR=orr,
        OF1=2 * op * orr / (op + orr))


def test_prf_threshold_and_topk():
    scores, targets = random_data(n=30, c=7, seed=4)
    for got, ref in ((multilabel_prf(scores, targets, thr=0.5),
                      naive_prf(scores, targets, thr=0.5)),
                     (multilabel_prf(scores, targets,
                                     topk=3), naive_prf(scores, targets,
                                                        k=3))):
        for key in ref:
            assert abs(got[key] - ref[key]) < 1e-9, key
    metric = METRICS.build(dict(type='MultiLabelMAP'))
    res = metric.compute(scores, targets)
    assert abs(res['CF1_top3'] -
               100 * naive_prf(scores, targets, k=3)['CF1']) < 1e-7
    assert set(res) == {
        'mAP_voc', 'CP', 'CR', 'CF1', 'OP', 'OR', 'OF1', 'CP_top3', 'CR_top3',
        'CF1_top3', 'OP_top3', 'OR_top3', 'OF1_top3'
    }


def test_metric_gt_label_fallback_and_errors():
    metric = METRICS.build(dict(type='MultiLabelMAP', ap_style='sklearn'))
    ds = DataSample().set_pred_score(torch.tensor([0.9, 0.1, 0.8]))
    ds.set_gt_label([0, 2])
    metric.process(None, [ds.to_dict()])
    np.testing.assert_array_equal(metric.results[0]['target'], [1, -1, 1])
    bad = DataSample().set_pred_score(torch.tensor([0.9, 0.1, 0.8]))
    bad.set_field(np.array([1, -1], np.int8), 'full_label')
    with pytest.raises(ValueError, match='class-count mismatch'):
        metric.process(None, [bad.to_dict()])
    with pytest.raises(KeyError, match='full_label'):
        metric.process(
            None,
            [DataSample().set_pred_score(torch.tensor([0.1, 0.2])).to_dict()])


def test_per_class_ap_dumped_to_log_dir(tmp_path):
    from mmengine.logging import MMLogger
    log_file = tmp_path / 'run' / '20260101_000000.log'
    log_file.parent.mkdir()
    MMLogger.get_instance('mlrpl_metric_dump_test', log_file=str(log_file))
    scores, targets = random_data(n=20, c=3, seed=5)
    metric = METRICS.build(dict(type='MultiLabelMAP', ap_style='sklearn',
                                dump_per_class_ap=True))
    metric.process(None, samples(scores, targets))
    metric.evaluate(20)
    dumped = json.loads(
        (tmp_path / 'run' / 'per_class_ap_sklearn.json').read_text())
    assert dumped['ap_style'] == 'sklearn'
    np.testing.assert_allclose(dumped['ap'], metric.per_class_ap)


def test_concatenated_test_sets_with_repeated_sample_idx_all_counted():
    """A ConcatDataset numbers each sub-dataset's samples from 0: images with
    the same sample_idx but different paths are different images, while a
    true duplicate (same index and path, e.g. sampler padding) is dropped."""
    scores, targets = random_data(n=12, c=4, seed=7)
    data = samples(scores, targets, idx=list(range(6)) * 2)
    for i, d in enumerate(data):
        d['img_path'] = f'{"a" if i < 6 else "b"}/{i % 6}.jpg'
    metric = METRICS.build(dict(type='MultiLabelMAP', ap_style='sklearn'))
    metric.process(None, data + data[7:8])  # one padding duplicate
    res = metric.evaluate(13)
    assert metric.num_images == 12
    ref = METRICS.build(dict(type='MultiLabelMAP', ap_style='sklearn'))
    expected = ref.compute(scores, targets)
    for k, v in expected.items():
        assert abs(res[f'multi-label/{k}'] - v) < 1e-9, k
