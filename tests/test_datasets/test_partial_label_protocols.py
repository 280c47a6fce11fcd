"""The partial-label protocols: bit-exactness with the published VOC 2007
files, the single-positive protocol, label files."""
import json
import os.path as osp

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import (load_label_file, proportion_mask,
                               save_label_file, single_positive_labels,
                               spml_train_val_split)

DATA = osp.join(osp.dirname(osp.dirname(__file__)), 'data', 'voc2007_labels')
RATIOS = ('0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '0.8', '0.9')


@pytest.fixture(scope='module')
def voc_train():
    return load_label_file(osp.join(DATA, 'original-labels', 'train.txt'))


@pytest.fixture(scope='module')
def voc_as_mmpretrain_dataset(voc_train, tmp_path_factory):
    """The published trainval labels as a plain mmpretrain MultiLabelDataset
    annotation file (the wrapper must work with any multi-label dataset)."""
    path = tmp_path_factory.mktemp('ann') / 'voc07_trainval.json'
    path.write_text(json.dumps(dict(
        metainfo=dict(classes=[f'c{i}' for i in range(20)]),
        data_list=[dict(img_path=f'{i:06d}.jpg',
                        gt_label=np.flatnonzero(r == 1).tolist())
                   for i, r in enumerate(voc_train)])))
    return str(path)


#: SHA-256 of the published files (HCP-MLR-PL, partial-labels/VOC2007) as
#: copied into tests/data: the bit-exact test below compares our generator
#: with these files, so they must stay the published ones (never regenerated
#: from our own output).
PUBLISHED_SHA256 = {
    'original-labels/train.txt':
    '5d0490258a63e0874c3a8ff238168fce3372392cce88a90551422a531ee39378',
    'original-labels/val.txt':
    '325e0b173c30953bf1e623a51dc2c4fcdaf81f54c7efc6a18e828d698a3842bb',
    'partial-labels/train_proportion_0.1.txt':
    '7d79cc874d7f1bc7cc37084e91ef7085eabaeb648ed18cd07c0fc489be721d17',
    'partial-labels/train_proportion_0.2.txt':
    '1d44c4255b1721ebfd1d59ea86a583215741b56f8ce0cfb1ba28af8557a91028',
    'partial-labels/train_proportion_0.3.txt':
    'feeea71c8b2a2ed41d900f3409c180287b1f242bc3dcfca4142c2ca033bbcdf3',
    'partial-labels/train_proportion_0.4.txt':
    '902a7e286bcb7de3d6bc041e2a1b898e6f602c0aff43c055cc7a02171e079b1f',
    'partial-labels/train_proportion_0.5.txt':
    '5457aeda767431d7d2f678a86b2907025f37b7a3d1b6724908f966c209488762',
    'partial-labels/train_proportion_0.6.txt':
    '5f23fd19045e8ded90b4f3b870651fc7a61f1ffc63a53b6c8f3ab1a0d4fd8663',
    'partial-labels/train_proportion_0.7.txt':
    '79dbeb86faafa65fb52d83d31001af25a70096e566e8914fec5e4f1247720f3d',
    'partial-labels/train_proportion_0.8.txt':
    '56ebdb536524c5483c44c5b59436280b2cae84399c8799a0f5911341e4d536f3',
    'partial-labels/train_proportion_0.9.txt':
    'b52a30ac8b8f6525cf93712f7f0ed67d3b3c99056d9d0dc9c842bec6ca8d631e',
}
#: The read-only shared copy of the published files, where present.
SHARED = osp.join(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))), '..', 'shared', 'data', 'voc2007_labels')


@pytest.mark.parametrize('name', sorted(PUBLISHED_SHA256))
def test_fixture_files_are_the_published_ones(name):
    import hashlib
    with open(osp.join(DATA, name), 'rb') as f:
        data = f.read()
    assert hashlib.sha256(data).hexdigest() == PUBLISHED_SHA256[name]
    shared = osp.join(SHARED, name)
    if osp.isfile(shared):  # byte-identical to the shared copy
        with open(shared, 'rb') as f:
            assert f.read() == data


def test_published_matrix_shapes(voc_train):
    assert voc_train.shape == (5011, 20)
    assert set(np.unique(voc_train)) == {-1, 1}


@pytest.mark.parametrize('p', RATIOS)
def test_bit_exact_published_voc2007_partial_labels(p, voc_train,
                                                    voc_as_mmpretrain_dataset):
    published = load_label_file(
        osp.join(DATA, 'partial-labels', f'train_proportion_{p}.txt'),
        num_rows=5011, num_classes=20)
    np.testing.assert_array_equal(proportion_mask(voc_train, float(p)),
                                  published)
    ds = DATASETS.build(dict(
        type='PartialLabelDataset', mode='proportion', known_ratio=float(p),
        dataset=dict(type='MultiLabelDataset',
                     ann_file=voc_as_mmpretrain_dataset, lazy_init=False)))
    np.testing.assert_array_equal(ds.partial_labels, published)


def naive_single_positive(labels, seed=1200):
    """Cole et al. as described in docs/equations/protocol.md, on Python
    lists."""
    rng = np.random.RandomState(seed)
    out = np.zeros_like(labels)
    for i, row in enumerate(labels):
        pos = [c for c in range(len(row)) if row[c] == 1]
        neg = [c for c in range(len(row)) if row[c] == -1]
        rng.shuffle(pos)
        rng.shuffle(neg)
        if pos:
            out[i, pos[0]] = 1
    return out


def test_single_positive_protocol(voc_train):
    sub = voc_train[:300]
    sp = single_positive_labels(sub)
    np.testing.assert_array_equal(sp, naive_single_positive(sub))
    assert sp.dtype == np.int8
    assert ((sp == 1).sum(1) == 1).all()            # one positive each
    assert (sub[sp == 1] == 1).all()                # a true positive
    assert set(np.unique(sp)) == {0, 1}             # the rest unknown
    # the negatives' shuffle is part of the protocol: skipping it changes
    # the choices of later images
    rng = np.random.RandomState(1200)
    no_neg = np.zeros_like(sp)
    for i, row in enumerate(sub):
        pos = np.flatnonzero(row == 1)
        rng.shuffle(pos)
        no_neg[i, pos[0]] = 1
    assert (no_neg != sp).any()
    # an image without positive stays unknown
    z = single_positive_labels(-np.ones((2, 5), np.int8))
    assert (z == 0).all()


def test_spml_split():
    tr, va = spml_train_val_split(101)
    assert len(va) == 20 and len(tr) == 81
    assert (np.diff(tr) > 0).all() and (np.diff(va) > 0).all()
    assert set(tr) | set(va) == set(range(101)) and not set(tr) & set(va)
    perm = np.random.RandomState(1200).permutation(101)
    np.testing.assert_array_equal(tr, np.sort(perm[:81]))


def test_single_positive_wrapper_subsets(voc_as_mmpretrain_dataset, voc_train):
    inner = dict(type='MultiLabelDataset', ann_file=voc_as_mmpretrain_dataset)
    tr = DATASETS.build(dict(type='PartialLabelDataset',
                             mode='single_positive', subset='train',
                             dataset=inner))
    va = DATASETS.build(dict(type='PartialLabelDataset',
                             mode='single_positive', subset='val',
                             dataset=inner))
    tr_idx, va_idx = spml_train_val_split(5011)
    assert len(tr) == len(tr_idx) == 4009 and len(va) == 1002
    # the mask is drawn over the whole official split, then subset
    np.testing.assert_array_equal(
        tr.partial_labels, single_positive_labels(voc_train)[tr_idx])
    np.testing.assert_array_equal(va.partial_labels, voc_train[va_idx])
    i = tr.get_data_info(5)
    assert 'full_label' not in i and i['ori_sample_idx'] == tr_idx[5]
    assert i['sample_idx'] == 5
    j = va.get_data_info(7)
    np.testing.assert_array_equal(j['full_label'], voc_train[va_idx[7]])


@pytest.mark.parametrize('ext', ['txt', 'npy'])
def test_file_mode_roundtrip(ext, tmp_path, voc_as_mmpretrain_dataset):
    inner = dict(type='MultiLabelDataset', ann_file=voc_as_mmpretrain_dataset)
    path = str(tmp_path / f'saved.{ext}')
    a = DATASETS.build(dict(type='PartialLabelDataset', known_ratio=0.3,
                            dataset=inner, save_label_file=path))
    if ext == 'txt':  # same text format as the published files
        with open(path) as f, open(osp.join(
                DATA, 'partial-labels', 'train_proportion_0.3.txt')) as g:
            assert f.read().split() == g.read().split()
    b = DATASETS.build(dict(type='PartialLabelDataset', mode='file',
                            label_file=path, dataset=inner))
    np.testing.assert_array_equal(a.partial_labels, b.partial_labels)


def test_label_file_errors(tmp_path):
    labels = np.array([[1, -1, 0], [0, 0, 1]], np.int8)
    ok = save_label_file(str(tmp_path / 'ok.txt'), labels)
    np.testing.assert_array_equal(load_label_file(ok), labels)
    with pytest.raises(ValueError, match=r'ok.txt: 2 rows.*3 images'):
        load_label_file(ok, num_rows=3)
    with pytest.raises(ValueError, match=r'ok.txt: 3 columns.*4 classes'):
        load_label_file(ok, num_classes=4)
    bad = tmp_path / 'bad.txt'
    bad.write_text('1,-1,0\n0,2,1\n')
    with pytest.raises(ValueError, match=r'bad.txt: value 2 at row 1'):
        load_label_file(str(bad))
    ragged = tmp_path / 'ragged.txt'
    ragged.write_text('1,-1,0\n0,1\n')
    with pytest.raises(ValueError, match='ragged.txt: row 1'):
        load_label_file(str(ragged))
    junk = tmp_path / 'junk.txt'
    junk.write_text('1,x,0\n')
    with pytest.raises(ValueError, match='junk.txt, line 1'):
        load_label_file(str(junk))
    np.save(tmp_path / 'half.npy', np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match='half.npy: value 0.5'):
        load_label_file(str(tmp_path / 'half.npy'))
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        load_label_file(str(tmp_path / 'nope.txt'))


def test_file_mode_validates_against_dataset(tmp_path,
                                             voc_as_mmpretrain_dataset):
    inner = dict(type='MultiLabelDataset', ann_file=voc_as_mmpretrain_dataset)
    path = save_label_file(str(tmp_path / 'short.txt'),
                           np.zeros((10, 20), np.int8))
    with pytest.raises(ValueError, match='short.txt: 10 rows.*5011'):
        DATASETS.build(dict(type='PartialLabelDataset', mode='file',
                            label_file=path, dataset=inner))
    with pytest.raises(ValueError, match='label_file'):
        DATASETS.build(dict(type='PartialLabelDataset', mode='file',
                            dataset=inner))
