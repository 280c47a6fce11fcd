"""The data-preparation tools (tools/data/), run in-process on fixtures."""
import hashlib
import importlib.util
import os.path as osp

import numpy as np
import pytest

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import load_label_file
from mlrpl_mm.datasets.data_prep import record_checksums
from mlrpl_mm.datasets.glove_embeddings import glove_class_embeddings
from mlrpl_mm.datasets.label_stats import label_statistics
from tests.fixtures import make_coco_fixture, make_voc_fixture

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(ROOT, 'tests', 'data', 'voc2007_labels')


def tool(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', 'data', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def check_manifest(out_dir):
    with open(osp.join(out_dir, 'SHA256SUMS')) as f:
        lines = [line.split() for line in f if line.strip()]
    for digest, name in lines:
        with open(osp.join(out_dir, name), 'rb') as g:
            assert hashlib.sha256(g.read()).hexdigest() == digest
    return {name for _, name in lines}


def test_prepare_labels_voc_and_coco(tmp_path, capsys):
    voc = make_voc_fixture(str(tmp_path / 'voc'),
                           split_sizes=dict(trainval=5, test=4))
    out = str(tmp_path / 'labels')
    tool('prepare_labels')(['voc', '--data-root', voc['data_root'],
                            '--splits', 'trainval', 'test', '--out-dir', out])
    for split in ('trainval', 'test'):
        np.testing.assert_array_equal(
            load_label_file(osp.join(out, f'voc_{split}_labels.txt')),
            voc['labels'][split])
        with open(osp.join(out, f'voc_{split}_images.txt')) as f:
            assert f.read().split() == [f'JPEGImages/{i}.jpg'
                                        for i in voc['ids'][split]]
    assert check_manifest(out) == {
        'voc_trainval_labels.txt', 'voc_trainval_images.txt',
        'voc_test_labels.txt', 'voc_test_images.txt', 'voc_classes.txt'}
    printed = capsys.readouterr().out
    assert 'images: 5' in printed and 'aeroplane' in printed
    coco = make_coco_fixture(str(tmp_path / 'coco'), num_train=4, num_val=3,
                             num_classes=6)
    tool('prepare_labels')(['coco', '--data-root', coco['data_root'],
                            '--splits', 'val', '--drop-empty', '--quiet',
                            '--out-dir', out])
    lab = coco['labels']['val']
    np.testing.assert_array_equal(
        load_label_file(osp.join(out, 'coco_val_labels.txt')),
        lab[(lab == 1).any(1)])
    assert 'coco_val_labels.txt' in check_manifest(out)  # manifest updated
    assert 'voc_test_labels.txt' in check_manifest(out)


def test_make_partial_labels_reproduces_published(tmp_path, capsys):
    out = str(tmp_path / 'partial')
    tool('make_partial_labels')([
        '--labels', osp.join(DATA, 'original-labels', 'train.txt'),
        '--ratios', '0.1', '0.7', '--out-dir', out, '--graph'])
    for p in ('0.1', '0.7'):
        ours = osp.join(out, f'train_proportion_{p}.txt')
        pub = osp.join(DATA, 'partial-labels', f'train_proportion_{p}.txt')
        np.testing.assert_array_equal(load_label_file(ours),
                                      load_label_file(pub))
        g = np.load(osp.join(out, f'graph_train_proportion_{p}.npy'))
        assert g.shape == (20, 20) and np.isfinite(g).all()
    assert len(check_manifest(out)) == 4
    assert 'known ratio 0.1' in capsys.readouterr().out
    sp = str(tmp_path / 'sp')
    tool('make_partial_labels')([
        '--labels', osp.join(DATA, 'original-labels', 'val.txt'),
        '--mode', 'single_positive', '--out-dir', sp, '--format', 'npy'])
    lab = np.load(osp.join(sp, 'train_single_positive.npy'))
    assert lab.shape == (4952, 20) and ((lab == 1).sum(1) == 1).all()
    tr = np.loadtxt(osp.join(sp, 'spml_train_indices.txt'), dtype=int)
    assert len(tr) == 4952 - round(0.2 * 4952)


def test_dataset_stats_from_labels_and_config(tmp_path, capsys):
    out = tool('dataset_stats')([
        '--labels', osp.join(DATA, 'partial-labels',
                             'train_proportion_0.3.txt')])
    stats = label_statistics(out[0][1])
    assert abs(stats['known_ratio'] - 0.3) < 0.01
    assert 'known ratio: 0.30' in capsys.readouterr().out
    coco = make_coco_fixture(str(tmp_path / 'coco'), num_train=5, num_val=3,
                             num_classes=80)
    res = tool('dataset_stats')([
        '--config', osp.join(ROOT, 'configs', 'pbce_coco_p50.py'),
        '--cfg-data-root', coco['data_root']])
    train_labels = res[0][1]
    full = coco['labels']['train']
    np.testing.assert_array_equal(
        train_labels, np.where(np.random.RandomState(0).random_sample(
            full.shape) < 0.5, full, 0))
    np.testing.assert_array_equal(res[1][1], coco['labels']['val'])


def test_class_embeddings_glove(tmp_path):
    glove = tmp_path / 'glove.txt'
    rng = np.random.RandomState(0)
    vocab = {w: rng.randn(4) for w in ['dining', 'table', 'dog', 'potted',
                                       'plant', 'cat']}
    glove.write_text(''.join(f'{w} ' + ' '.join(f'{x:.6f}' for x in v) + '\n'
                             for w, v in vocab.items()))
    emb = glove_class_embeddings(['dining table', 'dog', 'potted_plant'],
                                 str(glove))
    np.testing.assert_allclose(emb[0], (vocab['dining'] + vocab['table']) / 2,
                               atol=1e-5)
    np.testing.assert_allclose(emb[1], vocab['dog'], atol=1e-5)
    with pytest.raises(ValueError, match="glove.txt has no vector for"
                       " \\['zebra'\\]"):
        glove_class_embeddings(['zebra'], str(glove))
    classes = tmp_path / 'classes.txt'
    classes.write_text('cat\ndog\n')
    out = str(tmp_path / 'emb' / 'glove.npy')
    tool('make_class_embeddings')(['--classes', str(classes), '--source',
                                   'glove', '--glove-file', str(glove),
                                   '--out', out])
    np.testing.assert_allclose(np.load(out), np.stack([vocab['cat'],
                                                       vocab['dog']]),
                               atol=1e-5)
    assert check_manifest(str(tmp_path / 'emb')) == {'glove.npy'}


def test_record_checksums_updates(tmp_path):
    a = tmp_path / 'a.txt'
    a.write_text('1')
    m = str(tmp_path / 'SHA256SUMS')
    record_checksums([str(a)], m)
    a.write_text('2')
    sums = record_checksums([str(a)], m)
    assert sums['a.txt'] == hashlib.sha256(b'2').hexdigest()


def _vg_objects(rng, num_images=30, vocab=8):
    """A tiny objects.json: image i has a few objects named 'obj<k>' (with
    case / space noise) and sometimes none."""
    entries = []
    for i in range(num_images):
        objs = []
        for _ in range(rng.randint(0, 5)):
            k = min(int(rng.exponential(2.0)), vocab - 1)
            name = f'obj{k}' if rng.rand() < 0.7 else f' OBJ{k} '
            objs.append(dict(object_id=len(objs), names=[name],
                             synsets=[f'obj{k}.n.01'], x=0, y=0, w=1, h=1))
        folder = 'VG_100K' if i % 2 else 'VG_100K_2'
        entries.append(dict(image_id=1000 + i, objects=objs,
                            image_url=f'https://x/{folder}/{1000 + i}.jpg'))
    return entries


def test_prepare_vg_from_raw_objects(tmp_path, capsys):
    import json
    from collections import Counter

    from mmpretrain.registry import DATASETS
    rng = np.random.RandomState(0)
    objects = _vg_objects(rng)
    raw = tmp_path / 'objects.json'
    raw.write_text(json.dumps(objects))
    out = str(tmp_path / 'vg')
    tool('prepare_vg')(['--objects', str(raw), '--out-dir', out,
                        '--num-classes', '5', '--num-test', '10'])
    # naive: instance counts of the normalised first names, ties by name
    counts = Counter(o['names'][0].strip().lower() for e in objects
                     for o in e['objects'])
    top = sorted(counts, key=lambda n: (-counts[n], n))[:5]
    with open(osp.join(out, 'vg_category_5.txt')) as f:
        assert f.read().split() == top
    perm = np.random.RandomState(0).permutation(len(objects))
    names = [f'{1000 + i}.jpg' for i in range(len(objects))]
    test_names = [names[i] for i in np.sort(perm[:10])]
    with open(osp.join(out, 'test_list.txt')) as f:
        assert f.read().split() == test_names
    ds = DATASETS.build(dict(type='VGMultiLabel', data_root=out,
                             split='test', num_classes=5,
                             label_file='vg_category_5_labels_index.json',
                             classes_file='vg_category_5.txt'))
    assert ds.metainfo['classes'] == tuple(top)
    for row, name in enumerate(test_names):
        e = objects[int(name[:-4]) - 1000]
        present = {o['names'][0].strip().lower() for o in e['objects']}
        expected = [1 if c in present else -1 for c in top]
        np.testing.assert_array_equal(ds.full_labels[row], expected)
    assert (ds.full_labels == -1).all(1).any()  # empty images are kept
    assert check_manifest(out) == {
        'vg_category_5.txt', 'vg_category_5_labels_index.json',
        'train_list.txt', 'test_list.txt'}
    # reference lists: reproduced as given, unknown names refused by name
    (tmp_path / 'tr.txt').write_text('\n'.join(names[:20]) + '\n')
    (tmp_path / 'te.txt').write_text('\n'.join(names[20:]) + '\n')
    out2 = str(tmp_path / 'vg2')
    tool('prepare_vg')(['--objects', str(raw), '--out-dir', out2,
                        '--num-classes', '5', '--train-list',
                        str(tmp_path / 'tr.txt'), '--test-list',
                        str(tmp_path / 'te.txt'), '--drop-empty'])
    with open(osp.join(out2, 'train_list.txt')) as f:
        kept = f.read().split()
    assert kept == [n for n in names[:20]
                    if any(o['names'][0].strip().lower() in top
                           for o in objects[int(n[:-4]) - 1000]['objects'])]
    (tmp_path / 'te.txt').write_text('999.jpg\n')
    with pytest.raises(ValueError, match=r"not in .*objects.json.*999.jpg"):
        tool('prepare_vg')(['--objects', str(raw), '--out-dir', out2,
                            '--num-classes', '5', '--train-list',
                            str(tmp_path / 'tr.txt'), '--test-list',
                            str(tmp_path / 'te.txt')])
    raw.write_text('[{"image_id": 1, "objects": [')
    with pytest.raises(ValueError, match='malformed objects file'):
        tool('prepare_vg')(['--objects', str(raw), '--out-dir', out2])
    raw.write_text(json.dumps([{'image_id': 1}]))
    with pytest.raises(ValueError, match=r'objects.json: entry 0'):
        tool('prepare_vg')(['--objects', str(raw), '--out-dir', out2])
