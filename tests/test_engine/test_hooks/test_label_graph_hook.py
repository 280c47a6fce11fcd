from types import SimpleNamespace

import numpy as np
import pytest
import torch

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import cooccurrence_graph
from mmpretrain.registry import HOOKS, MODELS


class _DS:
    def __init__(self, labels):
        self.partial_labels = labels

    def __len__(self):
        return len(self.partial_labels)


class _Wrapper:  # e.g. a dataset wrapper without partial_labels of its own
    def __init__(self, ds):
        self.dataset = ds

    def __len__(self):
        return len(self.dataset)


def _runner(model, ds):
    import logging
    return SimpleNamespace(model=model, train_dataloader=SimpleNamespace(dataset=ds),
                           logger=logging.getLogger('test'))


def test_label_graph_hook_sets_buffer_through_ddp_like_wrapper():
    labels = np.array([[1, 1, 0], [1, -1, 0], [0, 1, -1]], dtype=np.int8)
    trunk = MODELS.build(dict(type='SemanticTrunk', num_classes=3, in_channels=4,
                              feat_channels=4, inter_channels=2, out_channels=2))
    model = SimpleNamespace(module=SimpleNamespace(head=trunk))
    hook = HOOKS.build(dict(type='LabelGraphHook'))
    hook.before_train(_runner(model, _Wrapper(_DS(labels))))
    expected = np.array([[1, .5, 0], [.5, 1, 0], [0, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(trunk.adj.numpy(), expected)
    np.testing.assert_allclose(trunk.adj.numpy(), cooccurrence_graph(labels))


def test_label_graph_hook_clear_error_without_setter():
    hook = HOOKS.build(dict(type='LabelGraphHook'))
    model = SimpleNamespace(head=torch.nn.Linear(2, 2))
    with pytest.raises(AttributeError, match='set_label_graph'):
        hook.before_train(_runner(model, _DS(np.zeros((2, 2)))))
