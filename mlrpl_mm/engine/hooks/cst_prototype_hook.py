"""Hook computing the CST class prototypes on schedule."""
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmpretrain.registry import HOOKS

from mlrpl_mm.datasets import get_partial_labels
from mlrpl_mm.utils import sample_indices, unwrap_model

from .training_set_pass import (TrainingSetPassHook, eval_mode,
                                gather_in_slot_chunks, training_set_batches)


@torch.no_grad()
def collect_local_positive_features(model, loader, partial_labels: np.ndarray,
                                    head_attr: str = 'head', logger=None
                                    ) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """This rank's SD features of the known positives of its loader shard.

    Runs ``model`` (unwrapped) in eval mode
    (:func:`~.training_set_pass.training_set_batches`); the features come
    from ``head.class_features``.

    Returns:
        ``(key (m,) long, feats (m, D) float32, C)`` with key =
        sample_idx * C + c, in loader order (not gathered).
    """
    model = unwrap_model(model)
    head = getattr(model, head_attr)
    labels = torch.as_tensor(np.asarray(partial_labels))
    C = labels.shape[1]
    keys, rows = [], []
    device = next(model.parameters()).device
    with eval_mode(model):
        for data in training_set_batches(model, loader, 'CSTPrototypeHook',
                                         logger):
            f = head.class_features(model.extract_feat(data['inputs']))
            idx = sample_indices(data['data_samples'])
            pos = labels[idx] == 1  # (B, C)
            b, c = torch.nonzero(pos, as_tuple=True)
            keys.append((idx[b] * C + c).to(device))
            rows.append(f[b.to(f.device), c.to(f.device)].float())
    D = getattr(getattr(head, 'trunk', None), 'feat_channels', 0)
    key = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long, device=device)
    feat = torch.cat(rows) if rows else torch.zeros(0, D, device=device)
    return key, feat, C


def gather_positive_features_by_class(key: torch.Tensor, feat: torch.Tensor,
                                      C: int, max_rows: Optional[int] = None
                                      ) -> Iterator[Tuple[torch.Tensor,
                                                          torch.Tensor]]:
    """The rows of all ranks, one chunk of classes at a time
    (:func:`~.training_set_pass.gather_in_slot_chunks` with the class as
    slot).

    Yields:
        ``(classes (M_i,) long, feats (M_i, D))``.
    """
    return gather_in_slot_chunks(key, C, feat, max_rows=max_rows)


@HOOKS.register_module()
class CSTPrototypeHook(TrainingSetPassHook):
    """Compute the CST prototypes from the training set on schedule.

    At the start of epochs ``start_epoch``, ``start_epoch + interval``, ...
    (0-based; protocol: 5, 10, 15), the model runs in eval mode over its own
    non-shuffled loader of the training set; the SD features of the known
    positives are gathered over all ranks and clustered per class by
    ``head.cst.update_prototypes_in_chunks`` (seeded k-means), so every rank
    ends with the single-process prototypes. After ``--resume`` the restored
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

    collate_fn = staticmethod(pseudo_collate)

    def __init__(self, start_epoch: int = 5, interval: int = 5,
                 pipeline: Union[str, List[dict]] = 'train',
                 batch_size: Optional[int] = None, num_workers: int = 0,
                 head_attr: str = 'head',
                 max_gather_rows: Optional[int] = 65536) -> None:
        if max_gather_rows is not None and max_gather_rows < 1:
            raise ValueError('CSTPrototypeHook: max_gather_rows must be >= 1 '
                             f'or None, got {max_gather_rows}')
        super().__init__(start_epoch, interval, pipeline, batch_size,
                         num_workers, head_attr)
        self.max_gather_rows = max_gather_rows
        self._last_rows = 0

    def needs_update(self, epoch: int, prototype_epoch: int) -> bool:
        """Whether prototypes computed at ``prototype_epoch`` must be
        recomputed at the start of ``epoch`` (older than the latest
        scheduled epoch)."""
        due = self.scheduled_epoch(epoch)
        return due is not None and prototype_epoch < due

    def before_train_epoch(self, runner) -> None:
        if self.scheduled_epoch(runner.epoch) is None:
            return
        cst = getattr(self.head(runner.model), 'cst', None)
        if cst is None or not self.needs_update(runner.epoch,
                                                int(cst.prototype_epoch)):
            return  # no CST, or restored by resume and valid for this epoch
        self.compute(runner.model, self.build_loader(runner),
                     get_partial_labels(runner.train_dataloader.dataset),
                     runner.epoch, logger=runner.logger)
        runner.logger.info(
            f'CSTPrototypeHook: epoch {runner.epoch}: prototypes from '
            f'{self._last_rows} known positives, '
            f'{int((cst.prototype_count == 0).sum())} classes without one')

    def compute(self, model, loader, partial_labels: np.ndarray, epoch: int,
                logger=None) -> None:
        """Collect the positives' features and run the per-class k-means
        (gathered and clustered one chunk of classes at a time)."""
        key, feat, C = collect_local_positive_features(
            model, loader, partial_labels, self.head_attr, logger)
        self._last_rows = 0

        def chunks():
            for classes, feats in gather_positive_features_by_class(
                    key, feat, C, self.max_gather_rows):
                self._last_rows += int(feats.shape[0])
                yield classes, feats
        self.head(model).cst.update_prototypes_in_chunks(chunks(), epoch)
