"""Open Images (V6 / V7) image-level labels as natural partial labels.

The human-verified image-level labels of Open Images say, per image, that a
class is present (``Confidence`` 1) or absent (``Confidence`` 0); every class
not verified for an image is unknown. That is exactly the partial-label
setting: +1 / -1 / 0.
"""
import csv
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.registry import DATASETS

from mlrpl_mm.utils.checks import check_choice

from .base_multi_label import LABEL_DTYPE, BaseMultiLabelDataset
from .class_list import read_class_list

#: Column names of the official ``*-annotations-human-imagelabels*.csv``.
LABEL_COLUMNS = ('ImageID', 'Source', 'LabelName', 'Confidence')
_CONFLICTS = ('error', 'unknown', 'positive', 'negative')
#: The label an ``on_conflict`` policy other than ``'error'`` gives.
_CONFLICT_LABEL = dict(unknown=0, positive=1, negative=-1)


def read_class_descriptions(path: str) -> Tuple[List[str], List[str]]:
    """The (MIDs, display names) of a ``class-descriptions*.csv``.

    The V4-V6 files have no header (``/m/011k07,Tortoise``); the V7
    ``oidv7-class-descriptions*.csv`` start with ``LabelName,DisplayName``,
    which is skipped.

    Raises:
        FileNotFoundError: missing file.
        ValueError: a line without two fields, a MID listed twice, no class.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'Open Images class descriptions {path} not found (the official '
            'class-descriptions-boxable.csv: MID,DisplayName per line)')
    mids, names, seen = [], [], set()
    with open(path, newline='', encoding='utf-8-sig') as f:
        for lineno, rec in enumerate(csv.reader(f), 1):
            if not rec or not any(x.strip() for x in rec):
                continue
            if lineno == 1 and [x.strip() for x in rec[:2]] == [
                    'LabelName', 'DisplayName']:
                continue
            if len(rec) < 2 or not rec[0].strip():
                raise ValueError(f'{path}, line {lineno}: expected '
                                 f'MID,DisplayName, got {rec!r}')
            mid = rec[0].strip()
            if mid in seen:
                raise ValueError(f'{path}, line {lineno}: class {mid} is '
                                 'listed twice')
            seen.add(mid)
            mids.append(mid)
            names.append(rec[1].strip())
    if not mids:
        raise ValueError(f'{path}: no class')
    return mids, names


def _byte_strings(buf: np.ndarray, starts: np.ndarray,
                  ends: np.ndarray) -> np.ndarray:
    """The fields ``buf[starts[i]:ends[i]]`` as a fixed-width bytes array
    (one pass per byte of the widest field, no (n, width) index matrix)."""
    lens = ends - starts
    width = max(int(lens.max()) if len(lens) else 0, 1)
    out = np.zeros((len(starts), width), np.uint8)
    last = len(buf) - 1
    for j in range(width):
        take = lens > j
        out[take, j] = buf[np.minimum(starts[take] + j, last)]
    return out.view(f'S{width}').ravel()


@DATASETS.register_module()
class OpenImagesMultiLabel(BaseMultiLabelDataset):
    """Open Images image-level labels (official CSVs) as partial labels.

    Reads ``ann_file`` (``ImageID,Source,LabelName,Confidence``, e.g.
    ``train-annotations-human-imagelabels-boxable.csv``) and ``class_file``
    (``class-descriptions-boxable.csv``). Per (image, class): Confidence 1
    -> +1, 0 -> -1, not verified -> 0 (unknown). Both ``partial_label`` and
    ``full_label`` carry this matrix, so training uses the verified labels
    only and the test metric scores the verified entries only, as the Open
    Images evaluation does (``MultiLabelMAP`` ignores target 0; use
    ``no_positive='exclude'`` to leave out classes without a verified
    positive). The label hierarchy is not expanded.

    Images: every ImageID of ``ann_file``, in the order of first appearance,
    as ``<data_prefix>/<ImageID><img_suffix>``. Classes: those of
    ``class_file`` in its order, or the subset ``classes`` (MIDs or display
    names, a list or a text file, in that order). Display names are the
    ``metainfo['classes']`` (a display name shared by several MIDs gets the
    MID appended); ``metainfo['mids']`` holds the MIDs.

    Example::

        dict(type='OpenImagesMultiLabel', data_root='data/openimages',
             split='validation')
        # = ann_file='validation-annotations-human-imagelabels-boxable.csv',
        #   class_file='class-descriptions-boxable.csv',
        #   data_prefix='validation'

    Args:
        data_root (str): Root. Defaults to ''.
        split (str, optional): ``'train'``, ``'validation'`` or ``'test'``:
            fills in the V6 file names above when ``ann_file`` /
            ``data_prefix`` are not given.
        ann_file (str): Image-level labels CSV, relative to ``data_root``.
        class_file (str): Class descriptions CSV, relative to ``data_root``.
            Defaults to ``'class-descriptions-boxable.csv'``.
        classes (list | str, optional): Class subset (MIDs or display names,
            or a file of them, one per line). Labels of other classes are
            skipped. Defaults to None: every class of ``class_file``.
        drop_unlabelled (bool): Drop the images left without any verified
            label in the classes kept. Defaults to True.
        on_conflict (str): An image verified both present and absent for a
            class (two sources disagree): ``'error'`` (default, names the
            image, class and lines), ``'unknown'`` (0), ``'positive'`` or
            ``'negative'``.
        img_suffix (str): Defaults to ``'.jpg'``.
        **kwargs: See :class:`BaseMultiLabelDataset`.
    """

    def __init__(self,
                 data_root: str = '',
                 split: Optional[str] = None,
                 ann_file: str = '',
                 class_file: str = 'class-descriptions-boxable.csv',
                 classes: Union[str, Sequence[str], None] = None,
                 drop_unlabelled: bool = True,
                 on_conflict: str = 'error',
                 img_suffix: str = '.jpg',
                 data_prefix='',
                 **kwargs) -> None:
        if split is not None:
            check_choice('split', split, ('train', 'validation', 'test'),
                         'OpenImagesMultiLabel')
            ann_file = ann_file or \
                f'{split}-annotations-human-imagelabels-boxable.csv'
            data_prefix = data_prefix or split
        if not ann_file:
            raise ValueError('OpenImagesMultiLabel: give ann_file or split')
        check_choice('on_conflict', on_conflict, _CONFLICTS,
                     'OpenImagesMultiLabel', one_of=True)
        self.class_file = class_file
        self.classes_spec = classes
        self.drop_unlabelled = drop_unlabelled
        self.on_conflict = on_conflict
        self.img_suffix = img_suffix
        self._data_root_arg = data_root
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix, **kwargs)

    def _class_file_path(self) -> str:
        if self._data_root_arg and not osp.isabs(self.class_file):
            return osp.join(self._data_root_arg, self.class_file)
        return self.class_file

    def _class_subset(self) -> Tuple[List[str], List[str], List[str]]:
        """(MIDs kept, their display names, every MID of the file)."""
        class_file = self._class_file_path()
        mids, names = read_class_descriptions(class_file)
        if self.classes_spec is None:
            return mids, names, mids
        wanted = read_class_list(self.classes_spec,
                                 'OpenImagesMultiLabel classes')
        by_mid = dict(zip(mids, names))
        by_name: Dict[str, List[str]] = {}
        for m, n in zip(mids, names):
            by_name.setdefault(n, []).append(m)
        out = []
        for w in wanted:
            if w in by_mid:
                out.append(w)
            elif len(by_name.get(w, [])) == 1:
                out.append(by_name[w][0])
            elif w in by_name:
                raise ValueError(
                    f'OpenImagesMultiLabel classes: display name {w!r} is '
                    f'shared by {by_name[w]} in {class_file}; give the MID')
            else:
                raise ValueError(
                    f'OpenImagesMultiLabel classes: {w!r} is neither a MID '
                    f'nor a display name of {class_file}')
        if len(set(out)) != len(out):
            raise ValueError('OpenImagesMultiLabel classes: a class is given '
                             'twice (by MID and by name?)')
        return out, [by_mid[m] for m in out], mids

    def _read_header(self) -> List[str]:
        """The header of ``ann_file``; ``ValueError`` when a column lacks."""
        with open(self.ann_file, newline='', encoding='utf-8-sig') as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        missing = [c for c in ('ImageID', 'LabelName', 'Confidence')
                   if c not in header]
        if missing:
            raise ValueError(
                f'OpenImagesMultiLabel: {self.ann_file}: header {header} '
                f'lacks {missing} (expected {",".join(LABEL_COLUMNS)})')
        return header

    def _parse_numpy(self, header: List[str], col: Dict[str, int],
                     all_mids: set) -> Optional[Tuple[List[str],
                                                      np.ndarray]]:
        """Vectorised parse of ``ann_file`` (the official unquoted CSV).

        Returns ``(image ids in first-appearance order, (N, C) labels)``,
        the same as :meth:`_parse_python`, or None when the file needs the
        row-by-row parser: quoted fields, a lone CR, rows with another field
        count, or any error (which that parser then reports, first line
        first, with its exact message).
        """
        with open(self.ann_file, 'rb') as f:
            data = f.read()
        if data.startswith(b'\xef\xbb\xbf'):
            data = data[3:]
        if b'"' in data:
            return None
        if b'\r' in data:
            data = data.replace(b'\r\n', b'\n')
            if b'\r' in data:
                return None
        first = data.find(b'\n')
        if first < 0:
            return [], np.zeros((0, len(col)), LABEL_DTYPE)
        body = data[first + 1:]
        del data
        if not body.endswith(b'\n'):
            body += b'\n'
        buf = np.frombuffer(body, np.uint8)
        ends = np.flatnonzero(buf == 10)
        starts = np.concatenate([[0], ends[:-1] + 1])
        full = ends > starts  # csv.reader skips empty lines only
        k = len(header) - 1
        commas = np.flatnonzero(buf == 44)
        per_line = np.bincount(np.searchsorted(ends, commas),
                               minlength=len(ends))
        if (per_line[full] != k).any() or per_line[~full].any():
            return None
        starts, ends = starts[full], ends[full]
        commas = commas.reshape(len(starts), k)

        def field(name: str) -> np.ndarray:
            j = header.index(name)
            return _byte_strings(buf, starts if j == 0 else
                                 commas[:, j - 1] + 1,
                                 commas[:, j] if j < k else ends)

        conf = field('Confidence')
        value = np.zeros(len(conf), np.int8)
        value[(conf == b'1') | (conf == b'1.0')] = 1
        value[(conf == b'0') | (conf == b'0.0')] = -1
        if not value.all():
            return None  # a bad Confidence (or one with spaces)
        uniq, first_row, inv = np.unique(field('ImageID'), return_index=True,
                                         return_inverse=True)
        order = np.argsort(first_row, kind='stable')
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        row = rank[inv.ravel()]
        ids = [uniq[i].decode('utf-8') for i in order]
        mid_u, mid_inv = np.unique(field('LabelName'), return_inverse=True)
        mid_u = [m.decode('utf-8') for m in mid_u]
        if any(m not in all_mids for m in mid_u):
            return None  # unknown LabelName
        c = np.array([col.get(m, -1) for m in mid_u], np.int64)[
            mid_inv.ravel()]
        kept = c >= 0
        key = row[kept] * len(col) + c[kept]
        value = value[kept]
        sort = np.argsort(key, kind='stable')
        key, value = key[sort], value[sort]
        head = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        labels = np.zeros((len(ids), len(col)), LABEL_DTYPE)
        if len(key):
            flat = labels.reshape(-1)
            flat[key[head]] = value[head]  # the first line of an entry
            clash = np.minimum.reduceat(value, head) != \
                np.maximum.reduceat(value, head)
            if clash.any():
                if self.on_conflict == 'error':
                    return None
                flat[key[head[clash]]] = _CONFLICT_LABEL[self.on_conflict]
        return ids, labels

    def _parse_python(self, col: Dict[str, int], all_mids: set,
                      names: List[str]) -> Tuple[List[str], np.ndarray]:
        """Row-by-row parse of ``ann_file`` (any CSV quoting); raises the
        first error by line."""
        mids = list(col)
        rows: Dict[str, int] = {}
        entries: List[Dict[int, Tuple[int, int]]] = []
        conflicts: Dict[Tuple[int, int], None] = {}
        with open(self.ann_file, newline='', encoding='utf-8-sig') as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            i_img, i_lab, i_conf = (header.index(c) for c in
                                    ('ImageID', 'LabelName', 'Confidence'))
            for lineno, rec in enumerate(reader, 2):
                if not rec:
                    continue
                img, mid, conf = rec[i_img], rec[i_lab], rec[i_conf].strip()
                if conf in ('1', '1.0'):
                    value = 1
                elif conf in ('0', '0.0'):
                    value = -1
                else:
                    raise ValueError(
                        f'OpenImagesMultiLabel: {self.ann_file}, line '
                        f'{lineno}: Confidence {conf!r} is not 0 or 1 (use '
                        'the human-verified labels file)')
                if img not in rows:
                    rows[img] = len(entries)
                    entries.append({})
                r = rows[img]
                c = col.get(mid)
                if c is None:
                    if mid not in all_mids:
                        raise ValueError(
                            f'OpenImagesMultiLabel: {self.ann_file}, line '
                            f'{lineno}: LabelName {mid} is not in '
                            f'{self.class_file} (a class-descriptions file '
                            'of another subset or version?)')
                    continue
                old = entries[r].get(c)
                if old is not None and old[0] != value:
                    if self.on_conflict == 'error':
                        raise ValueError(
                            f'OpenImagesMultiLabel: {self.ann_file}: image '
                            f'{img} is verified both present and absent for '
                            f'{mid} ({names[c]}), lines {old[1]} and '
                            f'{lineno}; set on_conflict to unknown, positive '
                            'or negative')
                    conflicts[(r, c)] = None
                if old is None:
                    entries[r][c] = (value, lineno)
        labels = np.zeros((len(entries), len(mids)), LABEL_DTYPE)
        for r, e in enumerate(entries):
            for c, (v, _) in e.items():
                labels[r, c] = v
        for r, c in conflicts:
            labels[r, c] = _CONFLICT_LABEL[self.on_conflict]
        return list(rows), labels

    def load_annotations(self) -> Tuple[List[str], np.ndarray, Sequence[str],
                                        Optional[List[Dict]]]:
        mids, names, all_mids = self._class_subset()
        all_mids = set(all_mids)
        col = {m: i for i, m in enumerate(mids)}
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'OpenImagesMultiLabel: image-level labels {self.ann_file} '
                'not found (the official '
                '<split>-annotations-human-imagelabels-boxable.csv)')
        header = self._read_header()
        parsed = self._parse_numpy(header, col, all_mids)
        if parsed is None:  # quoting, ragged rows or an error: exact path
            parsed = self._parse_python(col, all_mids, names)
        ids, labels = parsed
        if self.drop_unlabelled:
            keep = np.flatnonzero((labels != 0).any(1))
            ids, labels = [ids[k] for k in keep], labels[keep]
        counts: Dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        display = [n if counts[n] == 1 else f'{n} ({m})'
                   for n, m in zip(names, mids)]
        self._metainfo['mids'] = tuple(mids)
        paths = [self._img(i + self.img_suffix) for i in ids]
        return paths, labels, display, [dict(img_id=i) for i in ids]
