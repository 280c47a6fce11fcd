import json
import os
import os.path as osp

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import mlrpl_mm  # noqa: F401
from tests.fixtures import make_nus_wide_fixture, make_vg_fixture


@pytest.fixture(scope='module')
def vg(tmp_path_factory):
    return make_vg_fixture(
        str(tmp_path_factory.mktemp('vg')),
        num_train=7,
        num_test=5,
        num_classes=200,
        seed=2)


def test_vg_loader(vg):
    for split in ('train', 'test'):
        ds = DATASETS.build(
            dict(type='VGMultiLabel', data_root=vg['data_root'], split=split))
        np.testing.assert_array_equal(ds.full_labels, vg['labels'][split])
        assert ds.metainfo['classes'] == tuple(vg['classes'])
        assert ds.get_data_info(2)['img_path'] == osp.join(
            vg['data_root'], 'VG_100K', vg['names'][split][2])
    wrapped = DATASETS.build(
        dict(
            type='PartialLabelDataset',
            known_ratio=0.2,
            dataset=dict(type='VGMultiLabel', data_root=vg['data_root'])))
    assert wrapped.partial_labels.shape == (7, 200)


def test_vg_errors(vg, tmp_path):
    with pytest.raises(ValueError, match='num_classes=10'):
        DATASETS.build(
            dict(
                type='VGMultiLabel', data_root=vg['data_root'],
                num_classes=10))
    mapping = json.load(open(vg['label_file']))
    mapping[vg['names']['train'][1]] = [3, 250]
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps(mapping))
    with pytest.raises(ValueError, match=r'bad.json.*outside \[0, 200\)'):
        DATASETS.build(
            dict(
                type='VGMultiLabel',
                data_root=vg['data_root'],
                label_file=str(bad)))
    del mapping[vg['names']['train'][1]]
    bad.write_text(json.dumps(mapping))
    with pytest.raises(ValueError, match='has no entry in .*bad.json'):
        DATASETS.build(
            dict(
                type='VGMultiLabel',
                data_root=vg['data_root'],
                label_file=str(bad)))
    bad.write_text('{"a": [1,')
    with pytest.raises(ValueError, match='malformed label file .*bad.json'):
        DATASETS.build(
            dict(
                type='VGMultiLabel',
                data_root=vg['data_root'],
                label_file=str(bad)))


@pytest.fixture(scope='module')
def nus(tmp_path_factory):
    return make_nus_wide_fixture(
        str(tmp_path_factory.mktemp('nus')), num_train=8, num_test=6, seed=1)


def test_nus_label_sets(nus):
    root = nus['data_root']
    unseen = DATASETS.build(
        dict(type='NUSWideMultiLabel', data_root=root, split='test'))
    np.testing.assert_array_equal(unseen.full_labels,
                                  nus['concept_labels']['test'])
    assert unseen.metainfo['classes'] == tuple(nus['concepts'])
    assert unseen.get_data_info(0)['img_path'] == nus['paths']['test'][0]
    seen = DATASETS.build(
        dict(
            type='NUSWideMultiLabel',
            data_root=root,
            split='train',
            label_set='seen',
            extra_label_sets=('unseen', )))
    assert seen.metainfo['classes'] == tuple(nus['seen_classes'])
    assert len(nus['seen_classes']) == len(nus['tags']) - 2  # 2 shared
    np.testing.assert_array_equal(seen.full_labels,
                                  nus['seen_labels']['train'])
    info = seen.get_data_info(3)
    np.testing.assert_array_equal(info['unseen_label'],
                                  nus['concept_labels']['train'][3])
    assert info['unseen_label'].dtype == np.int8
    gzsl = DATASETS.build(
        dict(
            type='NUSWideMultiLabel',
            data_root=root,
            split='test',
            label_set='all'))
    np.testing.assert_array_equal(
        gzsl.full_labels,
        np.concatenate(
            [nus['seen_labels']['test'], nus['concept_labels']['test']], 1))
    assert gzsl.metainfo['classes'] == tuple(nus['seen_classes'] +
                                             nus['concepts'])
    assert gzsl.metainfo['seen_classes'] == tuple(nus['seen_classes'])
    assert gzsl.metainfo['unseen_classes'] == tuple(nus['concepts'])


def test_nus_drop_empty_and_errors(nus, tmp_path):
    root = nus['data_root']
    lab = nus['concept_labels']['train'].copy()
    # make one row empty by rewriting the concept label files
    for c, name in enumerate(nus['concepts']):
        path = osp.join(root, 'Groundtruth', 'TrainTestLabels',
                        f'Labels_{name}_Train.txt')
        vals = (lab[:, c] == 1).astype(int)
        vals[0] = 0
        with open(path, 'w') as f:
            f.write('\n'.join(map(str, vals)) + '\n')
    lab[0] = -1
    ds = DATASETS.build(
        dict(type='NUSWideMultiLabel', data_root=root, drop_empty=True))
    np.testing.assert_array_equal(ds.full_labels, lab[1:])
    assert ds.get_data_info(0)['img_path'] == nus['paths']['train'][1]
    with pytest.raises(ValueError, match='label set'):
        DATASETS.build(
            dict(type='NUSWideMultiLabel', data_root=root, label_set='zsl'))
    tags = osp.join(root, 'NUS_WID_Tags', 'Test_Tags1k.dat')
    with open(tags) as f:
        rows = f.readlines()
    with open(tags, 'w') as f:
        f.writelines(rows[:-1])
    with pytest.raises(ValueError, match='Test_Tags1k.dat has 5 rows'):
        DATASETS.build(
            dict(
                type='NUSWideMultiLabel',
                data_root=root,
                split='test',
                label_set='seen'))
    os.remove(osp.join(root, 'Concepts81.txt'))
    with pytest.raises(FileNotFoundError, match='Concepts81.txt'):
        DATASETS.build(dict(type='NUSWideMultiLabel', data_root=root))


def test_wrapper_hides_extra_label_sets_of_training_images(tmp_path):
    """The other label sets of NUS-WIDE (e.g. the unseen concepts of a
    zero-shot training split) are full labels too: hidden by the wrapper."""
    nus = make_nus_wide_fixture(str(tmp_path), num_train=5, num_test=2,
                                seed=4)
    inner = dict(type='NUSWideMultiLabel', data_root=nus['data_root'],
                 split='train', label_set='seen',
                 extra_label_sets=('unseen', ))
    ds = DATASETS.build(dict(type='PartialLabelDataset', known_ratio=0.5,
                             dataset=inner))
    info = ds.get_data_info(2)
    assert not [k for k in info if k.endswith('_label')
                and k != 'partial_label']
    assert 'gt_label' not in info
    np.testing.assert_array_equal(info['partial_label'], ds.partial_labels[2])
    shown = DATASETS.build(dict(type='PartialLabelDataset', known_ratio=0.5,
                                dataset=inner, hide_full_labels=False))
    np.testing.assert_array_equal(shown.get_data_info(2)['unseen_label'],
                                  nus['concept_labels']['train'][2])


def test_loaders_read_no_image_at_build(tmp_path):
    """VOC, VG and NUS-WIDE build from their annotation files alone: with the
    image directories removed the datasets still build (images are loaded
    lazily by the pipeline)."""
    import shutil
    from unittest import mock

    from tests.fixtures import make_voc_fixture
    voc = make_voc_fixture(str(tmp_path / 'voc'),
                           split_sizes=dict(trainval=4))
    vg = make_vg_fixture(str(tmp_path / 'vg'), num_train=4, num_test=2,
                         num_classes=200, seed=0)
    nus = make_nus_wide_fixture(str(tmp_path / 'nus'), num_train=4,
                                num_test=2, seed=0)
    shutil.rmtree(osp.join(voc['data_root'], 'JPEGImages'))
    shutil.rmtree(osp.join(vg['data_root'], 'VG_100K'))
    shutil.rmtree(osp.join(nus['data_root'], 'Flickr'))
    cfgs = [dict(type='VOCMultiLabel', data_root=voc['data_root']),
            dict(type='VGMultiLabel', data_root=vg['data_root']),
            dict(type='NUSWideMultiLabel', data_root=nus['data_root'],
                 label_set='all')]
    with mock.patch('PIL.Image.open') as pil, mock.patch('cv2.imread') as cv:
        for cfg in cfgs:
            ds = DATASETS.build(dict(type='PartialLabelDataset',
                                     known_ratio=0.5, dataset=cfg))
            assert len(ds) == 4
            ds.get_data_info(3)
    assert not pil.called and not cv.called
