"""SSGRL baseline head: the semantic trunk trained with partial BCE."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .head_utils import build_module
from .semantic_trunk_head import SemanticTrunkHead


@MODELS.register_module()
class SSGRLHead(SemanticTrunkHead):
    r"""Semantic-specific graph representation learning (Chen et al., ICCV
    2019) as the MLR-PL baseline: :class:`SemanticTrunk` (decoupling + gated
    GNN + element-wise classifier) trained with the partial BCE
    :math:`w_{cls}\,\mathrm{BCE}(z, y)` over the known labels only
    (logged as ``loss_cls``).

    Args:
        num_classes (int): C.
        in_channels (int): Backbone channels. Defaults to 2048.
        trunk (dict, optional): :class:`SemanticTrunk` config. Defaults to
            ``dict(type='SemanticTrunk')``.
        loss (dict): Defaults to ``PartialBCELoss``.
        loss_weights (dict, optional): ``cls`` (1.0).
        score_activation (str): Defaults to ``'sigmoid'``.
        init_cfg (dict, optional): Initialisation config.
        **kwargs: Old flat trunk arguments (feat_channels, inter_channels,
            out_channels, class_embedding, avg_pool, gnn_steps,
            sd_chunk_size), moved into ``trunk``.
    """

    DEFAULT_LOSS_WEIGHTS = dict(cls=1.0)

    def __init__(self, num_classes: int, in_channels: int = 2048,
                 trunk: Union[dict, nn.Module, None] = None,
                 loss: dict = dict(type='PartialBCELoss'),
                 loss_weights: Optional[dict] = None,
                 score_activation: str = 'sigmoid',
                 init_cfg: Optional[dict] = None, **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         trunk=trunk, loss_weights=loss_weights,
                         score_activation=score_activation, init_cfg=init_cfg,
                         **kwargs)
        self.loss_module = build_module(loss)

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """``loss_cls`` (see the class docstring)."""
        logits = self(feats)
        target = self.get_targets(data_samples, device=logits.device)
        return dict(loss_cls=self.weighted('cls',
                                           self.loss_module(logits, target)))
