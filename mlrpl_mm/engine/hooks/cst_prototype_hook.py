"""Hook computing the CST class prototypes on schedule."""
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from torch.utils.data import DataLoader

from mlrpl_mm.utils import (gather_by_index, gather_by_index_in_groups,
                            sample_indices)

from .label_graph_hook import training_partial_labels, unwrap_model
from .training_set_loader import build_training_set_loader, check_pipeline_arg


@torch.no_grad()
def collect_local_positive_features(model, loader, partial_labels: np.ndarray,
                                    head_attr: str = 'head'
                                    ) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """This rank's SD features of the known positives of its loader shard.

    Runs ``model`` (unwrapped) in eval mode; the features come from
    ``head.class_features``.

    Returns:
        ``(key (m,) long, feats (m, D) float32, C)`` with key =
        sample_idx * C + c, in loader order (not gathered).
    """
    model = unwrap_model(model)
    head = getattr(model, head_attr)
    labels = torch.as_tensor(np.asarray(partial_labels))
    C = labels.shape[1]
    was_training = model.training
    model.eval()
    keys, rows = [], []
    device = next(model.parameters()).device
    try:
        for data in loader:
            data = model.data_preprocessor(data, False)
            f = head.class_features(model.extract_feat(data['inputs']))
            idx = sample_indices(data['data_samples'])
            pos = labels[idx] == 1  # (B, C)
            b, c = torch.nonzero(pos, as_tuple=True)
            keys.append((idx[b] * C + c).to(device))
            rows.append(f[b.to(f.device), c.to(f.device)].float())
    finally:
        model.train(was_training)
    D = getattr(getattr(head, 'trunk', None), 'feat_channels', 0)
    key = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long, device=device)
    feat = torch.cat(rows) if rows else torch.zeros(0, D, device=device)
    return key, feat, C


def gather_positive_features_by_class(key: torch.Tensor, feat: torch.Tensor,
                                      C: int, max_rows: Optional[int] = None
                                      ) -> Iterator[Tuple[torch.Tensor,
                                                          torch.Tensor]]:
    """The rows of all ranks, one chunk of classes at a time.

    :func:`mlrpl_mm.utils.gather_by_index_in_groups` with the class
    (key % C) as group: each chunk holds at most ``max_rows`` rows (or one
    class), classes ascending, rows of a class sorted by sample. Every rank
    gets the same chunks, equal to the single-process rows, while holding
    only its own shard plus one chunk (instead of every rank's rows).

    Yields:
        ``(classes (M_i,) long, feats (M_i, D))``.
    """
    for k, f in gather_by_index_in_groups(key, key % C, C, feat,
                                          max_rows=max_rows):
        yield k % C, f


@torch.no_grad()
def collect_positive_features(model, loader, partial_labels: np.ndarray,
                              head_attr: str = 'head'
                              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """SD features of every known positive (image, class) of a loader.

    Runs ``model`` (unwrapped) in eval mode; the features come from
    ``head.class_features``. Rows of all ranks are all-gathered with
    :func:`mlrpl_mm.utils.gather_by_index` (key = sample_idx * C + c), so every
    rank returns the same rows in the same order as one process would.
    (:class:`CSTPrototypeHook` gathers them by class chunks instead,
    :func:`gather_positive_features_by_class`.)

    Args:
        model: mmpretrain classifier (``data_preprocessor``, ``extract_feat``).
        loader: iterable of collated batches (``inputs``, ``data_samples``
            with ``sample_idx``).
        partial_labels: (N, C) training labels (+1 / -1 / 0), indexed by
            ``sample_idx``.

    Returns:
        ``(classes (M,) long, feats (M, D) float32)`` sorted by (sample, class).
    """
    key, feat, C = collect_local_positive_features(model, loader,
                                                   partial_labels, head_attr)
    key, feat = gather_by_index(key, feat)
    return key % C, feat


@HOOKS.register_module()
class CSTPrototypeHook(Hook):
    """Compute the CST prototypes from the training set on schedule.

    At the start of epochs ``start_epoch``, ``start_epoch + interval``, ...
    (0-based; protocol: 5, 10, 15), the model runs in eval mode over its own
    non-shuffled loader of the training set; the SD features of the known
    positives are gathered over all ranks and clustered per class by
    ``head.cst.update_prototypes`` (seeded k-means), so every rank ends with
    the single-process prototypes. After ``--resume`` the restored
    prototypes are kept when ``head.cst.prototype_epoch`` is already at or
    after the latest scheduled epoch.

    Args:
        start_epoch (int): First epoch. Defaults to 5.
        interval (int): Recompute every this many epochs. Defaults to 5.
        pipeline (str | list): Images of this pass
            (:mod:`~mlrpl_mm.engine.hooks.training_set_loader`):
            ``'train'`` (default, the reference behaviour: the training
            dataset as configured, i.e. augmented training images),
            ``'test'`` (the improvement switch: the training set's data
            infos through the val/test pipeline of the config, i.e.
            un-augmented images) or a list of transforms.
        batch_size (int, optional): Defaults to the train batch size.
        num_workers (int): Defaults to 0.
        head_attr (str): Defaults to ``'head'``.
        max_gather_rows (int, optional): The features of all ranks are
            gathered and clustered one chunk of classes at a time, at most
            this many (image, class) rows per chunk (a class with more rows
            forms a chunk alone), so a rank holds its own shard plus one
            chunk instead of every rank's rows (VG-200 at 90% known: ~1M
            rows x 1024 x 4 B = 4 GB per rank in one piece). The prototypes
            do not depend on it. None: one chunk. Defaults to 65536
            (256 MiB at D = 1024).
    """

    priority = 'NORMAL'

    def __init__(self, start_epoch: int = 5, interval: int = 5,
                 pipeline: Union[str, List[dict]] = 'train',
                 batch_size: Optional[int] = None, num_workers: int = 0,
                 head_attr: str = 'head',
                 max_gather_rows: Optional[int] = 65536) -> None:
        if max_gather_rows is not None and max_gather_rows < 1:
            raise ValueError('CSTPrototypeHook: max_gather_rows must be >= 1 '
                             f'or None, got {max_gather_rows}')
        if interval <= 0 or start_epoch < 0:
            raise ValueError('CSTPrototypeHook: start_epoch must be >= 0 and '
                             f'interval > 0, got {start_epoch}, {interval}')
        check_pipeline_arg(pipeline, 'CSTPrototypeHook')
        self.start_epoch = start_epoch
        self.interval = interval
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.head_attr = head_attr
        self.max_gather_rows = max_gather_rows

    def scheduled_epoch(self, epoch: int) -> Optional[int]:
        """Latest scheduled epoch <= ``epoch`` (None before the first)."""
        if epoch < self.start_epoch:
            return None
        return epoch - (epoch - self.start_epoch) % self.interval

    def build_loader(self, runner) -> DataLoader:
        """A non-shuffled (distributed) loader over the training set."""
        return build_training_set_loader(
            runner, self.pipeline, 'CSTPrototypeHook',
            batch_size=self.batch_size, num_workers=self.num_workers,
            collate_fn=pseudo_collate)

    def before_train_epoch(self, runner) -> None:
        target = self.scheduled_epoch(runner.epoch)
        if target is None:
            return
        head = getattr(unwrap_model(runner.model), self.head_attr)
        cst = getattr(head, 'cst', None)
        if cst is None:
            return
        if int(cst.prototype_epoch) >= target:
            return  # restored by resume and valid for this epoch
        self.compute(runner.model, self.build_loader(runner),
                     training_partial_labels(runner.train_dataloader.dataset),
                     runner.epoch)
        runner.logger.info(
            f'CSTPrototypeHook: epoch {runner.epoch}: prototypes from '
            f'{self._last_rows} known positives, '
            f'{int((cst.prototype_count == 0).sum())} classes without one')

    def compute(self, model, loader, partial_labels: np.ndarray, epoch: int) -> None:
        """Collect the positives' features and run the per-class k-means
        (gathered and clustered one chunk of classes at a time)."""
        key, feat, C = collect_local_positive_features(
            model, loader, partial_labels, self.head_attr)
        head = getattr(unwrap_model(model), self.head_attr)
        self._last_rows = 0

        def chunks():
            for classes, feats in gather_positive_features_by_class(
                    key, feat, C, self.max_gather_rows):
                self._last_rows += int(feats.shape[0])
                yield classes, feats
        head.cst.update_prototypes_in_chunks(chunks(), epoch)
