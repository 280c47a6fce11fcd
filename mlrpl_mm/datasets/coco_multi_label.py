"""MS-COCO 2014 as a multi-label dataset (80 classes, category-id order)."""
import json
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from .base_multi_label import BaseMultiLabelDataset, check_unique_ids


_WHO = 'CocoMultiLabel: malformed annotation file'


def _read_coco_json(path: str) -> dict:
    """The annotation file as a dict with ``images`` / ``annotations`` /
    ``categories`` lists (``FileNotFoundError`` / ``ValueError`` naming
    the file and the field otherwise)."""
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'CocoMultiLabel: annotation file {path} not found')
    try:
        with open(path, 'rb') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{_WHO} {path}: {type(e).__name__}: {e}')
    if not isinstance(data, dict):
        raise ValueError(
            f'{_WHO} {path}: the top level must be a JSON object with '
            '"images", "annotations" and "categories", got a JSON '
            f'{type(data).__name__}')
    for key in ('images', 'annotations', 'categories'):
        if key not in data:
            hint = (' (an image-info file without labels, e.g. '
                    'image_info_test*.json, cannot be used: every image '
                    'would be all-negative)') if key == 'annotations' else ''
            raise ValueError(f"{_WHO} {path}: no '{key}' field{hint}")
        if not isinstance(data[key], list):
            raise ValueError(
                f"{_WHO} {path}: '{key}' must be a list, got "
                f'{type(data[key]).__name__}')
    return data


def _check_records(records: list, fields: Sequence[str], what: str,
                   path: str) -> None:
    """Every record is a dict with ``fields``; error naming the first bad
    one (index and id)."""
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f'{_WHO} {path}: {what}[{i}] is a '
                             f'{type(rec).__name__}, not an object')
        for field in fields:
            if field not in rec:
                raise ValueError(
                    f'{_WHO} {path}: {what}[{i}] (id {rec.get("id")!r}) has '
                    f"no '{field}' field")


def read_coco_labels(ann_file: str, skip_crowd: bool = False
                     ) -> Tuple[List[dict], List[str], np.ndarray]:
    """Read and validate a COCO ``instances_*.json`` as multi-label labels.

    The checks run on the raw lists (pycocotools' index would silently
    collapse duplicate ids): the file, the three lists, the fields of every
    record, unique image and category ids, known category ids. An
    annotation of an image id not in ``images`` is ignored with a WARNING
    (count and file); ``"annotations": []`` gives a WARNING naming the file
    (every image all-negative).

    Args:
        ann_file: Path of the json.
        skip_crowd: Ignore ``iscrowd=1`` annotations. Defaults to False.

    Returns:
        tuple: ``(images, class_names, labels)``: the json's image records
        in its order (= pycocotools' ``COCO.imgs``), the C category names
        sorted by category id, and the (N, C) int8 matrix, +1 where the
        image has an annotation of the class, -1 elsewhere.
    """
    path = ann_file
    data = _read_coco_json(path)
    images, anns, cats = (data['images'], data['annotations'],
                          data['categories'])
    _check_records(images, ('id', 'file_name'), 'images', path)
    _check_records(cats, ('id', 'name'), 'categories', path)
    _check_records(anns, ('image_id', 'category_id'), 'annotations', path)
    if not images:
        raise ValueError(f'CocoMultiLabel: annotation file {path} lists '
                         'no images')
    if not cats:
        raise ValueError(f'CocoMultiLabel: annotation file {path} lists '
                         'no categories')
    img_ids = [im['id'] for im in images]
    check_unique_ids(img_ids, 'image id', f'{_WHO} {path}',
                     'a duplicate would give an image the labels of another')
    check_unique_ids([c['id'] for c in cats], 'category id',
                     f'{_WHO} {path}', 'a duplicate would rename a class')
    if not anns:
        print_log(f'CocoMultiLabel: annotation file {path} has '
                  '"annotations": [], so every image is all-negative; is it '
                  'an image-info file (image_info_*.json) rather than an '
                  'instances file?', logger='current', level=logging.WARNING)
    # classes: categories sorted by id; images: the json's order (the
    # order of pycocotools' COCO.imgs, the reference)
    cat_by_id = {c['id']: c for c in cats}
    cat_ids = sorted(cat_by_id)
    cat_index = {cid: i for i, cid in enumerate(cat_ids)}
    names = [cat_by_id[cid]['name'] for cid in cat_ids]
    row_of = {img_id: r for r, img_id in enumerate(img_ids)}
    labels = -np.ones((len(img_ids), len(cat_ids)), np.int8)
    unknown_images = 0
    for ann in anns:
        row = row_of.get(ann['image_id'])
        if row is None:
            unknown_images += 1
            continue
        if skip_crowd and ann.get('iscrowd', 0):
            continue
        cid = ann['category_id']
        if cid not in cat_index:
            raise ValueError(
                f'{_WHO} {path}: annotation {ann.get("id")} has '
                f'unknown category_id {cid}')
        labels[row, cat_index[cid]] = 1
    if unknown_images:
        print_log(f'CocoMultiLabel: {unknown_images} annotation(s) of '
                  f'{path} refer to image ids that are not in its '
                  "'images' list; they are ignored", logger='current',
                  level=logging.WARNING)
    return images, names, labels


@DATASETS.register_module()
class CocoMultiLabel(BaseMultiLabelDataset):
    """MS-COCO multi-label classification from an ``instances_*.json`` file.

    Classes: the categories of the json sorted by category id (index c = the
    position of the id in the sorted id list, docs/equations/protocol.md);
    names in ``metainfo['classes']``. Images: every image id of the json in the
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

    def load_annotations(self) -> Tuple[List[str], np.ndarray, Sequence[str],
                                        Optional[List[Dict]]]:
        path = self.ann_file
        images, names, labels = read_coco_labels(path, self.skip_crowd)
        if self.drop_empty:
            keep = np.flatnonzero((labels == 1).any(1))
            if not keep.size:
                raise ValueError(f'CocoMultiLabel: drop_empty=True but no '
                                 f'image of {path} has an annotation')
            images = [images[k] for k in keep]
            labels = labels[keep]
        paths = [self._img(im['file_name']) for im in images]
        extra = [dict(img_id=int(im['id'])) for im in images]
        return paths, labels, names, extra
