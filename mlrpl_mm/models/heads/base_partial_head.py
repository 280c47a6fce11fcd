"""Common behaviour of the partial-label heads."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmpretrain.structures import DataSample

from mlrpl_mm.utils import sample_indices, stack_field


class BasePartialLabelHead(BaseModule):
    """Base class: reads ``partial_label`` targets and writes predictions.

    Subclasses implement :meth:`forward` (logits, (B, C)) and :meth:`loss`.
    Targets come from each sample's ``partial_label`` field
    (+1 known positive, -1 known negative, 0 unknown), packed by
    ``PackInputs(algorithm_keys=['partial_label', ...])``.

    ``predict`` writes ``pred_score`` (C,) and, for sigmoid scores,
    ``pred_label``: the classes with a score ``>= pred_thr`` (0.5; a class
    attribute, e.g. ``head.pred_thr = 0.3``), which mmpretrain's
    ``VisualizationHook`` (``tools/test.py --show-dir``) draws. The metrics
    read ``pred_score`` only.

    Args:
        num_classes (int): Number of classes C.
        score_activation (str): ``'sigmoid'`` (probabilities) or ``'none'``
            (raw scores) for :meth:`predict`. Defaults to ``'sigmoid'``.
        init_cfg (dict, optional): Initialisation config.
    """

    #: score threshold of ``pred_label`` (sigmoid scores only)
    pred_thr: float = 0.5

    def __init__(self, num_classes: int, score_activation: str = 'sigmoid',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        if score_activation not in ('sigmoid', 'none'):
            raise ValueError("score_activation must be 'sigmoid' or 'none', "
                             f'got {score_activation!r}')
        self.num_classes = num_classes
        self.score_activation = score_activation

    def get_targets(self, data_samples: Sequence[DataSample],
                    device: Optional[torch.device] = None) -> torch.Tensor:
        """Partial labels of a batch, (B, C) float in {+1, -1, 0}.

        Raises:
            ValueError: when the dataset's class count differs from the head's.
        """
        target = stack_field(data_samples, 'partial_label', device=device)
        if target.shape[1] != self.num_classes:
            raise ValueError(
                f'class-count mismatch: the dataset gives {target.shape[1]} '
                f'classes per partial_label but {type(self).__name__} has '
                f'num_classes={self.num_classes}; set the head\'s num_classes '
                'to the dataset\'s class count.')
        return target

    @staticmethod
    def get_sample_indices(data_samples: Sequence[DataSample],
                           device: Optional[torch.device] = None
                           ) -> Optional[torch.Tensor]:
        """``sample_idx`` of every sample, (B,) long, or None when a sample
        has none (e.g. a hand-built batch). Losses with per-sample state
        (:class:`EMAPLLoss`, :class:`ROLELoss`) index it with these."""
        if not all('sample_idx' in ds for ds in data_samples):
            return None
        return sample_indices(data_samples, device=device)

    def predict(self, feats: Tuple[torch.Tensor],
                data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Scores of every class; ``pred_score`` (C,) per sample."""
        logits = self(feats)
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        scores = torch.sigmoid(logits) if self.score_activation == 'sigmoid' \
            else logits
        scores = scores.detach()
        out = []
        if data_samples is None:
            data_samples = [None] * scores.shape[0]
        for s, ds in zip(scores, data_samples):
            out.append(self.set_prediction(DataSample() if ds is None else ds,
                                           s))
        return out

    def set_prediction(self, data_sample: DataSample,
                       score: torch.Tensor) -> DataSample:
        """``pred_score`` = score (C,); ``pred_label`` = indices with
        score >= :attr:`pred_thr` when the scores are sigmoid
        probabilities (raw scores have no fixed threshold: none set)."""
        data_sample.set_pred_score(score)
        if self.score_activation == 'sigmoid':
            data_sample.set_pred_label(
                torch.nonzero(score >= self.pred_thr).flatten())
        return data_sample
