"""The dataset of real partial annotations: a JSON or CSV of known labels
(the formats of :mod:`.partial_annotation_io`)."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.registry import DATASETS

from .base_multi_label import BaseMultiLabelDataset
from .partial_annotation_io import load_partial_annotations


@DATASETS.register_module()
class PartialLabelAnnotations(BaseMultiLabelDataset):
    """A dataset with real partial annotations (JSON or CSV, see
    :func:`load_partial_annotations`).

    The labels read are the known ones (+1 / -1, 0 = unknown). Both
    ``partial_label`` (what a method trains on) and ``full_label`` (what the
    metric reads) are this matrix: in training the unknown entries are
    unknown, and on a test set the metric scores only the known entries
    (``MultiLabelMAP`` ignores target 0). Use it directly as the training
    dataset (no :class:`PartialLabelDataset` wrapper: nothing is hidden) and
    as the test dataset.

    Example::

        dict(type='PartialLabelAnnotations', data_root='data/mine',
             ann_file='train.json', data_prefix='images')

    Args:
        ann_file (str): ``.json`` or ``.csv``, relative to ``data_root``.
        classes (list | str, optional): Class names or a text file of them
            (one per line, relative to the working directory or absolute).
            Required for a CSV; for a JSON, checked against its classes.
        unlisted (str): ``'unknown'`` (default) or ``'negative'``: every
            entry not listed is a known negative (a fully labelled test set
            written with positives only).
        check_images (bool): Check that every image exists while building
            (one ``stat`` per image; the first missing ones are named).
            Defaults to True.
        **kwargs: See :class:`BaseMultiLabelDataset` (``data_root``,
            ``data_prefix``, ``pipeline``, ``test_mode``...).
    """

    def __init__(self,
                 ann_file: str = '',
                 classes: Union[str, Sequence[str], None] = None,
                 unlisted: str = 'unknown',
                 check_images: bool = True,
                 **kwargs) -> None:
        if not ann_file:
            raise ValueError('PartialLabelAnnotations: give ann_file (a .json '
                             'or .csv of known labels)')
        self.classes_spec = classes
        self.unlisted = unlisted
        super().__init__(ann_file=ann_file, check_images=check_images,
                         **kwargs)

    def load_annotations(self) -> Tuple[List[str], np.ndarray, Sequence[str],
                                        Optional[List[Dict]]]:
        paths, labels, classes = load_partial_annotations(
            self.ann_file, self.classes_spec, self.unlisted)
        return [self._img(p) for p in paths], labels, classes, None

    def load_data_list(self) -> List[dict]:
        try:
            return super().load_data_list()
        except FileNotFoundError as e:
            if 'image(s) missing' in str(e):
                raise FileNotFoundError(
                    f'{e} (listed in {self.ann_file}; image paths are '
                    f'relative to data_prefix '
                    f"{self.data_prefix.get('img_path', '')!r})") from None
            raise
