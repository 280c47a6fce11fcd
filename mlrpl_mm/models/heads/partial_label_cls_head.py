"""Baseline: global pooling + linear classifier trained on known labels."""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .base_partial_head import BasePartialLabelHead
from .head_utils import last_feature


@MODELS.register_module()
class PartialLabelClsHead(BasePartialLabelHead):
    r"""Linear multi-label head trained with a partial-label loss.

    .. math:: \mathrm{logit} = W \bar{x} + b, \quad
        \bar{x} = \frac{1}{HW}\sum_{h,w} x_{:,h,w}

    Input: the last feature of the backbone/neck, either pooled (B, D) or a
    map (B, D, H, W) (global average pooled here). Output logits (B, C).
    Loss: ``loss`` (default :class:`PartialBCELoss`, i.e. BCE averaged over
    the known entries only), called as ``loss(logits, target,
    sample_idx=...)`` so that losses with per-sample state (``EMAPLLoss``,
    ``ROLELoss``) work on this head too.

    Args:
        num_classes (int): Number of classes C.
        in_channels (int): Feature channels D.
        loss (dict): Loss config. Defaults to ``dict(type='PartialBCELoss')``.
        init_cfg (dict): Defaults to a normal init of the linear layer.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 loss: Dict = dict(type='PartialBCELoss'),
                 init_cfg: Dict = dict(type='Normal', layer='Linear', std=0.01),
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, init_cfg=init_cfg, **kwargs)
        self.in_channels = in_channels
        self.fc = nn.Linear(in_channels, num_classes)
        self.loss_module = loss if isinstance(loss, nn.Module) \
            else MODELS.build(loss)

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """(B, D) pooled feature of the last stage: what ``fc`` consumes
        (``ImageClassifier.extract_feat(inputs, stage='pre_logits')``); a
        (B, D, H, W) map is averaged over H, W."""
        x = last_feature(feats)
        if x.dim() == 4:
            x = x.mean(dim=(2, 3))
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'{type(self).__name__}: expected {self.in_channels} input '
                f'channels, got a feature of shape {tuple(x.shape)}; set '
                'in_channels to the backbone/neck output channels.')
        return x

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Logits (B, C)."""
        return self.fc(self.pre_logits(feats))

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        logits = self(feats)
        target = self.get_targets(data_samples, device=logits.device)
        idx = self.get_sample_indices(data_samples, device=logits.device)
        return dict(loss=self.loss_module(logits, target, sample_idx=idx))
