"""Refuse to train on partial labels that carry no supervision."""
from typing import Any, List, Optional, Sequence

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS

#: dataset attributes named in the description of a training set
_FILE_ATTRS = ('label_file', 'ann_file')
_PROTOCOL_ATTRS = ('mode', 'known_ratio', 'subset')


def describe_dataset(dataset: Any) -> str:
    """``'PartialLabelDataset(mode='file', label_file='a.txt') <-
    CocoMultiLabel(ann_file='x.json')'``: every wrapper level (``.dataset``;
    the first of ``.datasets``) with its protocol arguments and files."""
    parts, ds, seen = [], dataset, 0
    while ds is not None and seen < 8:
        seen += 1
        args = []
        for attr in _PROTOCOL_ATTRS + _FILE_ATTRS:
            value = getattr(ds, attr, None)
            if value is None or value == '' or callable(value):
                continue
            if attr == 'known_ratio' and getattr(ds, 'mode', None) not in (
                    None, 'proportion'):
                continue
            args.append(f'{attr}={value!r}')
        parts.append(f'{type(ds).__name__}({", ".join(args)})')
        inner = getattr(ds, 'dataset', None)
        if inner is None and getattr(ds, 'datasets', None):
            inner = ds.datasets[0]
        ds = inner
    return ' <- '.join(parts)


def _class_names(dataset: Any, num: int) -> List[str]:
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    if classes is None or len(classes) != num:
        return [f'class {i}' for i in range(num)]
    return [str(c) for c in classes]


def check_supervision(labels: np.ndarray, source: str,
                      class_names: Optional[Sequence[str]] = None,
                      logger: str = 'current') -> dict:
    """Check the (N, C) training partial labels (+1 / -1 / 0 unknown).

    Raises:
        ValueError: no image, no known entry or no known positive (naming
            ``source`` and the known / positive proportions): partial BCE
            would train at loss 0 (no known label), or every score would be
            pushed to 0 (no positive).

    A class without any known positive is logged as a WARNING (count and the
    first names): its scores are trained towards 0 only.

    Returns:
        dict ``known`` (fraction of known entries), ``positive`` (fraction of
        positive entries), ``classes_without_positive`` (list of indices).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f'SupervisionCheckHook: the training set {source} '
                         f'has no image (labels of shape {labels.shape})')
    n, c = labels.shape
    known = float((labels != 0).mean())
    positive = float((labels == 1).mean())
    stats = (f'{n} images x {c} classes, known proportion {known:.4f}, '
             f'known positives {int((labels == 1).sum())} '
             f'(proportion {positive:.4f})')
    fix = ('Check the label file / annotation file and the partial-label '
           'protocol (mode, known_ratio) of train_dataloader.dataset.')
    if not (labels != 0).any():
        raise ValueError(
            f'SupervisionCheckHook: the training set {source} has no known '
            f'label ({stats}): every partial-label loss would be 0 for the '
            f'whole run. {fix}')
    if not (labels == 1).any():
        raise ValueError(
            f'SupervisionCheckHook: the training set {source} has no known '
            f'positive label ({stats}): the model would only learn to score '
            f'every class 0. {fix}')
    empty = np.flatnonzero(~(labels == 1).any(0)).tolist()
    if empty:
        names = list(class_names) if class_names is not None else \
            [f'class {i}' for i in range(c)]
        shown = ', '.join(f'{i} ({names[i]})' for i in empty[:10])
        more = f' and {len(empty) - 10} more' if len(empty) > 10 else ''
        print_log(
            f'SupervisionCheckHook: {len(empty)} of {c} classes have no known '
            f'positive in the training set {source}: {shown}{more}. They are '
            'trained towards 0 only (and have no label-graph edge or '
            'prototype).', logger=logger, level=30)
    return dict(known=known, positive=positive,
                classes_without_positive=empty)


@HOOKS.register_module()
class SupervisionCheckHook(Hook):
    """Refuse to train when the training labels carry no supervision.

    In ``before_train`` (before the first iteration) the (N, C) partial labels
    of the training dataset (wrappers unwrapped,
    :func:`mlrpl_mm.datasets.get_partial_labels`) go through
    :func:`check_supervision`: no image, no known label or no known positive
    raise a ``ValueError`` naming the dataset chain with its label /
    annotation files and the proportions; a class without a known positive
    is a WARNING. It lives in ``default_hooks`` (``supervision_check``);
    ``default_hooks.supervision_check=None`` disables it.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        from mlrpl_mm.datasets import get_partial_labels
        dataset = runner.train_dataloader.dataset
        try:
            labels = get_partial_labels(dataset)
        except (KeyError, TypeError, AttributeError) as err:
            runner.logger.info(f'SupervisionCheckHook: not checked, no label '
                               f'matrix for {type(dataset).__name__} ({err})')
            return
        stats = check_supervision(
            labels, describe_dataset(dataset),
            _class_names(dataset, np.asarray(labels).shape[-1]))
        runner.logger.info(
            f'SupervisionCheckHook: known proportion {stats["known"]:.4f}, '
            f'positive proportion {stats["positive"]:.4f}, '
            f'{len(stats["classes_without_positive"])} classes without a '
            'known positive')
