import numpy as np
import pytest
import torch
from mmengine.dataset import (ClassBalancedDataset, ConcatDataset,
                              RepeatDataset)
from mmengine.dataset import default_collate
from mmpretrain.registry import DATASETS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import (cooccurrence_graph, get_full_labels,
                               get_partial_labels, proportion_mask)
from mlrpl_mm.utils import stack_field
from tests.fixtures import make_coco_fixture

PIPE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(16, 16)),
    dict(type='PackInputs', algorithm_keys=['partial_label', 'full_label'])
]


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return make_coco_fixture(
        str(tmp_path_factory.mktemp('coco')),
        num_train=10,
        num_val=6,
        num_classes=7,
        seed=1)


def inner(coco, split='train', **kw):
    return dict(
        type='CocoMultiLabel', data_root=coco['data_root'], split=split, **kw)


def test_proportion_mode_hides_full_labels(coco):
    ds = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            dataset=inner(coco),
            mode='proportion',
            known_ratio=0.5))
    full = coco['labels']['train']
    expected = np.where(
        np.random.RandomState(0).random_sample(full.shape) < 0.5, full, 0)
    np.testing.assert_array_equal(ds.partial_labels, expected)
    assert ds.partial_labels.dtype == np.int8
    np.testing.assert_array_equal(ds.hidden_full_labels, full)
    assert ds.metainfo['classes'] == tuple(coco['classes'])
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert 'full_label' not in info and 'gt_label' not in info
        np.testing.assert_array_equal(info['partial_label'], expected[i])
        assert info['sample_idx'] == i
    np.testing.assert_array_equal(get_partial_labels(ds), expected)
    np.testing.assert_array_equal(get_full_labels(ds), full)
    np.testing.assert_allclose(ds.label_graph(), cooccurrence_graph(expected))
    assert abs(ds.known_ratio_achieved() - (expected != 0).mean()) < 1e-12


def test_known_ratio_one_and_validation(coco):
    ds = DATASETS.build(
        dict(type='PartialLabelDataset', dataset=inner(coco), known_ratio=1.0))
    np.testing.assert_array_equal(ds.partial_labels, coco['labels']['train'])
    for bad in (0, -0.1, 1.5, float('nan')):
        with pytest.raises(ValueError, match='known_ratio'):
            DATASETS.build(
                dict(
                    type='PartialLabelDataset',
                    dataset=inner(coco),
                    known_ratio=bad))
    with pytest.raises(ValueError, match='mode'):
        DATASETS.build(
            dict(type='PartialLabelDataset', dataset=inner(coco), mode='half'))


def test_pipeline_packing_and_collate(coco):
    ds = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            dataset=inner(coco, pipeline=PIPE),
            known_ratio=0.4))
    batch = default_collate([ds[i] for i in range(4)])
    assert batch['inputs'].shape == (4, 3, 16, 16)
    samples = batch['data_samples']
    target = stack_field(samples, 'partial_label')
    np.testing.assert_array_equal(target.numpy(), ds.partial_labels[:4])
    for s in samples:
        assert 'full_label' not in s and 'gt_label' not in s
    # a test split keeps its full labels for the metric
    test = DATASETS.build(inner(coco, 'val', pipeline=PIPE, test_mode=True))
    batch = default_collate([test[i] for i in range(3)])
    full = stack_field(batch['data_samples'], 'full_label')
    np.testing.assert_array_equal(full.numpy(), coco['labels']['val'][:3])
    assert batch['data_samples'][0].sample_idx == 0


def test_wrapped_plain_mmpretrain_dataset(tmp_path):
    import json
    ann = tmp_path / 'ann.json'
    ann.write_text(
        json.dumps(
            dict(
                metainfo=dict(classes=['a', 'b', 'c']),
                data_list=[
                    dict(img_path='x.jpg', gt_label=[0, 2]),
                    dict(img_path='y.jpg', gt_label=[]),
                    dict(img_path='z.jpg', gt_label=[1])
                ])))
    ds = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            known_ratio=1.0,
            dataset=dict(type='MultiLabelDataset', ann_file=str(ann))))
    np.testing.assert_array_equal(ds.partial_labels,
                                  [[1, -1, 1], [-1, -1, -1], [-1, 1, -1]])
    assert get_partial_labels(ds.dataset).shape == (3, 3)


def test_get_partial_labels_unwraps(coco):
    a = DATASETS.build(
        dict(type='PartialLabelDataset', dataset=inner(coco), known_ratio=0.3))
    b = DATASETS.build(inner(coco, 'val'))
    a2 = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            dataset=inner(coco, 'val'),
            known_ratio=0.3))
    cat = ConcatDataset([a, a2])
    np.testing.assert_array_equal(
        get_partial_labels(cat),
        np.concatenate([a.partial_labels, a2.partial_labels]))
    assert len(cat) == 16
    np.testing.assert_array_equal(
        cat.get_data_info(12)['partial_label'], a2.partial_labels[2])
    rep = RepeatDataset(a, times=2)
    np.testing.assert_array_equal(
        get_partial_labels(rep), np.tile(a.partial_labels, (2, 1)))
    cb = ClassBalancedDataset(a, oversample_thr=0.5)
    assert len(cb) > len(a)  # some rows repeated
    np.testing.assert_array_equal(get_partial_labels(cb),
                                  a.partial_labels[cb.repeat_indices])
    sub = torch.utils.data.Subset(b, [3, 1])
    np.testing.assert_array_equal(
        get_partial_labels(sub), coco['labels']['val'][[3, 1]])


def test_proportion_mask_does_not_touch_global_rng():
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    proportion_mask(np.ones((3, 4)), 0.5)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_wrapper_pipeline_overrides_inner(coco):
    ds = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            dataset=inner(coco),
            known_ratio=0.5,
            pipeline=PIPE))
    out = ds[3]
    assert out['inputs'].shape == (3, 16, 16)
    np.testing.assert_array_equal(out['data_samples'].partial_label,
                                  ds.partial_labels[3])
    assert out['data_samples'].sample_idx == 3


def test_cooccurrence_graph_matches_naive_counts():
    """A[i, j] = #(y_i = +1 and y_j = +1) / #(y_i = +1) over the known
    labels; a class without a known positive gets a zero row (no NaN);
    unknown (0) and negative entries never count."""
    rng = np.random.RandomState(3)
    y = rng.choice([-1, 0, 1], size=(40, 6), p=[0.5, 0.3, 0.2]).astype(
        np.int8)
    y[:, 4] = np.where(y[:, 4] == 1, 0, y[:, 4])  # class 4: no known positive
    n, c = y.shape
    expected = np.zeros((c, c))
    for i in range(c):
        den = sum(y[k, i] == 1 for k in range(n))
        for j in range(c):
            num = sum(y[k, i] == 1 and y[k, j] == 1 for k in range(n))
            expected[i, j] = num / den if den else 0.0
    got = cooccurrence_graph(y)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    assert (got[4] == 0).all() and (got[:, 4] == 0).all()
    assert (np.diag(got)[[0, 1, 2, 3, 5]] == 1).all()
