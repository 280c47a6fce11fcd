"""PartialLabelAnnotations: the dataset of real partial annotations (JSON
and both CSV forms), and its file errors."""
import os.path as osp

import numpy as np
import pytest

from mlrpl_mm.datasets import PartialLabelAnnotations, get_partial_labels
from tests.fixtures import PARTIAL_CLASSES as CLASSES
from tests.fixtures import PARTIAL_EXPECTED as EXPECTED
from tests.fixtures import make_partial_annotation_files as _files
from tests.fixtures import make_partial_annotation_images as _images


@pytest.mark.parametrize('form', ['json', 'long', 'wide'])
def test_three_formats_give_the_same_dataset(tmp_path, form):
    root = str(tmp_path)
    _images(root)
    files = dict(zip(('json', 'long', 'wide'), _files(root)))
    ds = PartialLabelAnnotations(
        data_root=root, ann_file=osp.basename(files[form]),
        data_prefix='img', classes=None if form == 'json' else CLASSES)
    assert ds.metainfo['classes'] == tuple(CLASSES)
    np.testing.assert_array_equal(ds.partial_labels, EXPECTED)
    np.testing.assert_array_equal(get_partial_labels(ds), EXPECTED)
    info = ds.get_data_info(0)
    assert info['img_path'] == osp.join(root, 'img', 'a.jpg')
    np.testing.assert_array_equal(info['partial_label'], [1, 0, -1])
    np.testing.assert_array_equal(info['full_label'], [1, 0, -1])
    assert info['gt_label'] == [0]
    assert info['sample_idx'] == 0


def test_missing_annotation_file_and_images(tmp_path):
    root = str(tmp_path)
    _images(root)
    _files(root)
    with pytest.raises(FileNotFoundError, match='nope.json not found'):
        PartialLabelAnnotations(data_root=root, ann_file='nope.json')
    # images are checked by default; the error names the file and prefix
    with pytest.raises(FileNotFoundError) as e:
        PartialLabelAnnotations(data_root=root, ann_file='ann.json',
                                data_prefix='wrong')
    assert '3 image(s) missing' in str(e.value)
    assert 'ann.json' in str(e.value) and "'" + osp.join(root, 'wrong') \
        in str(e.value)
