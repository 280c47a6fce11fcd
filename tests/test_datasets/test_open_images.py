"""OpenImagesMultiLabel: the official image-level label CSVs as partial
labels, and the metric restricted to the verified test entries."""
import os.path as osp

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mlrpl_mm.datasets import OpenImagesMultiLabel, read_class_descriptions
from mlrpl_mm.evaluation.metrics.multi_label_map import MultiLabelMAP
from tests.fixtures import write_image

MIDS = ['/m/011k07', '/m/0120dh', '/m/01226z', '/m/012n7d']
NAMES = ['Tortoise', 'Sea turtle', 'Football', 'Ambulance']


def make_open_images(root, labels, header_in_classes=False, split='test',
                     extra_rows=()):
    """Writes the official layout: ``class-descriptions-boxable.csv`` (no
    header, V6; ``LabelName,DisplayName`` first, V7),
    ``<split>-annotations-human-imagelabels-boxable.csv`` and
    ``<split>/<ImageID>.jpg``. ``labels`` (N, 4) in {+1, -1, 0}; rows are
    written class-major (image order = first appearance)."""
    with open(osp.join(root, 'class-descriptions-boxable.csv'), 'w') as f:
        if header_in_classes:
            f.write('LabelName,DisplayName\n')
        for m, n in zip(MIDS, NAMES):
            f.write(f'{m},{n}\n')
    ids = [f'{i:016x}' for i in range(len(labels))]
    lines = ['ImageID,Source,LabelName,Confidence']
    for i, row in enumerate(labels):
        for c in np.flatnonzero(row != 0):
            lines.append(f'{ids[i]},verification,{MIDS[c]},'
                         f'{1 if row[c] == 1 else 0}')
            if (i + c) % 3 == 0:  # a second source agreeing
                lines.append(f'{ids[i]},crowdsource-verification,{MIDS[c]},'
                             f'{1 if row[c] == 1 else 0}')
    lines += list(extra_rows)
    with open(osp.join(root, f'{split}-annotations-human-imagelabels-'
                       'boxable.csv'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    for i, img in enumerate(ids):
        write_image(osp.join(root, split, f'{img}.jpg'), 8, i)
    return ids


LABELS = np.array([[1, -1, 0, 0], [0, 0, 1, -1], [-1, 1, 1, 0],
                   [0, -1, 0, 1], [1, 0, -1, -1], [0, 0, 0, 1]], np.int8)


@pytest.mark.parametrize('v7', [False, True])
def test_reads_official_csvs_as_partial_labels(tmp_path, v7):
    root = str(tmp_path)
    ids = make_open_images(root, LABELS, header_in_classes=v7)
    assert read_class_descriptions(
        osp.join(root, 'class-descriptions-boxable.csv')) == (MIDS, NAMES)
    ds = OpenImagesMultiLabel(data_root=root, split='test',
                              check_images=True)
    np.testing.assert_array_equal(ds.partial_labels, LABELS)
    assert ds.metainfo['classes'] == tuple(NAMES)
    assert ds.metainfo['mids'] == tuple(MIDS)
    info = ds.get_data_info(2)
    assert info['img_path'] == osp.join(root, 'test', ids[2] + '.jpg')
    assert info['img_id'] == ids[2]
    np.testing.assert_array_equal(info['full_label'], LABELS[2])
    np.testing.assert_array_equal(info['partial_label'], LABELS[2])


def test_class_subset_by_mid_or_name_and_unlabelled_images(tmp_path):
    root = str(tmp_path)
    make_open_images(root, LABELS)
    ds = OpenImagesMultiLabel(data_root=root, split='test',
                              classes=['Ambulance', '/m/011k07'])
    # image 1 keeps its Ambulance label; images with labels only in the
    # other classes (image 2) are dropped
    expected = LABELS[:, [3, 0]]
    keep = (expected != 0).any(1)
    np.testing.assert_array_equal(ds.partial_labels, expected[keep])
    assert ds.metainfo['classes'] == ('Ambulance', 'Tortoise')
    ds = OpenImagesMultiLabel(data_root=root, split='test',
                              classes=['Ambulance', '/m/011k07'],
                              drop_unlabelled=False)
    np.testing.assert_array_equal(ds.partial_labels, expected)
    with pytest.raises(ValueError, match="'Zebra' is neither a MID"):
        OpenImagesMultiLabel(data_root=root, split='test', classes=['Zebra'])


@pytest.mark.parametrize('row,msg', [
    ('0000000000000000,verification,/m/011k07,0.5',
     "Confidence '0.5' is not 0 or 1"),
    ('0000000000000000,verification,/m/999,1',
     'LabelName /m/999 is not in class-descriptions-boxable.csv'),
    ('0000000000000000,verification,/m/011k07,0',
     'image 0000000000000000 is verified both present and absent for '
     '/m/011k07 (Tortoise), lines 2 and 20'),
])
def test_errors_name_line_and_value(tmp_path, row, msg):
    root = str(tmp_path)
    make_open_images(root, LABELS, extra_rows=[row])
    with pytest.raises(ValueError) as e:
        OpenImagesMultiLabel(data_root=root, split='test')
    assert msg in str(e.value)


def test_conflict_policy_and_missing_files(tmp_path):
    root = str(tmp_path)
    make_open_images(root, LABELS, extra_rows=[
        '0000000000000000,verification,/m/011k07,0'])
    ds = OpenImagesMultiLabel(data_root=root, split='test',
                              on_conflict='unknown')
    assert ds.partial_labels[0, 0] == 0
    with pytest.raises(FileNotFoundError, match='train-annotations-human'):
        OpenImagesMultiLabel(data_root=root, split='train')
    with pytest.raises(FileNotFoundError, match='nope.csv not found'):
        OpenImagesMultiLabel(data_root=root, split='test',
                             class_file='nope.csv')


def test_metric_scores_only_verified_test_entries(tmp_path):
    """As the Open Images evaluation: AP of a class over its verified
    entries only, classes without a verified positive left out."""
    rng = np.random.RandomState(0)
    labels = rng.choice([-1, 0, 1], size=(40, 4), p=[0.4, 0.4, 0.2])
    labels[:, 3] = np.where(labels[:, 3] == 1, -1, labels[:, 3])  # no pos
    labels[0] = [1, 1, 1, -1]
    root = str(tmp_path)
    make_open_images(root, labels.astype(np.int8))
    ds = OpenImagesMultiLabel(data_root=root, split='test')
    scores = rng.rand(len(ds), 4).astype(np.float32)
    metric = MultiLabelMAP(ap_style='sklearn', no_positive='exclude')
    metric.dataset_meta = ds.metainfo
    metric.process(None, [dict(pred_score=scores[i],
                               full_label=ds.get_data_info(i)['full_label'],
                               sample_idx=i) for i in range(len(ds))])
    res = metric.evaluate(len(ds))
    target = ds.full_labels
    ref = [average_precision_score(target[target[:, c] != 0, c] == 1,
                                   scores[target[:, c] != 0, c])
           for c in range(3)]
    assert res['multi-label/mAP_sklearn'] == pytest.approx(
        100 * np.mean(ref), abs=1e-6)
    assert np.isnan(metric.per_class_ap[3])
    # scoring the unknown entries as negatives would change the figure
    filled = np.where(target == 0, -1, target)
    naive = [average_precision_score(filled[:, c] == 1, scores[:, c])
             for c in range(3)]
    assert abs(np.mean(naive) - np.mean(ref)) > 1e-3


def test_base_config_builds_the_test_split(tmp_path):
    from mmengine.config import Config
    from mmpretrain.registry import DATASETS
    root = str(tmp_path)
    make_open_images(root, LABELS)
    cfg = Config.fromfile(osp.join(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
        'configs', '_base_', 'datasets', 'open_images.py'))
    ds_cfg = cfg.test_dataloader.dataset
    ds_cfg.data_root = root
    ds = DATASETS.build(ds_cfg)
    np.testing.assert_array_equal(ds.full_labels, LABELS)
    assert cfg.test_evaluator.no_positive == 'exclude'


def test_csvs_with_byte_order_mark(tmp_path):
    """Both official CSVs re-saved by Excel as "CSV UTF-8" (BOM)."""
    root = str(tmp_path)
    make_open_images(root, LABELS, header_in_classes=True)
    for name in ('class-descriptions-boxable.csv',
                 'test-annotations-human-imagelabels-boxable.csv'):
        path = osp.join(root, name)
        text = open(path).read()
        with open(path, 'w', encoding='utf-8-sig') as f:
            f.write(text)
    ds = OpenImagesMultiLabel(data_root=root, split='test')
    np.testing.assert_array_equal(ds.partial_labels, LABELS)
    assert ds.metainfo['mids'] == tuple(MIDS)


@pytest.mark.parametrize('policy', ['unknown', 'positive', 'negative'])
def test_vectorised_parser_equals_row_parser(tmp_path, policy):
    """The numpy parser (official unquoted CSV) gives exactly the row-by-row
    parser's ids and labels, conflicts resolved the same, on random rows
    with repeats, conflicts, blank lines, CRLF and a class subset; quoting
    falls back to the row parser, with the same result."""
    rng = np.random.RandomState(0)
    root = str(tmp_path)
    make_open_images(root, LABELS)
    ann = osp.join(root, 'test-annotations-human-imagelabels-boxable.csv')
    ids = [f'{rng.randint(1 << 30):08x}' for _ in range(40)]
    lines = ['ImageID,Source,LabelName,Confidence']
    for _ in range(600):
        lines.append(f'{ids[rng.randint(40)]},verification,'
                     f'{MIDS[rng.randint(4)]},'
                     f'{["0", "1", "1.0", "0.0"][rng.randint(4)]}')
        if rng.rand() < 0.02:
            lines.append('')
    for crlf in (False, True):
        with open(ann, 'w', newline='') as f:
            f.write(('\r\n' if crlf else '\n').join(lines) + '\n')
        for classes in (None, ['Football', '/m/011k07']):
            ds = OpenImagesMultiLabel(
                data_root=root, split='test', on_conflict=policy,
                classes=classes, drop_unlabelled=False, lazy_init=True)
            mids, names, all_mids = ds._class_subset()
            col = {m: i for i, m in enumerate(mids)}
            fast = ds._parse_numpy(ds._read_header(), col, set(all_mids))
            assert fast is not None
            slow = ds._parse_python(col, set(all_mids), names)
            assert fast[0] == slow[0]
            np.testing.assert_array_equal(fast[1], slow[1])
            assert fast[1].dtype == slow[1].dtype
            # independent reference: first line of an entry, conflicts
            seen, order = {}, []
            for line in lines[1:]:
                if not line:
                    continue
                img, _, mid, conf = line.split(',')
                if img not in order:
                    order.append(img)
                if mid in col:
                    v = 1 if conf.startswith('1') else -1
                    seen.setdefault((img, col[mid]), set()).add(v)
            want = np.zeros((len(order), len(col)), np.int8)
            res = dict(unknown=0, positive=1, negative=-1)[policy]
            for (img, c), vs in seen.items():
                want[order.index(img), c] = vs.pop() if len(vs) == 1 else res
            assert fast[0] == order
            np.testing.assert_array_equal(fast[1], want)
            if classes is None:
                want_all = want
    with open(ann, 'w') as f:
        f.write('\n'.join(lines[:1] + [
            '"' + x.replace(',', '","') + '"' for x in lines[1:] if x]) + '\n')
    ds = OpenImagesMultiLabel(data_root=root, split='test', on_conflict=policy,
                              drop_unlabelled=False)
    assert ds._parse_numpy(ds._read_header(), {m: i for i, m in
                                              enumerate(MIDS)},
                           set(MIDS)) is None
    np.testing.assert_array_equal(ds.partial_labels, want_all)
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == order
