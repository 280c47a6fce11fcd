"""Corrupt annotation files and images -> an error naming the file and the
field / ids (issue 12.6, data part), on real files in the real formats."""
import copy
import json
import logging
import os
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine.logging import MMLogger

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import (CocoMultiLabel, NUSWideMultiLabel,
                               PartialLabelDataset, VGMultiLabel,
                               VOCMultiLabel)
from tests.fixtures import (make_nus_wide_fixture, make_vg_fixture,
                            make_voc_fixture)

# the demo configs' pipeline: mmcv's plain LoadImageFromFile (not ours)
PLAIN_PIPELINE = [dict(type='LoadImageFromFile'),
                  dict(type='Resize', scale=(32, 32)),
                  dict(type='PackInputs', algorithm_keys=['partial_label'])]


@pytest.fixture
def coco(rel_data, tmp_path):
    """(root, json path, parsed json) of a private copy of the demo data."""
    root = str(tmp_path / 'data')
    shutil.copytree(rel_data, root)
    ann = osp.join(root, 'annotations', 'instances_train2014.json')
    with open(ann) as f:
        data = json.load(f)
    return root, ann, data


def _write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f)


def _build(root):
    return CocoMultiLabel(data_root=root, split='train')


def _capture_warnings():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    return logger, handler, records


# ------------------------------------------------------------------ COCO json
def test_coco_duplicate_image_ids(coco):
    root, ann, data = coco
    ok = _build(root)
    assert len(ok) == len(data['images'])
    bad = copy.deepcopy(data)
    dup = bad['images'][0]['id']
    bad['images'][3]['id'] = dup  # today: row 0 gets image 3's labels
    _write(ann, bad)
    with pytest.raises(ValueError) as info:
        _build(root)
    msg = str(info.value)
    assert ann in msg and 'duplicate image id' in msg and repr(dup) in msg


def test_coco_duplicate_category_ids(coco):
    root, ann, data = coco
    bad = copy.deepcopy(data)
    dup = bad['categories'][0]['id']
    bad['categories'][1]['id'] = dup  # today: a class is silently renamed
    _write(ann, bad)
    with pytest.raises(ValueError) as info:
        _build(root)
    msg = str(info.value)
    assert ann in msg and 'duplicate category id' in msg and repr(dup) in msg


@pytest.mark.parametrize('case,pattern', [
    ('no_annotations', r"no 'annotations' field .*all-negative"),
    ('no_images', r"no 'images' field"),
    ('category_without_name', r"categories\[2\] \(id .*\) has no 'name'"),
    ('image_without_file_name', r"images\[4\] \(id .*\) has no 'file_name'"),
    ('annotation_without_category', r"annotations\[1\] .*'category_id'"),
    ('json_list', r'top level must be a JSON object .* got a JSON list'),
    ('zero_images', r'lists no images'),
    ('zero_categories', r'lists no categories'),
    ('images_not_list', r"'images' must be a list, got dict"),
])
def test_coco_malformed_fields(coco, case, pattern):
    root, ann, data = coco
    bad = copy.deepcopy(data)
    if case == 'no_annotations':
        del bad['annotations']
    elif case == 'no_images':
        del bad['images']
    elif case == 'category_without_name':
        del bad['categories'][2]['name']
    elif case == 'image_without_file_name':
        del bad['images'][4]['file_name']
    elif case == 'annotation_without_category':
        del bad['annotations'][1]['category_id']
    elif case == 'json_list':
        bad = bad['images']
    elif case == 'zero_images':
        bad['images'], bad['annotations'] = [], []
    elif case == 'zero_categories':
        bad['categories'], bad['annotations'] = [], []
    elif case == 'images_not_list':
        bad['images'] = {'0': bad['images'][0]}
    _write(ann, bad)
    with pytest.raises(ValueError, match=pattern) as info:
        _build(root)
    assert ann in str(info.value)


def test_coco_annotations_of_unknown_images_warned_with_count(coco):
    root, ann, data = coco
    good = _build(root).full_labels.copy()
    bad = copy.deepcopy(data)
    ghost = max(im['id'] for im in bad['images']) + 1000
    extra = [dict(a, id=10**6 + k, image_id=ghost)
             for k, a in enumerate(bad['annotations'][:3])]
    bad['annotations'] += extra
    _write(ann, bad)
    logger, handler, records = _capture_warnings()
    try:
        ds = _build(root)
    finally:
        logger.removeHandler(handler)
    np.testing.assert_array_equal(ds.full_labels, good)
    msgs = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any('3 annotation(s)' in m and ann in m and 'image ids' in m
               for m in msgs), msgs


def test_coco_same_labels_as_pycocotools(coco):
    """The json reader keeps the reference order and labels (pycocotools'
    COCO.imgs / imgToAnns)."""
    from pycocotools.coco import COCO
    root, ann, _ = coco
    ds = _build(root)
    ref = COCO(ann)
    ids = list(ref.imgs)
    cats = sorted(ref.cats)
    want = -np.ones((len(ids), len(cats)), np.int8)
    for r, i in enumerate(ids):
        for a in ref.imgToAnns.get(i, []):
            want[r, cats.index(a['category_id'])] = 1
    np.testing.assert_array_equal(ds.full_labels, want)
    assert [ds.get_data_info(k)['img_id'] for k in range(len(ds))] == ids
    assert ds.metainfo['classes'] == tuple(ref.cats[c]['name'] for c in cats)


def test_coco_empty_annotations_list_warned(coco):
    """``"annotations": []``: every image all-negative, a WARNING naming the
    file (not silent)."""
    root, ann, data = coco
    _write(ann, dict(data, annotations=[]))
    logger, handler, records = _capture_warnings()
    try:
        ds = _build(root)
    finally:
        logger.removeHandler(handler)
    assert (ds.full_labels == -1).all()
    msgs = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert any(ann in m and '"annotations": []' in m and 'all-negative' in m
               for m in msgs), msgs


def test_one_unique_id_checker():
    """CocoMultiLabel and the VOC / VG lists share check_unique_ids."""
    from mlrpl_mm.datasets import coco_multi_label
    from mlrpl_mm.datasets.base_multi_label import check_unique_ids
    assert coco_multi_label.check_unique_ids is check_unique_ids
    assert not hasattr(CocoMultiLabel, '_check_unique')
    with pytest.raises(ValueError, match=r"f\.json: 1 duplicate image id\(s\)"
                       r", e\.g\. \[3\]; .* \(harm\)"):
        check_unique_ids([1, 3, 2, 3], 'image id', 'f.json', 'harm')


# ------------------------------------------------------- VOC / VG / NUS-WIDE
def test_voc_empty_and_duplicate_split_file(tmp_path):
    voc = make_voc_fixture(str(tmp_path), split_sizes={'trainval': 4})
    split = osp.join(voc['data_root'], 'ImageSets', 'Main', 'trainval.txt')
    ids = voc['ids']['trainval']
    with open(split, 'w') as f:
        f.write('\n'.join(ids + [ids[1]]) + '\n')
    with pytest.raises(ValueError, match=r'duplicate image id.*' + ids[1]) \
            as info:
        VOCMultiLabel(data_root=voc['data_root'], split='trainval')
    assert split in str(info.value)
    open(split, 'w').close()  # today: 'need at least one array to concatenate'
    with pytest.raises(ValueError, match='no images in') as info:
        VOCMultiLabel(data_root=voc['data_root'], split='trainval')
    assert split in str(info.value)


def test_vg_empty_and_duplicate_list_file(tmp_path):
    vg = make_vg_fixture(str(tmp_path), num_train=4, num_test=2,
                         num_classes=5)
    lst = vg['list_files']['train']
    with open(lst) as f:
        names = [n.strip() for n in f if n.strip()]
    with open(lst, 'w') as f:
        f.write('\n'.join(names + [names[0]]) + '\n')
    kw = dict(data_root=vg['data_root'], split='train', num_classes=5,
              classes_file=None)
    with pytest.raises(ValueError, match=r'duplicate image name.*' +
                       names[0]) as info:
        VGMultiLabel(**kw)
    assert 'train_list.txt' in str(info.value)
    open(lst, 'w').close()
    with pytest.raises(ValueError, match=r'no images in .*train_list.txt'):
        VGMultiLabel(**kw)


def test_nus_wide_empty_image_list(tmp_path):
    nus = make_nus_wide_fixture(str(tmp_path), num_train=3, num_test=2)
    lst = osp.join(nus['data_root'], 'ImageList', 'TrainImagelist.txt')
    open(lst, 'w').close()
    for name in nus['concepts']:  # label files consistent with the list
        open(osp.join(nus['data_root'], 'Groundtruth', 'TrainTestLabels',
                      f'Labels_{name}_Train.txt'), 'w').close()
    with pytest.raises(ValueError, match=r'no images in .*TrainImagelist.txt'):
        NUSWideMultiLabel(data_root=nus['data_root'], split='train')


# ---------------------------------------------------------------- images
def test_zero_byte_image_named_with_plain_loader(coco):
    """The demo / protocol configs load with mmcv's LoadImageFromFile, whose
    cv2 error for an empty file names no path."""
    root, _, _ = coco
    ds = CocoMultiLabel(data_root=root, split='train',
                        pipeline=PLAIN_PIPELINE)
    victim = ds.get_data_info(2)['img_path']
    open(victim, 'wb').close()
    ds[1]
    with pytest.raises(OSError) as info:
        ds[2]
    msg = str(info.value)
    assert victim in msg and 'zero-byte file' in msg and 'sample 2' in msg
    # through the partial-label wrapper (training mode) as well
    wrapped = PartialLabelDataset(
        dict(type='CocoMultiLabel', data_root=root, split='train'),
        known_ratio=0.5, pipeline=PLAIN_PIPELINE)
    with pytest.raises(OSError, match='zero-byte file') as info:
        wrapped[2]
    assert victim in str(info.value)


def test_zero_byte_image_named_by_our_loader(coco):
    root, _, _ = coco
    ds = CocoMultiLabel(
        data_root=root, split='val', test_mode=True,
        pipeline=[dict(type='LoadImageFromFileOrSkip')] + PLAIN_PIPELINE[1:])
    victim = ds.get_data_info(0)['img_path']
    open(victim, 'wb').close()
    with pytest.raises(OSError, match='zero-byte file') as info:
        ds[0]
    assert victim in str(info.value)
    assert os.path.getsize(victim) == 0
