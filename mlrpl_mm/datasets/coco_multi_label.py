"""MS-COCO 2014 as a multi-label dataset (80 classes, category-id order)."""
import json
import logging
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from .base_multi_label import BaseMultiLabelDataset


@DATASETS.register_module()
class CocoMultiLabel(BaseMultiLabelDataset):
    """MS-COCO multi-label classification from an ``instances_*.json`` file.

    Classes: the categories of the json sorted by category id (index c = the
    position of the id in the sorted id list, protocol.md); names in
    ``metainfo['classes']``. Images: every image id of the json in the
    reference order (``COCO.imgs.keys()``, i.e. the order of the json's
    ``images`` list). An image without annotations is an all-negative row
    (40,504 val2014 images, the reference); ``drop_empty=True`` drops them
    (40,137, as DualCoOp / ML-Decoder).

    Example::

        dict(type='CocoMultiLabel', data_root='data/coco', split='train')
        # = ann_file='annotations/instances_train2014.json',
        #   data_prefix='train2014'

    Args:
        data_root (str): COCO root. Defaults to ''.
        split (str, optional): ``'train'`` or ``'val'``; fills in ``ann_file``
            and ``data_prefix`` when they are not given. Defaults to None.
        year (str): Year used with ``split``. Defaults to ``'2014'``.
        ann_file (str): Instances json, relative to ``data_root``.
        data_prefix (str | dict): Image directory, relative to ``data_root``.
        drop_empty (bool): Drop images without any annotation. Defaults to
            False (reference protocol).
        skip_crowd (bool): Ignore ``iscrowd=1`` annotations when forming the
            labels. Defaults to False (the reference counts them).
        **kwargs: See :class:`BaseMultiLabelDataset`.
    """

    def __init__(self, data_root: str = '', split: Optional[str] = None,
                 year: str = '2014', ann_file: str = '',
                 data_prefix='', drop_empty: bool = False,
                 skip_crowd: bool = False, **kwargs) -> None:
        if split is not None:
            if split not in ('train', 'val'):
                raise ValueError("CocoMultiLabel: split must be 'train' or "
                                 f"'val' (instances json), got {split!r}")
            ann_file = ann_file or f'annotations/instances_{split}{year}.json'
            data_prefix = data_prefix or f'{split}{year}'
        if not ann_file:
            raise ValueError('CocoMultiLabel: give ann_file or split')
        self.drop_empty = drop_empty
        self.skip_crowd = skip_crowd
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix, **kwargs)

    def _read_json(self) -> dict:
        """The annotation file as a dict with ``images`` / ``annotations`` /
        ``categories`` lists (``FileNotFoundError`` / ``ValueError`` naming
        the file and the field otherwise)."""
        path = self.ann_file
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'CocoMultiLabel: annotation file {path} not found')
        try:
            with open(path, 'rb') as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f'CocoMultiLabel: malformed annotation file '
                             f'{path}: {type(e).__name__}: {e}')
        if not isinstance(data, dict):
            raise ValueError(
                f'CocoMultiLabel: malformed annotation file {path}: the top '
                'level must be a JSON object with "images", "annotations" '
                f'and "categories", got a JSON {type(data).__name__}')
        for key in ('images', 'annotations', 'categories'):
            if key not in data:
                hint = (' (an image-info file without labels, e.g. '
                        'image_info_test*.json, cannot be used: every image '
                        'would be all-negative)') if key == 'annotations' \
                    else ''
                raise ValueError(f'CocoMultiLabel: malformed annotation file '
                                 f"{path}: no '{key}' field{hint}")
            if not isinstance(data[key], list):
                raise ValueError(
                    f"CocoMultiLabel: malformed annotation file {path}: "
                    f"'{key}' must be a list, got {type(data[key]).__name__}")
        return data

    @staticmethod
    def _check_records(records: list, fields: Sequence[str], what: str,
                       path: str) -> None:
        """Every record is a dict with ``fields``; error naming the first bad
        one (index and id)."""
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise ValueError(f'CocoMultiLabel: malformed annotation file '
                                 f'{path}: {what}[{i}] is a '
                                 f'{type(rec).__name__}, not an object')
            for field in fields:
                if field not in rec:
                    raise ValueError(
                        f'CocoMultiLabel: malformed annotation file {path}: '
                        f'{what}[{i}] (id {rec.get("id")!r}) has no '
                        f"'{field}' field")

    @staticmethod
    def _check_unique(ids: list, what: str, path: str) -> None:
        counts = Counter(ids)
        dup = [i for i, n in counts.items() if n > 1]
        if dup:
            harm = 'give an image the labels of another' if what == 'image' \
                else 'rename a class'
            raise ValueError(
                f'CocoMultiLabel: malformed annotation file {path}: '
                f'{len(dup)} duplicate {what} id(s), e.g. '
                f'{sorted(dup, key=str)[:5]}: every {what} id must be unique '
                f'(a duplicate would {harm})')

    def load_annotations(self) -> Tuple[List[str], np.ndarray, Sequence[str],
                                        Optional[List[Dict]]]:
        path = self.ann_file
        data = self._read_json()
        images, anns, cats = (data['images'], data['annotations'],
                              data['categories'])
        self._check_records(images, ('id', 'file_name'), 'images', path)
        self._check_records(cats, ('id', 'name'), 'categories', path)
        self._check_records(anns, ('image_id', 'category_id'), 'annotations',
                            path)
        if not images:
            raise ValueError(f'CocoMultiLabel: annotation file {path} lists '
                             'no images')
        if not cats:
            raise ValueError(f'CocoMultiLabel: annotation file {path} lists '
                             'no categories')
        img_ids = [im['id'] for im in images]
        self._check_unique(img_ids, 'image', path)
        self._check_unique([c['id'] for c in cats], 'category', path)
        # classes: categories sorted by id; images: the json's order (the
        # order of pycocotools' COCO.imgs, the reference)
        cat_by_id = {c['id']: c for c in cats}
        cat_ids = sorted(cat_by_id)
        cat_index = {cid: i for i, cid in enumerate(cat_ids)}
        names = [cat_by_id[cid]['name'] for cid in cat_ids]
        row_of = {img_id: r for r, img_id in enumerate(img_ids)}
        labels = -np.ones((len(img_ids), len(cat_ids)), np.int8)
        has_ann = np.zeros(len(img_ids), bool)
        unknown_images = 0
        for ann in anns:
            row = row_of.get(ann['image_id'])
            if row is None:
                unknown_images += 1
                continue
            if self.skip_crowd and ann.get('iscrowd', 0):
                continue
            cid = ann['category_id']
            if cid not in cat_index:
                raise ValueError(
                    f'CocoMultiLabel: malformed annotation file '
                    f'{path}: annotation {ann.get("id")} has '
                    f'unknown category_id {cid}')
            labels[row, cat_index[cid]] = 1
            has_ann[row] = True
        if unknown_images:
            print_log(f'CocoMultiLabel: {unknown_images} annotation(s) of '
                      f'{path} refer to image ids that are not in its '
                      "'images' list; they are ignored", logger='current',
                      level=logging.WARNING)
        if self.drop_empty:
            keep = np.flatnonzero(has_ann)
            if not keep.size:
                raise ValueError(f'CocoMultiLabel: drop_empty=True but no '
                                 f'image of {path} has an annotation')
            images = [images[k] for k in keep]
            labels = labels[keep]
        paths = [self._img(im['file_name']) for im in images]
        extra = [dict(img_id=int(im['id'])) for im in images]
        return paths, labels, names, extra
