from .base_multi_label import BaseMultiLabelDataset, check_label_matrix
from .coco_multi_label import CocoMultiLabel
from .label_stats import annotation_stats, cooccurrence_graph
from .partial_label_dataset import PartialLabelDataset
from .partial_annotation_io import (load_partial_annotations,
                                    save_partial_annotations)
from .partial_label_annotations import PartialLabelAnnotations
from .partial_label_protocols import (load_label_file, proportion_mask,
                                      save_label_file, single_positive_labels,
                                      spml_train_val_split)
from .transforms import *  # noqa: F401,F403
from .voc_multi_label import VOCMultiLabel, parse_voc_xml
from .vg_multi_label import VGMultiLabel
from .nus_wide_multi_label import NUSWideMultiLabel
from .open_images_multi_label import (OpenImagesMultiLabel,
                                      read_class_descriptions)
from .utils import get_full_labels, get_partial_labels, labels_from_infos
from .worker_seed import resumable_worker_init_fn

__all__ = [
    'cooccurrence_graph', 'BaseMultiLabelDataset', 'check_label_matrix',
    'CocoMultiLabel', 'PartialLabelDataset', 'proportion_mask',
    'single_positive_labels', 'spml_train_val_split', 'load_label_file',
    'save_label_file', 'get_partial_labels', 'get_full_labels',
    'labels_from_infos', 'VOCMultiLabel', 'parse_voc_xml', 'VGMultiLabel',
    'NUSWideMultiLabel', 'resumable_worker_init_fn', 'PartialLabelAnnotations',
    'load_partial_annotations', 'save_partial_annotations', 'annotation_stats',
    'OpenImagesMultiLabel', 'read_class_descriptions'
]
