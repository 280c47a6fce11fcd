"""Visual Genome VG-200 as a multi-label dataset."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmpretrain.registry import DATASETS

from .base_multi_label import BaseMultiLabelDataset, check_unique_ids


@DATASETS.register_module()
class VGMultiLabel(BaseMultiLabelDataset):
    """VG-200: the 200 most frequent Visual Genome object categories.

    Files (relative to ``data_root``): an image list per split (one image
    name per line; the dataset order), a JSON object mapping every image name
    to the list of its category indices in [0, C), an optional class-name
    file (one name per line) and the image directory.

    Args:
        data_root (str): Dataset root.
        split (str): ``'train'`` or ``'test'``, used for the default list file
            ``<split>_list.txt``. Defaults to ``'train'``.
        list_file (str, optional): Image list. Defaults to
            ``<split>_list.txt``.
        label_file (str): Name -> indices JSON. Defaults to
            ``'vg_category_200_labels_index.json'``.
        classes_file (str, optional): Class names, one per line. Defaults to
            ``'vg_category_200.txt'`` when that file exists; otherwise the
            names are ``metainfo['classes']`` or ``'class_<i>'``.
        num_classes (int): C. Defaults to 200.
        data_prefix (str | dict): Image directory. Defaults to ``'VG_100K'``.
        **kwargs: See :class:`BaseMultiLabelDataset`.
    """

    def __init__(self, data_root: str = '', split: str = 'train',
                 list_file: Optional[str] = None,
                 label_file: str = 'vg_category_200_labels_index.json',
                 classes_file: Optional[str] = 'vg_category_200.txt',
                 num_classes: int = 200, data_prefix='VG_100K',
                 **kwargs) -> None:
        self.split = split
        self.num_classes_ = int(num_classes)
        self.label_file = self._join(data_root, label_file)
        self.classes_file = self._join(data_root, classes_file) \
            if classes_file else None
        super().__init__(ann_file=list_file or f'{split}_list.txt',
                         data_root=data_root, data_prefix=data_prefix,
                         **kwargs)

    @staticmethod
    def _join(root: str, path: str) -> str:
        return path if osp.isabs(path) or not root else osp.join(root, path)

    def load_annotations(self) -> Tuple[List[str], np.ndarray, Sequence[str],
                                        Optional[List[Dict]]]:
        for f in (self.ann_file, self.label_file):
            if not osp.isfile(f):
                raise FileNotFoundError(f'VGMultiLabel: {f} not found')
        with open(self.ann_file) as f:
            names = [line.strip() for line in f if line.strip()]
        check_unique_ids(names, 'image name',
                         f'VGMultiLabel: image list {self.ann_file}')
        try:
            with open(self.label_file) as f:
                mapping = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'VGMultiLabel: malformed label file '
                             f'{self.label_file}: {e}')
        if not isinstance(mapping, dict):
            raise ValueError(f'VGMultiLabel: {self.label_file} must hold a '
                             'JSON object image name -> category indices')
        C = self.num_classes_
        if self._metainfo.get('classes') is not None:
            classes = list(self._metainfo['classes'])
        elif self.classes_file and osp.isfile(self.classes_file):
            with open(self.classes_file) as f:
                classes = [line.strip() for line in f if line.strip()]
        else:
            classes = [f'class_{i}' for i in range(C)]
        if len(classes) != C:
            raise ValueError(f'VGMultiLabel: {len(classes)} class names '
                             f'(classes file {self.classes_file}) but '
                             f'num_classes={C}')
        labels = -np.ones((len(names), C), np.int8)
        for row, name in enumerate(names):
            if name not in mapping:
                raise ValueError(f'VGMultiLabel: image {name!r} of '
                                 f'{self.ann_file} has no entry in '
                                 f'{self.label_file}')
            idx = np.asarray(mapping[name], dtype=np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= C):
                raise ValueError(f'VGMultiLabel: {self.label_file}: image '
                                 f'{name!r} has category indices '
                                 f'{idx.tolist()} outside [0, {C})')
            labels[row, idx] = 1
        return [self._img(n) for n in names], labels, classes, None
