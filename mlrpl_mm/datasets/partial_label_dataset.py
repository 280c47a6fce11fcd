"""Wrapper that turns a fully labelled multi-label dataset into a partially
labelled one, following one of the protocols of docs/equations/protocol.md."""
import copy
from typing import Any, Callable, List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import BaseDataset, Compose
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS, TRANSFORMS

from mlrpl_mm.utils.checks import check_choice

from .base_multi_label import LABEL_DTYPE, check_label_matrix, run_pipeline
from .label_stats import cooccurrence_graph
from .partial_label_protocols import (check_known_ratio, load_label_file,
                                      proportion_mask, save_label_file,
                                      single_positive_labels,
                                      spml_train_val_split)
from .utils import get_full_labels

_MODES = ('proportion', 'single_positive', 'file', 'full')


@DATASETS.register_module()
class PartialLabelDataset(BaseDataset):
    """Partial-label view of a multi-label dataset.

    The (N, C) partial-label matrix Y is computed once over the whole inner
    dataset, in its order (the reference order matters for the masks):

    - ``'proportion'``: keep each label with probability ``known_ratio``
      (``np.random.seed(0)``; keep where ``random() < p``), bit-exact with
      the published VOC 2007 files (:func:`proportion_mask`).
    - ``'single_positive'``: one known positive per image, the rest unknown
      (Cole et al., ``RandomState(1200)``; :func:`single_positive_labels`).
    - ``'file'``: an N x C matrix loaded from ``label_file`` (``.txt`` /
      ``.npy``), validated against the dataset (rows, classes, values).
    - ``'full'``: every label known (Y = full labels), e.g. for a baseline.

    ``subset='train'`` / ``'val'`` then keeps the rows of the 80/20 split of
    the single-positive protocol (:func:`spml_train_val_split`); a ``'val'``
    subset keeps its full labels (``partial_label`` = full labels) for model
    selection.

    Hidden labels: unless ``hide_full_labels=False`` (default: hidden except
    for the ``'val'`` subset) the data infos that reach the pipeline carry no
    ``full_label``, ``gt_label``, ``gt_score`` or other ``*_label`` field of
    the inner dataset (e.g. NUS-WIDE's ``unseen_label``); only
    ``partial_label``. The full labels
    stay in :attr:`hidden_full_labels` for diagnostics hooks.

    ``sample_idx`` of each info is the index in this wrapper (what heads use to
    index per-sample buffers); ``ori_sample_idx`` the inner index.

    It subclasses mmengine's ``BaseDataset`` so that mmengine's wrappers
    (``ConcatDataset``...) accept it.

    Args:
        dataset (dict | Dataset): The inner dataset or its config. Any
            mmpretrain multi-label dataset works (labels from ``full_label`` or
            ``gt_label``) and needs ``metainfo['classes']``.
        mode (str): ``'proportion'``, ``'single_positive'``, ``'file'`` or
            ``'full'``. Defaults to ``'proportion'``.
        known_ratio (float): Known proportion p in (0, 1] of ``'proportion'``.
            Defaults to 0.3.
        seed (int, optional): Generator seed. Defaults to the protocol's: 0
            (proportion), 1200 (single positive).
        label_file (str, optional): Matrix to load in ``'file'`` mode.
        save_label_file (str, optional): Where to save the generated N x C
            matrix of the whole inner dataset (before ``subset``; ``.txt``,
            comma separated as the published files, or ``.npy``), on the
            main process only. ``mode='file'`` loads it back.
        subset (str, optional): ``None`` (all rows), ``'train'`` or ``'val'``
            of the 80/20 split. Defaults to None.
        val_fraction (float): Fraction of the ``'val'`` subset.
            Defaults to 0.2.
        split_seed (int): Seed of the split permutation. Defaults to 1200.
        hide_full_labels (bool, optional): Remove ``full_label`` / ``gt_label``
            from the infos. Defaults to None: True unless ``subset='val'``.
        pipeline (list, optional): Pipeline applied to the wrapped infos.
            Defaults to None: the inner dataset's pipeline.
        max_refetch (int): Retries when a training pipeline returns None.
            Defaults to 1000.
    """

    def __init__(self,
                 dataset: Union[dict, Any],
                 mode: str = 'proportion',
                 known_ratio: float = 0.3,
                 seed: Optional[int] = None,
                 label_file: Optional[str] = None,
                 save_label_file: Optional[str] = None,
                 subset: Optional[str] = None,
                 val_fraction: float = 0.2,
                 split_seed: int = 1200,
                 hide_full_labels: Optional[bool] = None,
                 pipeline: Optional[Sequence[Union[dict, Callable]]] = None,
                 max_refetch: int = 1000) -> None:
        check_choice('mode', mode, _MODES, 'PartialLabelDataset', one_of=True)
        if mode == 'proportion':
            known_ratio = check_known_ratio(known_ratio, 'PartialLabelDataset')
        if mode == 'file' and not label_file:
            raise ValueError("PartialLabelDataset: mode='file' needs "
                             'label_file')
        check_choice('subset', subset, (None, 'train', 'val'),
                     'PartialLabelDataset')
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) \
            else dataset
        # an mmengine BaseDataset (so ConcatDataset & co. accept it), without
        # an annotation file of its own
        super().__init__(
            ann_file='',
            serialize_data=False,
            lazy_init=True,
            max_refetch=max_refetch)
        self.mode = mode
        self.known_ratio = float(known_ratio)
        self.seed = seed if seed is not None else \
            (1200 if mode == 'single_positive' else 0)
        self.label_file = label_file
        self.save_label_file = save_label_file
        self.subset = subset
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.hide_full_labels = (subset != 'val') if hide_full_labels is None \
            else bool(hide_full_labels)
        if pipeline is None:
            self.pipeline = getattr(self.dataset, 'pipeline', None) or \
                Compose([])
        else:
            self.pipeline = Compose([
                TRANSFORMS.build(t) if isinstance(t, dict) else t
                for t in pipeline
            ])
        self.max_refetch = max_refetch
        self.test_mode = bool(getattr(self.dataset, 'test_mode', False))
        self._fully_initialized = False
        self.full_init()

    # ------------------------------------------------------------ init
    @property
    def metainfo(self) -> dict:
        meta = copy.deepcopy(self.dataset.metainfo)
        meta.update(partial_label_mode=self.mode)
        if self.mode == 'proportion':
            meta.update(known_ratio=self.known_ratio)
        return meta

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()
        classes = self.dataset.metainfo.get('classes')
        if classes is None:
            raise ValueError(
                f'PartialLabelDataset: the inner {type(self.dataset).__name__}'
                " has no metainfo['classes']")
        full = get_full_labels(self.dataset)
        check_label_matrix(
            full,
            f'{type(self.dataset).__name__} labels',
            num_classes=len(classes))
        if self.mode == 'proportion':
            partial = proportion_mask(full, self.known_ratio, self.seed)
        elif self.mode == 'single_positive':
            partial = single_positive_labels(full, self.seed)
        elif self.mode == 'file':
            partial = load_label_file(
                self.label_file,
                num_rows=full.shape[0],
                num_classes=full.shape[1])
            clash = (partial != 0) & (full != 0) & (partial != full)
            if clash.any():
                print_log(
                    f'PartialLabelDataset: {int(clash.sum())} known entries '
                    f'of {self.label_file} contradict the dataset labels',
                    logger='current',
                    level=30)
        else:
            partial = full.copy()
        if self.save_label_file and is_main_process():
            save_label_file(self.save_label_file, partial)
        if self.subset is None:
            self._indices = None
        else:
            train_idx, val_idx = spml_train_val_split(full.shape[0],
                                                      self.val_fraction,
                                                      self.split_seed)
            self._indices = train_idx if self.subset == 'train' else val_idx
            full = full[self._indices]
            partial = full.copy() if self.subset == 'val' \
                else partial[self._indices]
        self._full = full.astype(LABEL_DTYPE)
        self._partial = partial.astype(LABEL_DTYPE)
        self._partial.setflags(write=False)
        self._fully_initialized = True

    # ------------------------------------------------------------ labels
    @property
    def partial_labels(self) -> np.ndarray:
        """(N, C) int8 partial labels (+1 / -1 / 0 unknown), read-only."""
        return self._partial

    @property
    def hidden_full_labels(self) -> np.ndarray:
        """(N, C) int8 full labels, for diagnostics hooks only."""
        return self._full

    @property
    def full_labels(self) -> np.ndarray:
        """Alias of :attr:`hidden_full_labels` (diagnostics only)."""
        return self._full

    def label_graph(self) -> np.ndarray:
        """(C, C) co-occurrence graph of the known positives
        (:func:`cooccurrence_graph` of :attr:`partial_labels`)."""
        return cooccurrence_graph(self._partial)

    def known_ratio_achieved(self) -> float:
        """Fraction of entries that are known."""
        return float((self._partial != 0).mean()) if self._partial.size \
            else 0.0

    # ------------------------------------------------------------ access
    def __len__(self) -> int:
        return self._partial.shape[0]

    def ori_index(self, idx: int) -> int:
        """Index in the inner dataset of wrapper index ``idx``."""
        return int(self._indices[idx]) if self._indices is not None else idx

    def get_data_info(self, idx: int) -> dict:
        """The info the pipeline sees: ``partial_label`` set, full labels
        removed when hidden, ``sample_idx`` = wrapper index."""
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f'PartialLabelDataset index {idx} out of range '
                             f'[0, {len(self)})')
        ori = self.ori_index(idx)
        info = self.dataset.get_data_info(ori)
        info['partial_label'] = self._partial[idx].copy()
        info['ori_sample_idx'] = ori
        info['sample_idx'] = idx
        if self.hide_full_labels:
            # every label field of the inner dataset is a full label:
            # full_label, gt_label / gt_score (mmpretrain) and the extra
            # label sets such as NUS-WIDE's '<set>_label'
            for key in [k for k in info if k in ('gt_label', 'gt_score')
                        or (k.endswith('_label') and k != 'partial_label')]:
                del info[key]
        else:
            info['full_label'] = self._full[idx].copy()
        return info

    def __getitem__(self, idx: int) -> dict:
        if self.test_mode:
            data = run_pipeline(self.pipeline, self.get_data_info(idx), idx)
            if data is None:
                raise RuntimeError('test-time pipeline returned None for '
                                   f'sample {idx}')
            return data
        rng = np.random.default_rng(idx)
        cur = idx
        for _ in range(self.max_refetch + 1):
            data = run_pipeline(self.pipeline, self.get_data_info(cur), cur)
            if data is not None:
                return data
            cur = int(rng.integers(0, len(self)))
        raise RuntimeError(f'cannot find a valid sample after '
                           f'{self.max_refetch} retries')

    def get_cat_ids(self, idx: int) -> List[int]:
        """Known positive classes of sample ``idx``."""
        return np.flatnonzero(self._partial[idx] == 1).tolist()

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(mode={self.mode!r}, '
            f'known={self.known_ratio_achieved():.4f}, n={len(self)}, '
            f'subset={self.subset!r}, inner={type(self.dataset).__name__})')
