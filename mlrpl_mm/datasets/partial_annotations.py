"""Former home of the partial-annotation reader, its statistics and its
dataset, now one concept per module; every name stays importable from here:

- :mod:`.partial_annotation_io`: the JSON / CSV formats,
  :func:`load_partial_annotations`, :func:`save_partial_annotations`;
- :mod:`.class_list`: :func:`read_class_list`;
- :mod:`.label_stats`: :func:`annotation_stats`, :func:`format_stats`;
- :mod:`.partial_label_annotations`: :class:`PartialLabelAnnotations`.
"""
from .base_multi_label import LABEL_DTYPE
from .class_list import read_class_list
from .label_stats import annotation_stats, format_stats
from .partial_annotation_io import (LIST_SEP, load_partial_annotations,
                                    save_partial_annotations)
from .partial_label_annotations import PartialLabelAnnotations

__all__ = [
    'LABEL_DTYPE', 'LIST_SEP', 'read_class_list', 'load_partial_annotations',
    'save_partial_annotations', 'annotation_stats', 'format_stats',
    'PartialLabelAnnotations'
]
