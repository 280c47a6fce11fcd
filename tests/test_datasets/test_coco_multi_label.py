import json
import os.path as osp
from unittest import mock

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import mlrpl_mm  # noqa: F401
from tests.fixtures import make_coco_fixture


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    return make_coco_fixture(
        str(tmp_path_factory.mktemp('coco')),
        num_train=9,
        num_val=7,
        num_classes=12,
        num_empty=2,
        seed=3)


def test_coco_labels_order_and_classes(coco):
    ds = DATASETS.build(
        dict(
            type='CocoMultiLabel', data_root=coco['data_root'], split='train'))
    assert len(ds) == 9
    assert ds.metainfo['classes'] == tuple(coco['classes'])
    np.testing.assert_array_equal(ds.full_labels, coco['labels']['train'])
    assert ds.full_labels.dtype == np.int8
    np.testing.assert_array_equal(ds.partial_labels, ds.full_labels)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['img_path'] == coco['img_paths']['train'][i]
        assert info['img_id'] == coco['img_ids']['train'][i]
        assert info['gt_label'] == np.flatnonzero(
            coco['labels']['train'][i] == 1).tolist()
        assert info['full_label'].dtype == np.int8
        assert info['full_label'].shape == (12, )
        np.testing.assert_array_equal(info['partial_label'],
                                      info['full_label'])


def test_coco_drop_empty_and_crowd(coco):
    ds = DATASETS.build(
        dict(
            type='CocoMultiLabel',
            data_root=coco['data_root'],
            split='val',
            drop_empty=True))
    lab = coco['labels']['val']
    keep = (lab == 1).any(1)
    assert len(ds) == keep.sum() == 5
    np.testing.assert_array_equal(ds.full_labels, lab[keep])
    ds = DATASETS.build(
        dict(
            type='CocoMultiLabel',
            data_root=coco['data_root'],
            split='val',
            skip_crowd=True))
    np.testing.assert_array_equal(ds.full_labels,
                                  coco['labels_no_crowd']['val'])


def test_coco_is_lazy_on_images(coco):
    with mock.patch('PIL.Image.open') as pil, mock.patch('cv2.imread') as cv:
        ds = DATASETS.build(
            dict(
                type='CocoMultiLabel',
                data_root=coco['data_root'],
                split='train'))
        ds.get_data_info(0)
    assert not pil.called and not cv.called


def test_coco_errors(coco, tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [')
    with pytest.raises(ValueError, match='bad.json'):
        DATASETS.build(dict(type='CocoMultiLabel', ann_file=str(bad)))
    nocat = tmp_path / 'nocat.json'
    nocat.write_text(json.dumps(dict(images=[], annotations=[])))
    with pytest.raises(ValueError, match="nocat.json.*'categories'"):
        DATASETS.build(dict(type='CocoMultiLabel', ann_file=str(nocat)))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        DATASETS.build(
            dict(
                type='CocoMultiLabel',
                ann_file=str(tmp_path / 'missing.json')))
    with pytest.raises(ValueError, match='split'):
        DATASETS.build(dict(type='CocoMultiLabel', split='training'))
    # a missing image: named at build time with check_images=True
    missing = coco['img_paths']['train'][0]
    import os
    os.rename(missing, missing + '.bak')
    try:
        with pytest.raises(FileNotFoundError, match=osp.basename(missing)):
            DATASETS.build(
                dict(
                    type='CocoMultiLabel',
                    split='train',
                    data_root=coco['data_root'],
                    check_images=True))
        # and at load time by the pipeline
        ds = DATASETS.build(
            dict(
                type='CocoMultiLabel',
                split='train',
                data_root=coco['data_root'],
                pipeline=[dict(type='LoadImageFromFile')]))
        with pytest.raises(FileNotFoundError, match=osp.basename(missing)):
            ds[0]
    finally:
        os.rename(missing + '.bak', missing)


def test_coco_indices_and_subset_keep_labels_aligned(coco):
    lab = coco['labels']['train']
    ds = DATASETS.build(
        dict(
            type='CocoMultiLabel',
            data_root=coco['data_root'],
            split='train',
            indices=[4, 1, 7]))
    np.testing.assert_array_equal(ds.full_labels, lab[[4, 1, 7]])
    assert ds.get_data_info(1)['img_path'] == coco['img_paths']['train'][1]
    full = DATASETS.build(
        dict(
            type='CocoMultiLabel', data_root=coco['data_root'], split='train'))
    sub = full.get_subset([5, 2])
    np.testing.assert_array_equal(sub.full_labels, lab[[5, 2]])
    np.testing.assert_array_equal(sub.get_data_info(0)['full_label'], lab[5])
    assert sub.get_data_info(1)['img_path'] == coco['img_paths']['train'][2]
    np.testing.assert_array_equal(full.full_labels, lab)  # untouched
    full.get_subset_(-3)
    np.testing.assert_array_equal(full.full_labels, lab[-3:])
    assert full.get_data_info(0)['img_id'] == coco['img_ids']['train'][-3]


def test_100k_images_build_without_reading_any_image(tmp_path):
    """Building a 100k-image dataset (and its partial-label wrapper) reads
    only the annotation file: the image directory does not even exist."""
    import time
    n = 100_000
    rng = np.random.RandomState(0)
    ids = rng.permutation(10**6)[:n]
    images = [dict(id=int(i), file_name=f'{i:012d}.jpg', width=8, height=8)
              for i in ids]
    cats = rng.choice([1, 2, 3, 5, 90], 2 * n)
    anns = [dict(id=k, image_id=int(ids[k % n]), category_id=int(c),
                 iscrowd=0, bbox=[0, 0, 1, 1], area=1)
            for k, c in enumerate(cats)]
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'instances_train2014.json').write_text(
        json.dumps(dict(images=images, annotations=anns, categories=[
            dict(id=i, name=str(i)) for i in (90, 1, 2, 3, 5)])))
    t0 = time.time()
    with mock.patch('PIL.Image.open') as pil, \
            mock.patch('cv2.imread') as cv, \
            mock.patch('mmengine.fileio.get') as get:
        ds = DATASETS.build(dict(type='PartialLabelDataset', known_ratio=0.3,
                                 dataset=dict(type='CocoMultiLabel',
                                              data_root=str(tmp_path),
                                              split='train')))
        info = ds.get_data_info(n - 1)
    elapsed = time.time() - t0
    assert not pil.called and not cv.called and not get.called
    assert not (tmp_path / 'train2014').exists()
    assert len(ds) == n and ds.partial_labels.shape == (n, 5)
    assert info['img_path'].endswith(f'{ids[-1]:012d}.jpg')
    assert elapsed < 30, f'{elapsed:.1f} s to build 100k infos'
