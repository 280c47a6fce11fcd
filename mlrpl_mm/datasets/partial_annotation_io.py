"""Real partial annotations: a JSON (OpenMMLab 2.0 annotation format) or a
CSV listing, per image, the known positive and negative classes; every other
(image, class) entry is unknown.

JSON (what ``tools/data/convert_labels.py`` writes)::

    {"metainfo": {"classes": ["cat", "dog", "car"]},
     "data_list": [
        {"img_path": "img/0001.jpg", "pos_label": [0], "neg_label": [2]},
        {"img_path": "img/0002.jpg", "pos_label": ["dog"], "neg_label": []}]}

``pos_label`` / ``neg_label`` hold class indices (mmpretrain's ``gt_label``
convention) or class names.

CSV, long form (one known entry per row; label 1 positive, -1 negative, 0
or empty unknown: the image is listed, nothing is known about that class)::

    img_path,class,label
    img/0001.jpg,cat,1
    img/0001.jpg,car,-1

CSV, wide form (one row per image, ``;``-separated class names)::

    img_path,pos,neg
    img/0001.jpg,cat,car
    img/0002.jpg,dog,

A CSV carries no class list: the column order comes from ``classes`` (a list
or a text file with one name per line).
"""
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from mlrpl_mm.utils.checks import check_choice

from .base_multi_label import LABEL_DTYPE
from .class_list import read_class_list

#: Separator of the class lists of the wide CSV form.
LIST_SEP = ';'
_LABEL_VALUES = {'1': 1, '+1': 1, '-1': -1, '0': 0, '': 0}


def _label_value(raw: str) -> Optional[int]:
    """+1 / -1 / 0 of a long-form CSV label (``1``, ``-1``, ``0``, empty,
    or the same written as floats by pandas: ``1.0``, ``-1.0``, ``0.0``);
    None for anything else (``0.5``, ``2``, ``yes``)."""
    if raw in _LABEL_VALUES:
        return _LABEL_VALUES[raw]
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if value in (1.0, -1.0, 0.0) else None


class _Builder:
    """Accumulates (image, class, +1/-1) entries with conflict checks."""

    def __init__(self, classes: Sequence[str], source: str) -> None:
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.source = source
        self.paths: List[str] = []
        self.rows: Dict[str, int] = {}
        self.entries: List[Dict[int, int]] = []

    def image(self, path: str, where: str, unique: bool = False) -> int:
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f'{self.source}, {where}: empty or missing '
                             'img_path')
        path = path.strip()
        if path in self.rows:
            if unique:
                raise ValueError(
                    f'{self.source}, {where}: image {path!r} is listed '
                    f'twice (first at entry {self.rows[path]}); give each '
                    'image one entry')
            return self.rows[path]
        self.rows[path] = len(self.paths)
        self.paths.append(path)
        self.entries.append({})
        return self.rows[path]

    def class_index(self, cls, where: str) -> int:
        if isinstance(cls, (bool, np.bool_)):
            raise ValueError(f'{self.source}, {where}: class {cls!r} is a '
                             'boolean; give a class index or name')
        if isinstance(cls, (int, np.integer)):
            if not 0 <= int(cls) < len(self.classes):
                raise ValueError(
                    f'{self.source}, {where}: class index {int(cls)} outside '
                    f'[0, {len(self.classes)}) (the classes of the '
                    'annotation file)')
            return int(cls)
        name = str(cls).strip()
        if name not in self.index:
            raise ValueError(
                f'{self.source}, {where}: unknown class {name!r}; the '
                f'{len(self.classes)} classes are '
                f'{self.classes[:10]}{" ..." if len(self.classes) > 10 else ""}'
                ' (add it to the class list or fix the name)')
        return self.index[name]

    def add(self, row: int, cls, value: int, where: str) -> None:
        c = self.class_index(cls, where)
        if value == 0:
            return
        old = self.entries[row].get(c)
        if old is not None and old != value:
            raise ValueError(
                f'{self.source}, {where}: image {self.paths[row]!r} is both '
                f'positive and negative for class {self.classes[c]!r}; '
                'keep one of the two labels (or drop both: unknown)')
        self.entries[row][c] = value

    def matrix(self, unlisted: int = 0) -> np.ndarray:
        labels = np.full((len(self.paths), len(self.classes)), unlisted,
                         LABEL_DTYPE)
        for r, entries in enumerate(self.entries):
            for c, v in entries.items():
                labels[r, c] = v
        return labels


def _read_json(path: str, classes: Optional[List[str]]) -> _Builder:
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: not valid JSON: {e}')
    if not isinstance(data, dict) or 'data_list' not in data:
        raise ValueError(f"{path}: expected a JSON object with 'metainfo' "
                         "and 'data_list' (OpenMMLab 2.0 annotation format)")
    file_classes = (data.get('metainfo') or {}).get('classes')
    if file_classes is None and classes is None:
        raise ValueError(f"{path}: no metainfo.classes; add "
                         '"metainfo": {"classes": [...]} or give classes=')
    if file_classes is not None:
        file_classes = read_class_list(list(file_classes),
                                       f'{path}: metainfo.classes')
        if classes is not None and classes != file_classes:
            raise ValueError(
                f'{path}: metainfo.classes ({len(file_classes)} classes, '
                f'{file_classes[:5]}...) differ from the classes given '
                f'({len(classes)}, {classes[:5]}...)')
    builder = _Builder(file_classes or classes, path)
    if not isinstance(data['data_list'], list):
        raise ValueError(f'{path}: data_list must be a list')
    for k, item in enumerate(data['data_list']):
        where = f'data_list[{k}]'
        if not isinstance(item, dict):
            raise ValueError(f'{path}, {where}: expected an object with '
                             'img_path, pos_label, neg_label')
        if 'gt_label' in item:
            raise ValueError(
                f"{path}, {where}: 'gt_label' (full labels) found; this "
                "format lists the known labels as 'pos_label' / "
                "'neg_label' (every other class unknown)")
        row = builder.image(item.get('img_path'), where, unique=True)
        for key, value in (('pos_label', 1), ('neg_label', -1)):
            lst = item.get(key, [])
            if not isinstance(lst, (list, tuple)):
                raise ValueError(f'{path}, {where}: {key} must be a list of '
                                 f'class indices or names, got {lst!r}')
            for cls in lst:
                builder.add(row, cls, value, f'{where}.{key}')
    return builder


def _read_csv(path: str, classes: Optional[List[str]]) -> _Builder:
    if classes is None:
        raise ValueError(
            f'{path}: a CSV has no class list; give classes=[...] or '
            "classes='classes.txt' (one name per line: the column order)")
    builder = _Builder(classes, path)
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f'{path}: empty file')
        header = [h.strip() for h in header]
        cols = {h: i for i, h in enumerate(header)}
        if 'img_path' not in cols:
            raise ValueError(
                f'{path}: the header {header} has no img_path column; '
                'expected img_path,class,label or img_path,pos,neg')
        if {'class', 'label'} <= set(cols):
            form = 'long'
        elif {'pos', 'neg'} & set(cols):
            form = 'wide'
        else:
            raise ValueError(
                f'{path}: the header {header} is neither img_path,class,label '
                'nor img_path,pos,neg')
        for lineno, rec in enumerate(reader, 2):
            if not rec or not any(x.strip() for x in rec):
                continue
            where = f'line {lineno}'
            if len(rec) < len(header):
                rec = rec + [''] * (len(header) - len(rec))
            row = builder.image(rec[cols['img_path']], where,
                                unique=form == 'wide')
            if form == 'long':
                raw = rec[cols['label']].strip()
                value = _label_value(raw)
                if value is None:
                    raise ValueError(
                        f'{path}, {where}: label {raw!r} is not 1, -1 or 0')
                builder.add(row, rec[cols['class']], value, where)
            else:
                for key, value in (('pos', 1), ('neg', -1)):
                    if key not in cols:
                        continue
                    for name in rec[cols[key]].split(LIST_SEP):
                        if name.strip():
                            builder.add(row, name, value, f'{where} ({key})')
    return builder


def load_partial_annotations(
        path: str,
        classes: Union[str, Sequence[str], None] = None,
        unlisted: str = 'unknown') -> Tuple[List[str], np.ndarray, List[str]]:
    """Read a partial annotation file (JSON or CSV, see the module doc).

    Args:
        path: ``.json`` or ``.csv`` file.
        classes: Class names (list or text file); required for a CSV, and
            checked against ``metainfo.classes`` of a JSON.
        unlisted: What an entry not listed is: ``'unknown'`` (0, default) or
            ``'negative'`` (-1; for an exhaustively labelled test set).

    Returns:
        ``(img_paths, labels, classes)``: the N image paths as written in
        the file (first-appearance order), the (N, C) int8 matrix in
        {+1, -1, 0} and the C class names.

    Raises:
        FileNotFoundError: the file (or the class list file) is missing.
        ValueError: malformed file, unknown class, an image both positive and
            negative for a class, an image listed twice (JSON / wide CSV).
    """
    check_choice('unlisted', unlisted, ('unknown', 'negative'))
    if not osp.isfile(path):
        raise FileNotFoundError(f'partial annotation file {path} not found')
    classes = read_class_list(classes)
    ext = osp.splitext(path)[1].lower()
    if ext == '.json':
        builder = _read_json(path, classes)
    elif ext == '.csv':
        builder = _read_csv(path, classes)
    else:
        raise ValueError(f'{path}: unknown extension {ext!r}; expected .json '
                         'or .csv')
    if not builder.paths:
        raise ValueError(f'{path}: no image listed')
    labels = builder.matrix(unlisted=-1 if unlisted == 'negative' else 0)
    return builder.paths, labels, builder.classes


def save_partial_annotations(path: str, img_paths: Sequence[str],
                             labels: np.ndarray, classes: Sequence[str],
                             metainfo: Optional[dict] = None) -> None:
    """Write the JSON format of :func:`load_partial_annotations` (class
    indices in ``pos_label`` / ``neg_label``). ``metainfo`` adds keys."""
    labels = np.asarray(labels)
    if labels.shape != (len(img_paths), len(classes)):
        raise ValueError(f'labels have shape {labels.shape}, expected '
                         f'({len(img_paths)}, {len(classes)})')
    meta = dict(classes=list(classes))
    meta.update(metainfo or {})
    data = dict(
        metainfo=meta,
        data_list=[
            dict(img_path=p,
                 pos_label=np.flatnonzero(row == 1).tolist(),
                 neg_label=np.flatnonzero(row == -1).tolist())
            for p, row in zip(img_paths, labels)
        ])
    if osp.dirname(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(data, f, indent=1)
        f.write('\n')

