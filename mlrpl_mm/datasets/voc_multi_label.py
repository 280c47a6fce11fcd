"""Pascal VOC 2007 / 2012 as a multi-label dataset (20 classes)."""
import os.path as osp
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.utils import track_iter_progress
from mmpretrain.registry import DATASETS

from mlrpl_mm.utils.checks import check_choice

from .base_multi_label import BaseMultiLabelDataset, check_unique_ids

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train',
               'tvmonitor')


def parse_voc_xml(path: str) -> List[Tuple[str, bool]]:
    """The ``(class name, difficult)`` pairs of the objects of one VOC xml.

    Raises:
        FileNotFoundError: the file is missing (named).
        ValueError: malformed XML or an object without ``<name>`` (named).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'VOC annotation {path} not found')
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f'malformed VOC annotation file {path}: {e}')
    objects = []
    for obj in root.iter('object'):
        name = obj.findtext('name')
        if name is None or not name.strip():
            raise ValueError(f'malformed VOC annotation file {path}: an '
                             '<object> has no <name>')
        diff = (obj.findtext('difficult') or '0').strip()
        if diff not in ('0', '1'):
            raise ValueError(f'malformed VOC annotation file {path}: '
                             f'<difficult> is {diff!r}')
        objects.append((name.strip(), diff == '1'))
    return objects


@DATASETS.register_module()
class VOCMultiLabel(BaseMultiLabelDataset):
    """Pascal VOC (2007 / 2012) from the standard devkit tree.

    ``dict(type='VOCMultiLabel', data_root='data/VOCdevkit/VOC2007',
    split='trainval')`` reads ``ImageSets/Main/trainval.txt`` (the image
    order), ``Annotations/<id>.xml`` and images ``JPEGImages/<id>.jpg``.
    Classes in the alphabetical VOC order (aeroplane ... tvmonitor).

    Difficult objects (``<difficult>1``): ``difficult='skip'`` (default, the
    reference and the published label files) ignores them, so a class present
    only as difficult is -1; ``'ignore'`` marks such a class 0 (not scored);
    ``'positive'`` counts them as positives.

    Args:
        data_root (str): The ``VOC<year>`` directory.
        split (str): Image-set name, e.g. ``'trainval'``, ``'test'``,
            ``'train'``, ``'val'``. Defaults to ``'trainval'``.
        difficult (str): ``'skip'``, ``'ignore'`` or ``'positive'``.
            Defaults to ``'skip'``.
        ann_dir (str): Defaults to ``'Annotations'``.
        data_prefix (str | dict): Image directory. Defaults to
            ``'JPEGImages'``.
        img_suffix (str): Defaults to ``'.jpg'``.
        **kwargs: See :class:`BaseMultiLabelDataset`.
    """

    def __init__(self, data_root: str = '', split: str = 'trainval',
                 difficult: str = 'skip', ann_dir: str = 'Annotations',
                 data_prefix='JPEGImages', img_suffix: str = '.jpg',
                 ann_file: str = '', **kwargs) -> None:
        check_choice('difficult', difficult, ('skip', 'ignore', 'positive'),
                     'VOCMultiLabel')
        self.split = split
        self.difficult = difficult
        self.ann_dir = ann_dir
        self.img_suffix = img_suffix
        ann_file = ann_file or osp.join('ImageSets', 'Main', f'{split}.txt')
        self._voc_root = data_root
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix, **kwargs)

    def load_annotations(self) -> Tuple[List[str], np.ndarray, Sequence[str],
                                        Optional[List[Dict]]]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'VOCMultiLabel: image list {self.ann_file} not found')
        with open(self.ann_file) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        check_unique_ids(ids, 'image id',
                         f'VOCMultiLabel: image list {self.ann_file}')
        index = {c: i for i, c in enumerate(VOC_CLASSES)}
        labels = -np.ones((len(ids), len(VOC_CLASSES)), np.int8)
        ann_dir = osp.join(self._voc_root, self.ann_dir)
        it = track_iter_progress(ids) if len(ids) > 2000 else ids
        for row, img_id in enumerate(it):
            path = osp.join(ann_dir, f'{img_id}.xml')
            for name, diff in parse_voc_xml(path):
                if name not in index:
                    raise ValueError(f'VOC annotation {path}: unknown class '
                                     f'{name!r}')
                c = index[name]
                if not diff or self.difficult == 'positive':
                    labels[row, c] = 1
                elif self.difficult == 'ignore' and labels[row, c] != 1:
                    labels[row, c] = 0
        paths = [self._img(i + self.img_suffix) for i in ids]
        return paths, labels, VOC_CLASSES, [dict(img_id=i) for i in ids]
