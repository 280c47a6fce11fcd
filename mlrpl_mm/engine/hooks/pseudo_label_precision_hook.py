"""Logs the precision of HST's pseudo labels against the hidden labels."""
from typing import Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mlrpl_mm.utils import unwrap_model


def _hidden_labels(dataset) -> Optional[np.ndarray]:
    ds = dataset
    while ds is not None:
        labels = getattr(ds, 'hidden_full_labels', None)
        if labels is not None:
            return np.asarray(labels)
        ds = getattr(ds, 'dataset', None)
    return None


@HOOKS.register_module()
class PseudoLabelPrecisionHook(Hook):
    """Precision of the unknown labels turned positive by IST / CST.

    After every training iteration it reads the head's
    ``last_pseudo_labels`` (``sample_idx`` and the (B, C) masks ``ist`` /
    ``cst`` of unknown entries made positive) and compares them with the
    dataset's ``hidden_full_labels`` (never seen by the model). Running
    epoch totals are logged as ``train/{ist,cst}_precision`` and
    ``train/{ist,cst}_pseudo_pos``, and summarised at the end of each epoch.
    Does nothing when the dataset has no hidden labels.
    """

    priority = 'LOW'

    def __init__(self, head_attr: str = 'head') -> None:
        self.head_attr = head_attr
        self._stats: Dict[str, list] = {}

    def before_train_epoch(self, runner) -> None:
        self._stats = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        hidden = _hidden_labels(runner.train_dataloader.dataset)
        head = getattr(unwrap_model(runner.model), self.head_attr, None)
        pseudo = getattr(head, 'last_pseudo_labels', None)
        if hidden is None or not pseudo:
            return
        idx = pseudo['sample_idx'].numpy()
        full = torch.from_numpy(hidden[idx])
        for name in ('ist', 'cst'):
            mask = pseudo.get(name)
            if mask is None:
                continue
            tp = int((mask & (full == 1)).sum())
            n = int(mask.sum())
            st = self._stats.setdefault(name, [0, 0])
            st[0] += tp
            st[1] += n
            runner.message_hub.update_scalar(f'train/{name}_pseudo_pos', n)
            if st[1] > 0:
                runner.message_hub.update_scalar(f'train/{name}_precision',
                                                 st[0] / st[1])

    def after_train_epoch(self, runner) -> None:
        for name, (tp, n) in self._stats.items():
            prec = f'{100.0 * tp / n:.2f}%' if n else 'n/a'
            runner.logger.info(f'{name.upper()} pseudo labels this epoch: '
                               f'{n} positives, precision {prec} vs hidden labels')
