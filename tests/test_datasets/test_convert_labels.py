"""tools/data/convert_labels.py: folder / VOC / COCO / CSV sources into the
PartialLabelAnnotations JSON, with statistics; run in-process on files in
the real formats."""
import importlib.util
import os.path as osp

import numpy as np
import pytest

from mlrpl_mm.datasets import PartialLabelAnnotations, load_partial_annotations
from tests.fixtures import make_coco_fixture, make_voc_fixture, write_image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def convert(argv):
    spec = importlib.util.spec_from_file_location(
        'convert_labels', osp.join(ROOT, 'tools', 'data',
                                   'convert_labels.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(argv)


def test_folder_per_class(tmp_path, capsys):
    src = tmp_path / 'images'
    for i, (cls, name) in enumerate([('cat', 'x1.jpg'), ('cat', 'x2.png'),
                                     ('dog', 'x1.jpg'), ('dog', 'y.jpg')]):
        write_image(str(src / cls / name), 16, i)
    (src / 'dog' / 'notes.txt').write_text('not an image')
    out = str(tmp_path / 'train.json')
    convert(['--format', 'folder', '--src', str(src), '--out', out])
    paths, labels, classes = load_partial_annotations(out)
    assert classes == ['cat', 'dog']
    assert paths == ['cat/x1.jpg', 'cat/x2.png', 'dog/x1.jpg', 'dog/y.jpg']
    np.testing.assert_array_equal(labels, [[1, 0], [1, 0], [0, 1], [0, 1]])
    text = capsys.readouterr().out
    assert 'images: 4, classes: 2, known entries: 50.00%' in text
    assert 'cat' in text and 'SHA256SUMS' not in text
    assert osp.isfile(tmp_path / 'SHA256SUMS')
    # multi-label folders: the same file name is one image
    convert(['--format', 'folder', '--src', str(src), '--out', out,
             '--merge-same-name', '--unlisted', 'negative'])
    paths, labels, _ = load_partial_annotations(out)
    assert paths == ['cat/x1.jpg', 'cat/x2.png', 'dog/y.jpg']
    np.testing.assert_array_equal(labels, [[1, 1], [1, -1], [-1, 1]])
    # the JSON trains as it is: the dataset reads it with the images
    ds = PartialLabelAnnotations(ann_file=out, data_prefix=str(src))
    assert len(ds) == 3


def test_voc_layout_matches_the_voc_loader(tmp_path):
    fx = make_voc_fixture(str(tmp_path), split_sizes=dict(trainval=6))
    cls_file = tmp_path / 'classes.txt'
    cls_file.write_text('\n'.join(fx['classes']) + '\n')
    out = str(tmp_path / 'voc.json')
    convert(['--format', 'voc', '--src', fx['data_root'], '--split',
             'trainval', '--classes', str(cls_file), '--out', out,
             '--image-root', osp.join(fx['data_root'], 'JPEGImages')])
    paths, labels, classes = load_partial_annotations(out)
    assert classes == fx['classes']
    assert paths == [i + '.jpg' for i in fx['ids']['trainval']]
    # difficult-only classes unknown, the rest exhaustive
    np.testing.assert_array_equal(labels, fx['labels_ignore']['trainval'])


def test_coco_json_matches_the_coco_loader(tmp_path):
    fx = make_coco_fixture(str(tmp_path), num_train=6, num_val=2,
                           num_classes=5)
    out = str(tmp_path / 'coco.json')
    convert(['--format', 'coco', '--src', fx['ann_files']['train'],
             '--out', out])
    paths, labels, classes = load_partial_annotations(out)
    assert classes == fx['classes']
    assert paths == [osp.basename(p) for p in fx['img_paths']['train']]
    np.testing.assert_array_equal(labels, fx['labels']['train'])


def test_csv_classes_inferred_sorted(tmp_path, capsys):
    src = tmp_path / 'known.csv'
    src.write_text('img_path,class,label\na.jpg,zebra,1\na.jpg,ant,-1\n'
                   'b.jpg,ant,1\n')
    out = str(tmp_path / 'k.json')
    convert(['--format', 'csv', '--src', str(src), '--out', out])
    paths, labels, classes = load_partial_annotations(out)
    assert classes == ['ant', 'zebra'] and paths == ['a.jpg', 'b.jpg']
    np.testing.assert_array_equal(labels, [[-1, 1], [1, 0]])
    assert 'known entries: 75.00%' in capsys.readouterr().out
    # a folder of images, some of them labelled: the others are added unknown
    for i, name in enumerate(('a.jpg', 'b.jpg', 'c.jpg', 'sub/d.png')):
        write_image(str(tmp_path / 'img' / name), 16, i)
    convert(['--format', 'csv', '--src', str(src), '--out', out,
             '--image-root', str(tmp_path / 'img'), '--add-images', '**/*'])
    paths, labels, classes = load_partial_annotations(out)
    assert paths == ['a.jpg', 'b.jpg', 'c.jpg', 'sub/d.png']
    np.testing.assert_array_equal(labels, [[-1, 1], [1, 0], [0, 0], [0, 0]])
    assert '2 unlisted image(s) added' in capsys.readouterr().out


def test_errors_exit_with_the_cause(tmp_path):
    src = tmp_path / 'bad.csv'
    src.write_text('img_path,class,label\na.jpg,cat,1\na.jpg,cat,-1\n')
    with pytest.raises(SystemExit, match='both positive and negative'):
        convert(['--format', 'csv', '--src', str(src), '--out',
                 str(tmp_path / 'o.json')])
    src.write_text('img_path,class,label\na.jpg,cat,1\n')
    with pytest.raises(SystemExit, match=r'1 of 1 images missing under --image-root'):
        convert(['--format', 'csv', '--src', str(src), '--out',
                 str(tmp_path / 'o.json'), '--image-root', str(tmp_path)])
    (tmp_path / 'c.txt').write_text('dog\n')
    with pytest.raises(SystemExit, match="unknown class 'cat'"):
        convert(['--format', 'csv', '--src', str(src), '--classes',
                 str(tmp_path / 'c.txt'), '--out', str(tmp_path / 'o.json')])
    with pytest.raises(SystemExit, match='no class folders'):
        convert(['--format', 'folder', '--src', str(tmp_path / 'c.txt'
                                                  ).replace('c.txt', ''),
                 '--out', str(tmp_path / 'o.json')])


def test_coco_source_refused_like_the_coco_loader(tmp_path):
    """The converter uses CocoMultiLabel's validated reader: an image-info
    json (no 'annotations') and duplicate image ids are errors naming the
    file (and the id), not 100% known negatives / a bare shape error."""
    import json
    fx = make_coco_fixture(str(tmp_path), num_train=4, num_val=2,
                           num_classes=3)
    src = fx['ann_files']['train']
    with open(src) as f:
        data = json.load(f)
    out = str(tmp_path / 'o.json')
    info = dict(images=data['images'], categories=data['categories'])
    bad = str(tmp_path / 'image_info.json')
    with open(bad, 'w') as f:
        json.dump(info, f)
    with pytest.raises(SystemExit, match=r"image_info\.json: no "
                       r"'annotations' field .*all-negative"):
        convert(['--format', 'coco', '--src', bad, '--out', out])
    dup = dict(data, images=data['images'] + [dict(data['images'][1])])
    with open(bad, 'w') as f:
        json.dump(dup, f)
    with pytest.raises(SystemExit) as e:
        convert(['--format', 'coco', '--src', bad, '--out', out])
    msg = str(e.value)
    assert bad in msg and 'duplicate image id' in msg, msg
    assert repr(data['images'][1]['id']) in msg, msg
    # --classes reorders the columns, same labels
    (tmp_path / 'cls.txt').write_text('\n'.join(fx['classes'][::-1]) + '\n')
    convert(['--format', 'coco', '--src', src, '--out', out,
             '--classes', str(tmp_path / 'cls.txt')])
    _, labels, classes = load_partial_annotations(out)
    assert classes == fx['classes'][::-1]
    np.testing.assert_array_equal(labels, fx['labels']['train'][:, ::-1])


def test_csv_source_with_byte_order_mark(tmp_path):
    """Classes inferred from an Excel "CSV UTF-8" file (BOM) with pandas'
    float labels."""
    src = str(tmp_path / 'excel.csv')
    with open(src, 'w', encoding='utf-8-sig') as f:
        f.write('img_path,class,label\na.jpg,zebra,1.0\na.jpg,ant,-1.0\n'
                'b.jpg,ant,1.0\n')
    out = str(tmp_path / 'k.json')
    convert(['--format', 'csv', '--src', src, '--out', out])
    paths, labels, classes = load_partial_annotations(out)
    assert classes == ['ant', 'zebra'] and paths == ['a.jpg', 'b.jpg']
    np.testing.assert_array_equal(labels, [[-1, 1], [1, 0]])
