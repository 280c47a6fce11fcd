"""APLHook: whole-training-set prediction pass and EM+APL label update."""
import logging

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401


class ToyDataset(torch.utils.data.Dataset):
    """N samples; partial labels with one known positive per row."""

    def __init__(self, partial):
        self.partial_labels = np.asarray(partial, np.int8)

    def __len__(self):
        return len(self.partial_labels)

    def __getitem__(self, i):
        return dict(sample_idx=i)


class ToyModel(nn.Module):
    """pred_score = a fixed (N, C) table row, in eval mode only."""

    def __init__(self, table):
        super().__init__()
        self.table = table
        self.loss = MODELS.build(dict(type='EMAPLLoss', warmup_epoch=2,
                                      neg_proportion=1.0))
        self.calls = 0

    def val_step(self, data):
        assert not self.training
        self.calls += 1
        out = []
        for i in data['sample_idx']:
            ds = DataSample(metainfo=dict(sample_idx=int(i)))
            ds.set_pred_score(self.table[int(i)])
            out.append(ds)
        return out


class FakeRunner:
    build_dataloader = staticmethod(Runner.build_dataloader)

    def __init__(self, model, dataset, max_epochs):
        self.model = model
        self.train_dataloader = type('L', (), dict(dataset=dataset))()
        self.cfg = ConfigDict(train_dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True)))
        self.seed = 0
        self.epoch = 0
        self.max_epochs = max_epochs
        self.logger = logging.getLogger('apl-test')


def test_apl_hook_updates_after_warmup():
    partial = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]
    table = torch.tensor([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3], [0.5, 0.6, 0.7],
                          [0.8, 0.05, 0.35], [0.3, 0.9, 0.1]])
    model = ToyModel(table).train()
    runner = FakeRunner(model, ToyDataset(partial), max_epochs=4)
    hook = HOOKS.build(dict(type='APLHook'))
    hook.before_train(runner)
    assert model.loss.pseudo_mask.shape == (5, 3)
    runner.epoch = 0                       # epoch 1 < warm-up 2: no pass
    hook.after_train_epoch(runner)
    assert model.calls == 0 and not model.loss.pseudo_mask.any()
    runner.epoch = 1                       # epoch 2: update
    hook.after_train_epoch(runner)
    assert model.calls > 0 and model.training
    # per class int(1.0 * U_c / (4 - 2)) lowest unknown entries, U = 3, 3, 4
    mask = model.loss.pseudo_mask
    assert mask.sum(0).tolist() == [1, 1, 2]
    assert mask[1, 0] and mask[3, 1] and mask[4, 2] and mask[1, 2]
    assert model.loss.pseudo_soft[3, 1].item() == pytest.approx(0.05)
    runner.epoch = 2
    hook.after_train_epoch(runner)
    assert model.loss.pseudo_mask.sum().item() == 8
    # known positives are never pseudo-labelled
    known = torch.tensor(partial) != 0
    assert not (model.loss.pseudo_mask & known).any()
