"""Common base of the mlrpl-mm multi-label datasets (full +1/-1/0 labels)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.datasets import BaseDataset

LABEL_DTYPE = np.int8


def check_label_matrix(labels: np.ndarray,
                       name: str,
                       num_classes: Optional[int] = None,
                       num_rows: Optional[int] = None) -> np.ndarray:
    """Validate an (N, C) label matrix in {-1, 0, +1} and return it as int8.

    Args:
        labels: Array-like label matrix.
        name: What the matrix is (a file name, a dataset), used in errors.
        num_classes: Expected C, if known.
        num_rows: Expected N, if known.

    Raises:
        ValueError: wrong number of dimensions, wrong shape, or a value outside
            {-1, 0, 1} (the first offending row / column / value is named).
    """
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f'{name}: expected an (N, C) label matrix, got shape '
                         f'{arr.shape}')
    if num_rows is not None and arr.shape[0] != num_rows:
        raise ValueError(f'{name}: {arr.shape[0]} rows, but the dataset has '
                         f'{num_rows} images')
    if num_classes is not None and arr.shape[1] != num_classes:
        raise ValueError(
            f'{name}: {arr.shape[1]} columns, but the dataset has '
            f'{num_classes} classes')
    bad = ~np.isin(arr, (-1, 0, 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        value = arr[r, c].item()
        raise ValueError(f'{name}: value {value!r} at row {r}, column {c} '
                         'is outside {-1, 0, 1}')
    return arr.astype(LABEL_DTYPE)


def check_unique_ids(ids: Sequence, what: str, source: str,
                     why: str = '') -> None:
    """``ValueError`` naming ``source`` and the first duplicates when an id
    occurs more than once in ``ids`` (an image list, a split file, the ids
    of a COCO json); ``why`` (the harm of a duplicate) ends the message."""
    seen, dup = set(), []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    if dup:
        raise ValueError(f'{source}: {len(dup)} duplicate {what}(s), e.g. '
                         f'{dup[:5]}; every {what} must occur once'
                         + (f' ({why})' if why else ''))


def image_file_problem(path) -> Optional[str]:
    """``'file not found'`` / ``'zero-byte file'`` for a local image path
    that cannot hold an image, else None (also for non-local paths)."""
    if not isinstance(path, str) or '://' in path:
        return None
    if not osp.exists(path):
        return 'file not found'
    if osp.isfile(path) and osp.getsize(path) == 0:
        return 'zero-byte file'
    return None


def run_pipeline(pipeline, info: dict, idx: int):
    """``pipeline(info)``. When it raises and ``info['img_path']`` is missing
    or empty, an ``OSError`` naming the file, the field and the sample
    replaces the loader's error (cv2 reports a zero-byte file as
    ``!buf.empty()`` without the path); other errors propagate unchanged."""
    try:
        return pipeline(info)
    except Exception as err:
        path = info.get('img_path')
        problem = image_file_problem(path)
        if problem is None or (isinstance(err, OSError) and
                               str(path) in str(err)):
            raise
        raise OSError(
            f'cannot read image {path!r} (field img_path of sample {idx}): '
            f'{problem} ({type(err).__name__}: {err}). Fix or remove the '
            'file, or load images with LoadImageFromFileOrSkip('
            'skip_unreadable=True) in the training pipeline to skip such '
            'images.') from err


class BaseMultiLabelDataset(BaseDataset):
    """Base of the multi-label datasets that carry full +1/-1/0 labels.

    Subclasses implement :meth:`load_annotations`, which returns the image
    paths, the (N, C) full label matrix and the class names. Every data info
    then holds (the design contract of ``docs/design.md``):

    - ``img_path`` (str),
    - ``gt_label``: list of the positive class indices (mmpretrain style),
    - ``full_label``: np.int8 (C,) in {+1, -1, 0}, 0 = ignored entry,
    - ``partial_label``: np.int8 (C,), equal to ``full_label`` here (a
      :class:`PartialLabelDataset` wrapper masks it),
    - any extra per-image keys returned by :meth:`load_annotations`.

    Images are never read while building the dataset (only paths are
    formed). ``check_images=True`` additionally verifies that every image
    file exists (one ``stat`` per image) and names the first missing ones.

    Args:
        ann_file (str): Annotation file, relative to ``data_root``.
        metainfo (dict, optional): Meta information; ``classes`` there
            overrides the names read from the annotations (same count).
        data_root (str): Root directory. Defaults to ''.
        data_prefix (str | dict): Image directory. Defaults to ''.
        check_images (bool): Check that every image file exists while building
            the dataset. Defaults to False.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset`` (pipeline,
            test_mode, lazy_init, indices, serialize_data...).
    """

    def __init__(self,
                 ann_file: str = '',
                 metainfo: Optional[dict] = None,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = '',
                 check_images: bool = False,
                 **kwargs) -> None:
        self.check_images = check_images
        self._full_labels: Optional[np.ndarray] = None
        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    # ------------------------------------------------------------ subclass API
    def load_annotations(
        self
    ) -> Tuple[List[str], np.ndarray, Sequence[str], Optional[List[Dict]]]:
        """Read the annotations.

        Returns:
            tuple: ``(img_paths, full_labels, class_names, extra)`` where
            ``img_paths`` is a list of N paths, ``full_labels`` an (N, C)
            array in {+1, -1, 0}, ``class_names`` the C names and ``extra``
            None or a list of N dicts merged into the data infos.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- loading
    def load_data_list(self) -> List[dict]:
        img_paths, labels, class_names, extra = self.load_annotations()
        if len(img_paths) == 0:
            raise ValueError(
                f'{type(self).__name__}: no images in {self.ann_file!r} '
                '(empty split / image list, or every image filtered out); '
                'check ann_file, data_root and split')
        class_names = tuple(class_names)
        labels = check_label_matrix(
            labels,
            f'{type(self).__name__} labels',
            num_classes=len(class_names),
            num_rows=len(img_paths))
        user_classes = self._metainfo.get('classes')
        if user_classes is not None and len(user_classes) != len(class_names):
            raise ValueError(
                f'{type(self).__name__}: metainfo gives {len(user_classes)} '
                f'classes but the annotations have {len(class_names)}')
        if user_classes is None:
            self._metainfo['classes'] = class_names
        if self.check_images:
            missing = [p for p in img_paths if not osp.isfile(p)]
            if missing:
                raise FileNotFoundError(
                    f'{type(self).__name__}: {len(missing)} image(s) missing, '
                    f'first: {missing[:3]}')
        # the labels live in one (N, C) matrix; the serialised infos keep
        # only a row pointer (fast to pickle, small in shared memory) and
        # get_data_info() adds the label keys
        self._loaded_labels = labels
        data_list = []
        for i, path in enumerate(img_paths):
            info = dict(img_path=path, _label_row=i)
            if extra is not None:
                info.update(extra[i])
            data_list.append(info)
        return data_list

    def full_init(self) -> None:
        """Load, filter, slice and serialise the data list (as mmengine does)
        and keep the (N, C) full label matrix of the final list."""
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        self.data_list = self.filter_data()
        if self._indices is not None:
            self.data_list = self._get_unserialized_subset(self._indices)
        rows = np.array([d.pop('_label_row') for d in self.data_list],
                        dtype=np.int64)
        self._full_labels = self._loaded_labels[rows]
        self._full_labels.setflags(write=False)
        del self._loaded_labels
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True

    def prepare_data(self, idx: int):
        """``pipeline(get_data_info(idx))``; an image file that is missing or
        empty (zero bytes) raises an ``OSError`` naming it
        (:func:`run_pipeline`) instead of the decoder's bare error."""
        return run_pipeline(self.pipeline, self.get_data_info(idx), idx)

    def get_data_info(self, idx: int) -> dict:
        """The data info of image ``idx`` with ``gt_label`` (positive
        indices), ``full_label`` and ``partial_label`` (np.int8 (C,))."""
        info = super().get_data_info(idx)
        row = self._full_labels[idx]
        info['gt_label'] = np.flatnonzero(row == 1).tolist()
        info['full_label'] = row.copy()
        info['partial_label'] = row.copy()
        return info

    def _subset_rows(self, indices) -> np.ndarray:
        """Rows kept by mmengine's subset semantics (int: first / last n)."""
        self.full_init()
        n = len(self._full_labels)
        if isinstance(indices, int):
            return np.arange(n)[:indices] if indices >= 0 \
                else np.arange(n)[indices:]
        return np.asarray(indices, dtype=np.int64).reshape(-1)

    def get_subset_(self, indices) -> None:
        """In-place subset (mmengine semantics) keeping the labels aligned."""
        rows = self._subset_rows(indices)
        super().get_subset_(indices)
        self._full_labels = self._full_labels[rows]

    def get_subset(self, indices) -> 'BaseMultiLabelDataset':
        """A subset copy (mmengine semantics) with aligned labels."""
        rows = self._subset_rows(indices)
        sub = super().get_subset(indices)
        sub._full_labels = self._full_labels[rows]
        return sub

    # ------------------------------------------------------------- properties
    @property
    def num_classes(self) -> int:
        return len(self.metainfo['classes'])

    @property
    def full_labels(self) -> np.ndarray:
        """(N, C) int8 full labels in {+1, -1, 0} (0 = ignored)."""
        self.full_init()
        return self._full_labels

    @property
    def partial_labels(self) -> np.ndarray:
        """(N, C) int8; equal to :attr:`full_labels` for a plain dataset."""
        return self.full_labels

    def get_cat_ids(self, idx: int) -> List[int]:
        """Positive class indices of image ``idx``."""
        return list(self.get_data_info(idx)['gt_label'])

    def get_gt_labels(self) -> np.ndarray:
        """The (N, C) full label matrix (mmpretrain's version crashes on
        ragged multi-label lists under numpy 2)."""
        return self.full_labels

    def _img(self, name: str) -> str:
        prefix = self.data_prefix.get('img_path', '') or ''
        return osp.join(prefix, name) if prefix else name
