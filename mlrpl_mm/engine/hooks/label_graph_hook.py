"""Hook computing the label graph from the known training labels."""
import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mlrpl_mm.datasets import get_partial_labels
from mlrpl_mm.datasets.label_stats import cooccurrence_graph
from mlrpl_mm.utils import unwrap_model


@HOOKS.register_module()
class LabelGraphHook(Hook):
    r"""Set the head's label graph before training.

    :math:`A_{ij} = \#\{y_i = +1, y_j = +1\} / \#\{y_i = +1\}` over the
    partial labels of the whole training set (docs/equations/protocol.md),
    computed by :func:`mlrpl_mm.datasets.cooccurrence_graph` on every rank from
    the full dataset (so it is identical on every rank without communication)
    and written with ``model.head.set_label_graph``; it is stored in the head's
    ``adj`` buffer and so reaches checkpoints. Never uses test or hidden
    labels.

    Args:
        head_attr (str): Attribute of the model holding the head.
            Defaults to ``'head'``.
    """

    priority = 'NORMAL'

    def __init__(self, head_attr: str = 'head') -> None:
        self.head_attr = head_attr

    def compute(self, dataset) -> np.ndarray:
        """The (C, C) graph of a training dataset."""
        return cooccurrence_graph(get_partial_labels(dataset))

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        head = getattr(model, self.head_attr, None)
        if head is None or not hasattr(head, 'set_label_graph'):
            raise AttributeError(
                f'LabelGraphHook: model.{self.head_attr} '
                f'({type(head).__name__}) has no set_label_graph(); use a head '
                'with a label graph (HSTHead, SSGRLHead, ...) or remove the '
                'hook from custom_hooks')
        adj = self.compute(runner.train_dataloader.dataset)
        head.set_label_graph(torch.from_numpy(adj))
        runner.logger.info(
            f'LabelGraphHook: label graph {adj.shape} from '
            f'{len(runner.train_dataloader.dataset)} training images, '
            f'{int((adj.sum(1) == 0).sum())} classes without a known positive')
