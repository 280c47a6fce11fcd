"""Asymmetric pseudo-labelling (APL) label updates for :class:`EMAPLLoss`."""
import copy
from typing import List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mlrpl_mm.utils import gather_by_index, sample_indices, unwrap_model


def _apl_losses(model) -> List:
    from mlrpl_mm.models.losses import EMAPLLoss
    model = unwrap_model(model)
    return [m for m in model.modules() if isinstance(m, EMAPLLoss)]


@HOOKS.register_module()
class APLHook(Hook):
    """Run the APL label update of every :class:`EMAPLLoss` in the model.

    ``before_train``: sizes the losses' per-sample state for the training set
    (N, C) (a state restored by ``--resume`` is kept). ``after_train_epoch``
    (0-based epoch e with e + 1 >= ``warmup_epoch``, as the reference):
    predicts every training image with the model in eval mode over a
    non-shuffled loader of the training set, all-gathers the predictions by
    ``sample_idx`` (identical on every rank) and calls
    :meth:`EMAPLLoss.update_pseudo_labels` with the dataset's partial labels.
    It runs before the checkpoint hook, so checkpoints hold the new labels.

    The loader uses the training dataset as configured, i.e. the training
    pipeline, like the reference (which predicts augmented training images);
    pass ``dataset`` (a config) to predict with another pipeline.

    Args:
        dataset (dict, optional): Dataset config for the prediction pass
            (same images in the same order). Defaults to None: the training
            dataset object.
        batch_size (int, optional): Batch size of the pass. Defaults to the
            training batch size.
        scores_are_probabilities (bool): The head's ``pred_score`` is already
            a probability (``score_activation='sigmoid'``); otherwise a
            sigmoid is applied. Defaults to True.
    """

    priority = 'NORMAL'

    def __init__(self, dataset: Optional[dict] = None,
                 batch_size: Optional[int] = None,
                 scores_are_probabilities: bool = True) -> None:
        self.dataset_cfg = dataset
        self.batch_size = batch_size
        self.scores_are_probabilities = scores_are_probabilities
        self._loader = None

    def _targets(self, runner) -> np.ndarray:
        from mlrpl_mm.datasets import get_partial_labels
        return np.asarray(get_partial_labels(runner.train_dataloader.dataset))

    def before_train(self, runner) -> None:
        losses = _apl_losses(runner.model)
        if not losses:
            return
        n, c = self._targets(runner).shape
        for loss in losses:
            loss.init_state(n, c)

    def _build_loader(self, runner):
        if self._loader is None:
            cfg = copy.deepcopy(runner.cfg.train_dataloader)
            cfg.pop('batch_sampler', None)
            cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
            cfg['dataset'] = self.dataset_cfg if self.dataset_cfg is not None \
                else runner.train_dataloader.dataset
            if self.batch_size is not None:
                cfg['batch_size'] = self.batch_size
            cfg['persistent_workers'] = False
            self._loader = runner.build_dataloader(cfg, seed=runner.seed)
        return self._loader

    @torch.no_grad()
    def predict_training_set(self, runner) -> torch.Tensor:
        """(N, C) probabilities of every training image, in sample order."""
        model = runner.model
        was_training = model.training
        model.eval()
        idx, probs = [], []
        try:
            for data in self._build_loader(runner):
                outs = model.val_step(data)
                idx.append(sample_indices(outs))
                probs.append(torch.stack([o.pred_score.float().cpu()
                                          for o in outs]))
        finally:
            model.train(was_training)
        index, scores = gather_by_index(torch.cat(idx), torch.cat(probs))
        if not self.scores_are_probabilities:
            scores = torch.sigmoid(scores)
        n = self._targets(runner).shape[0]
        if index.numel() != n or not torch.equal(index, torch.arange(n)):
            raise RuntimeError(
                f'APLHook: predicted {index.numel()} distinct training '
                f'samples but the training set has {n}; the prediction '
                'loader must cover the same samples with the same '
                'sample_idx')
        return scores

    def after_train_epoch(self, runner) -> None:
        losses = _apl_losses(runner.model)
        epoch, max_epochs = runner.epoch, runner.max_epochs
        losses = [l for l in losses if epoch + 1 >= l.warmup_epoch]
        if not losses:
            return
        probs = self.predict_training_set(runner)
        target = torch.from_numpy(self._targets(runner).astype(np.int64))
        for loss in losses:
            added = loss.update_pseudo_labels(probs, target, epoch, max_epochs)
            runner.logger.info(
                f'APL: epoch {epoch + 1}: {added} new pseudo-negatives, '
                f'{int(loss.pseudo_mask.sum())} in total')
