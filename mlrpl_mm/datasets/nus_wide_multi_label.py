"""NUS-WIDE (81 concepts, and the 925 seen / 81 unseen zero-shot split)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmpretrain.registry import DATASETS

from mlrpl_mm.utils.checks import check_choice

from .base_multi_label import BaseMultiLabelDataset

LABEL_SETS = ('unseen', 'seen', 'all')


def _read_lines(path: str) -> List[str]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'NUSWideMultiLabel: {path} not found')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _read_binary_matrix(path: str, num_rows: int, num_cols: int) -> np.ndarray:
    """Rows of 0/1 separated by tabs/spaces -> (N, K) bool."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'NUSWideMultiLabel: {path} not found')
    out = np.zeros((num_rows, num_cols), bool)
    row = 0
    with open(path, 'rb') as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if row >= num_rows:
                raise ValueError(f'NUSWideMultiLabel: {path} has more than '
                                 f'{num_rows} rows (the image list length)')
            if len(tokens) != num_cols:
                raise ValueError(f'NUSWideMultiLabel: {path}, line {lineno}:'
                                 f' {len(tokens)} entries, expected '
                                 f'{num_cols}')
            vals = np.array(tokens).astype(np.int64) if any(
                len(t) != 1 for t in tokens) else \
                np.frombuffer(b''.join(tokens), np.uint8).astype(np.int64) - 48
            if ((vals != 0) & (vals != 1)).any():
                raise ValueError(f'NUSWideMultiLabel: {path}, line {lineno}: '
                                 'entries must be 0 or 1')
            out[row] = vals == 1
            row += 1
    if row != num_rows:
        raise ValueError(f'NUSWideMultiLabel: {path} has {row} rows, the '
                         f'image list has {num_rows}')
    return out


@DATASETS.register_module()
class NUSWideMultiLabel(BaseMultiLabelDataset):
    """NUS-WIDE from the files of the official release.

    Files (relative to ``data_root``):

    - ``ImageList/{Train,Test}Imagelist.txt``: the image order, lines
      ``<dir>\\<file>.jpg`` (images under ``data_prefix``, default
      ``Flickr``);
    - ``Concepts81.txt`` and ``Groundtruth/TrainTestLabels/
      Labels_<concept>_{Train,Test}.txt`` (one 0/1 per image): the 81
      human-annotated concepts;
    - ``NUS_WID_Tags/TagList1k.txt`` and
      ``NUS_WID_Tags/{Train,Test}_Tags1k.dat``
      (one row of 1000 0/1 per image): the 1k user tags.

    Label sets (the zero-shot split of LESA / BiAM / SigRL): ``'unseen'`` =
    the 81 concepts (the standard NUS-WIDE 81-label benchmark, ZSL test
    classes), ``'seen'`` = the tags that are not concepts (925 classes,
    zero-shot training), ``'all'`` = seen followed by unseen (1006, GZSL).
    ``label_set`` chooses the ``full_label`` / class list of the dataset;
    ``extra_label_sets`` adds other sets as extra info keys
    ``<set>_label`` (np.int8, +1/-1), e.g. ``('seen', 'unseen')``. The class
    names of every set are in ``metainfo['seen_classes']`` and
    ``metainfo['unseen_classes']``. The tag files are read only when a set
    needs them.

    Args:
        data_root (str): NUS-WIDE root.
        split (str): ``'train'`` or ``'test'``. Defaults to ``'train'``.
        label_set (str): ``'unseen'``, ``'seen'`` or ``'all'``. Defaults to
            ``'unseen'`` (the 81 concepts).
        extra_label_sets (Sequence[str]): Other sets added to every info.
        drop_empty (bool): Drop images without any positive in ``label_set``.
            Defaults to False.
        data_prefix (str | dict): Image directory. Defaults to ``'Flickr'``.
        image_list (str, optional): Defaults to
            ``ImageList/<Split>Imagelist.txt``.
        concepts_file (str): Defaults to ``'Concepts81.txt'``.
        concept_label_dir (str): Defaults to
            ``'Groundtruth/TrainTestLabels'``.
        tags_file (str): Defaults to ``'NUS_WID_Tags/TagList1k.txt'``.
        tag_label_file (str, optional): Defaults to
            ``NUS_WID_Tags/<Split>_Tags1k.dat``.
        **kwargs: See :class:`BaseMultiLabelDataset`.
    """

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 label_set: str = 'unseen',
                 extra_label_sets: Sequence[str] = (),
                 drop_empty: bool = False,
                 data_prefix='Flickr',
                 image_list: Optional[str] = None,
                 concepts_file: str = 'Concepts81.txt',
                 concept_label_dir: str = 'Groundtruth/TrainTestLabels',
                 tags_file: str = 'NUS_WID_Tags/TagList1k.txt',
                 tag_label_file: Optional[str] = None,
                 **kwargs) -> None:
        check_choice('split', split, ('train', 'test'), 'NUSWideMultiLabel')
        for s in (label_set, *extra_label_sets):
            check_choice('label set', s, LABEL_SETS, 'NUSWideMultiLabel',
                         one_of=True)
        Split = split.capitalize()
        self.split = split
        self.label_set = label_set
        self.extra_label_sets = tuple(extra_label_sets)
        self.drop_empty = drop_empty

        def j(p):
            return p if osp.isabs(p) or not data_root else \
                osp.join(data_root, p)

        self.concepts_file = j(concepts_file)
        self.concept_label_dir = j(concept_label_dir)
        self.tags_file = j(tags_file)
        self.tag_label_file = j(tag_label_file
                                or f'NUS_WID_Tags/{Split}_Tags1k.dat')
        super().__init__(
            ann_file=image_list or f'ImageList/{Split}Imagelist.txt',
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def _concept_labels(self, concepts: List[str], n: int) -> np.ndarray:
        Split = self.split.capitalize()
        out = np.zeros((n, len(concepts)), bool)
        for c, name in enumerate(concepts):
            path = osp.join(self.concept_label_dir,
                            f'Labels_{name}_{Split}.txt')
            if not osp.isfile(path):
                raise FileNotFoundError(f'NUSWideMultiLabel: {path} not found')
            with open(path) as f:
                tokens = f.read().split()
            if len(tokens) != n:
                raise ValueError(f'NUSWideMultiLabel: {path} has '
                                 f'{len(tokens)} entries, the image list has '
                                 f'{n}')
            vals = np.array(tokens)
            if not np.isin(vals, ('0', '1')).all():
                raise ValueError(f'NUSWideMultiLabel: {path}: entries must '
                                 'be 0 or 1')
            out[:, c] = vals == '1'
        return out

    def load_annotations(
        self
    ) -> Tuple[List[str], np.ndarray, Sequence[str], Optional[List[Dict]]]:
        lines = _read_lines(self.ann_file)
        n = len(lines)
        concepts = _read_lines(self.concepts_file)
        needed = {self.label_set, *self.extra_label_sets}
        sets: Dict[str, Tuple[List[str], np.ndarray]] = {}
        if needed & {'unseen', 'all'}:
            sets['unseen'] = (concepts, self._concept_labels(concepts, n))
        if needed & {'seen', 'all'}:
            tags = _read_lines(self.tags_file)
            concept_set = set(concepts)
            keep = [i for i, t in enumerate(tags) if t not in concept_set]
            tag_lab = _read_binary_matrix(self.tag_label_file, n, len(tags))
            sets['seen'] = ([tags[i] for i in keep], tag_lab[:, keep])
        if 'all' in needed:
            sets['all'] = (sets['seen'][0] + sets['unseen'][0],
                           np.concatenate([sets['seen'][1], sets['unseen'][1]],
                                          axis=1))
        self._metainfo['unseen_classes'] = tuple(concepts)
        if 'seen' in sets:
            self._metainfo['seen_classes'] = tuple(sets['seen'][0])
        self._metainfo['label_set'] = self.label_set
        names, pos = sets[self.label_set]
        rows = np.arange(n)
        if self.drop_empty:
            rows = np.flatnonzero(pos.any(1))
        labels = np.where(pos[rows], 1, -1).astype(np.int8)
        paths = [self._img(lines[i].replace('\\', '/')) for i in rows]
        extra = None
        if self.extra_label_sets:
            extra = [dict() for _ in rows]
            for s in self.extra_label_sets:
                mat = np.where(sets[s][1][rows], 1, -1).astype(np.int8)
                for k in range(len(rows)):
                    extra[k][f'{s}_label'] = mat[k]
        return paths, labels, names, extra
