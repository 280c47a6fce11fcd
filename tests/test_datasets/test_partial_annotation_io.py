"""partial_annotation_io: real partial annotations in the JSON (OpenMMLab
2.0) and both CSV forms, and their errors; annotation_stats."""
import json

import numpy as np
import pytest

from mlrpl_mm.datasets import (annotation_stats, load_partial_annotations,
                               save_partial_annotations)
from tests.fixtures import PARTIAL_CLASSES as CLASSES
from tests.fixtures import PARTIAL_EXPECTED as EXPECTED
from tests.fixtures import make_partial_annotation_files as _files
from tests.fixtures import make_partial_annotation_images as _images
from tests.fixtures import write_text as _write


def test_class_file_and_unlisted_negative(tmp_path):
    root = str(tmp_path)
    _images(root)
    _, long_csv, _ = _files(root)
    cls_file = _write(tmp_path / 'classes.txt', 'cat\ndog\ncar\n')
    paths, labels, classes = load_partial_annotations(
        long_csv, cls_file, unlisted='negative')
    assert paths == ['a.jpg', 'b.jpg', 'c.jpg'] and classes == CLASSES
    np.testing.assert_array_equal(labels, np.where(EXPECTED == 0, -1,
                                                   EXPECTED))


def test_save_load_round_trip_and_stats(tmp_path):
    rng = np.random.RandomState(0)
    labels = rng.randint(-1, 2, (7, 3)).astype(np.int8)
    paths = [f'x/{i}.jpg' for i in range(7)]
    out = str(tmp_path / 'sub' / 'a.json')
    save_partial_annotations(out, paths, labels, CLASSES)
    p2, l2, c2 = load_partial_annotations(out)
    assert p2 == paths and c2 == CLASSES
    np.testing.assert_array_equal(l2, labels)
    st = annotation_stats(labels, CLASSES)
    assert st['known_fraction'] == pytest.approx((labels != 0).mean())
    assert st['per_class']['dog']['pos'] == int((labels[:, 1] == 1).sum())


@pytest.mark.parametrize('text,msg', [
    ('img_path,class,label\na.jpg,cow,1\n', "line 2: unknown class 'cow'"),
    ('img_path,class,label\na.jpg,cat,1\na.jpg,cat,-1\n',
     "line 3: image 'a.jpg' is both positive and negative for class 'cat'"),
    ('img_path,class,label\na.jpg,cat,2\n', "line 2: label '2' is not"),
    ('img_path,pos,neg\na.jpg,cat;dog,dog\n',
     'both positive and negative for class \'dog\''),
    ('img_path,pos,neg\na.jpg,cat,\na.jpg,dog,\n', 'listed twice'),
    ('path,class,label\na.jpg,cat,1\n', 'no img_path column'),
])
def test_csv_errors_name_line_and_value(tmp_path, text, msg):
    path = _write(tmp_path / 'bad.csv', text)
    with pytest.raises(ValueError, match='bad.csv') as e:
        load_partial_annotations(path, CLASSES)
    assert msg in str(e.value)


def test_csv_with_bom_and_pandas_float_labels(tmp_path):
    """Excel's "CSV UTF-8" (a byte-order mark) and pandas' float labels
    (1.0 / -1.0 / 0.0) read as the plain long CSV; a BOM'd class list too.
    Other numbers are still refused with the file and line."""
    root = str(tmp_path)
    _, long_csv, wide_csv = _files(root)
    text = open(long_csv).read()
    floats = text.replace(',1\n', ',1.0\n').replace(',-1\n', ',-1.0\n') \
        .replace(',0\n', ',0.0\n')
    assert '1.0' in floats and '-1.0' in floats and '0.0' in floats
    bom = str(tmp_path / 'excel.csv')
    with open(bom, 'w', encoding='utf-8-sig') as f:
        f.write(floats)
    cls_file = str(tmp_path / 'classes.txt')
    with open(cls_file, 'w', encoding='utf-8-sig') as f:
        f.write('cat\ndog\ncar\n')
    for path in (bom, wide_csv):
        paths, labels, classes = load_partial_annotations(path, cls_file)
        assert paths == ['a.jpg', 'b.jpg', 'c.jpg'] and classes == CLASSES
        np.testing.assert_array_equal(labels, EXPECTED)
    wide_bom = str(tmp_path / 'wide_bom.csv')
    with open(wide_bom, 'w', encoding='utf-8-sig') as f:
        f.write(open(wide_csv).read())
    np.testing.assert_array_equal(
        load_partial_annotations(wide_bom, CLASSES)[1], EXPECTED)
    for bad in ('0.5', '2.0', '1.5', 'nan', 'yes'):
        path = _write(tmp_path / 'bad.csv', 'img_path,class,label\n'
                      f'a.jpg,cat,1.0\nb.jpg,dog,{bad}\n')
        with pytest.raises(ValueError, match='bad.csv') as e:
            load_partial_annotations(path, CLASSES)
        assert f"line 3: label '{bad}' is not 1, -1 or 0" in str(e.value)


@pytest.mark.parametrize('data_list,msg', [
    ([dict(img_path='a.jpg', pos_label=['cow'])],
     "data_list[0].pos_label: unknown class 'cow'"),
    ([dict(img_path='a.jpg', pos_label=[5])],
     'data_list[0].pos_label: class index 5 outside [0, 3)'),
    ([dict(img_path='a.jpg', pos_label=[1], neg_label=['dog'])],
     "both positive and negative for class 'dog'"),
    ([dict(img_path='a.jpg'), dict(img_path='a.jpg')],
     "data_list[1]: image 'a.jpg' is listed twice"),
    ([dict(img_path='a.jpg', gt_label=[0])], "'gt_label' (full labels)"),
    ([dict(pos_label=[0])], 'data_list[0]: empty or missing img_path'),
])
def test_json_errors(tmp_path, data_list, msg):
    path = str(tmp_path / 'bad.json')
    with open(path, 'w') as f:
        json.dump(dict(metainfo=dict(classes=CLASSES), data_list=data_list),
                  f)
    with pytest.raises(ValueError) as e:
        load_partial_annotations(path)
    assert msg in str(e.value) and 'bad.json' in str(e.value)


def test_missing_files_and_class_list(tmp_path):
    root = str(tmp_path)
    _images(root)
    js, long_csv, _ = _files(root)
    with pytest.raises(ValueError, match='a CSV has no class list'):
        load_partial_annotations(long_csv)
    with pytest.raises(FileNotFoundError, match='classes.txt not found'):
        load_partial_annotations(long_csv, str(tmp_path / 'classes.txt'))
    with pytest.raises(ValueError, match='differ from the classes given'):
        load_partial_annotations(js, ['dog', 'cat', 'car'])
    with pytest.raises(ValueError, match="no metainfo.classes"):
        load_partial_annotations(_write(tmp_path / 'n.json',
                                        '{"data_list": []}'))
