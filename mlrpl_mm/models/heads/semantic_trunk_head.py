"""Common base of the heads on the semantic trunk (SSGRL, HST, DSRB)."""
import copy
import logging
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mlrpl_mm.utils import TrainProgress, linear_ramp

from .base_partial_head import BasePartialLabelHead
from .head_utils import build_module, last_feature

#: :class:`SemanticTrunk` arguments the heads still accept flat (the old
#: ``HSTHead`` / ``SSGRLHead`` signature); they are moved into ``trunk``
TRUNK_KEYS = ('feat_channels', 'inter_channels', 'out_channels',
              'class_embedding', 'avg_pool', 'gnn_steps', 'sd_chunk_size')


def merge_trunk_cfg(trunk: Union[dict, nn.Module, None], flat: dict,
                    who: str) -> Union[dict, nn.Module]:
    """The trunk config: ``trunk`` with the old flat arguments moved in.

    Args:
        trunk (dict | nn.Module | None): The nested ``trunk=dict(...)``
            (None: ``dict(type='SemanticTrunk')``).
        flat (dict): Flat trunk arguments (keys of :data:`TRUNK_KEYS`).
        who (str): Head name for the messages.

    A key given both ways takes its flat value: the repository's base
    configs are nested, so a flat key comes from an older child config (or
    ``--cfg-options model.head.<key>=...``) written for the flat signature,
    which overrides its base. The override is logged.

    Raises:
        TypeError: a flat key that is no trunk argument.
        ValueError: flat keys next to an already built trunk module.
    """
    unknown = sorted(set(flat) - set(TRUNK_KEYS))
    if unknown:
        raise TypeError(f'{who}.__init__() got unexpected keyword arguments '
                        f'{unknown}')
    if trunk is None:
        trunk = dict(type='SemanticTrunk')
    if not flat:
        return trunk
    if isinstance(trunk, nn.Module):
        raise ValueError(f'{who}: trunk is a built module; the flat trunk '
                         f'arguments {sorted(flat)} cannot apply to it')
    cfg = copy.deepcopy(dict(trunk))
    both = sorted(k for k in set(flat) & set(cfg) if flat[k] != cfg[k])
    if both:
        print_log(
            f'{who}: the flat argument(s) {both} (old signature, '
            'model.head.<key>) override the same keys of trunk=dict(...) '
            f'({ {k: cfg[k] for k in both} } -> { {k: flat[k] for k in both} }); '
            'the canonical place is model.head.trunk.<key>',
            logger='current', level=logging.INFO)
    cfg.update(flat)
    return cfg


class SemanticTrunkHead(BasePartialLabelHead):
    r"""Base of the heads on :class:`~mlrpl_mm.models.layers.SemanticTrunk`.

    On the last backbone map X (B, Cin, H, W) the trunk gives the reduced map
    x (B, D, H', W'), the attention :math:`\alpha` (B, N, C) and the class
    features F (B, C, D) (:meth:`semantic_features`), then
    :math:`o_c = \tanh(W_o [h_c; f_c] + b_o)` (B, C, O) with h the gated-GNN
    output (:meth:`pre_logits`) and the element-wise classifier
    :math:`z_c = \langle u_c, o_c\rangle + e_c` (B, C) (:meth:`forward`).

    Conventions shared by the family:

    - ``trunk=dict(type='SemanticTrunk', ...)`` (``num_classes`` and
      ``in_channels`` filled in); the old flat arguments
      (:data:`TRUNK_KEYS`) are moved into it, a key given both ways takes
      its flat value (an older child config over today's nested base);
    - ``loss_weights``: one weight per loss term, keyed by the term's name
      (``loss_<name>``; HST's ``cooccurrence`` weighs ``loss_cooc``), with
      the defaults in :attr:`DEFAULT_LOSS_WEIGHTS`; a loss module's own
      ``loss_weight`` (default 1) multiplies it;
    - the warm-up ramp :math:`\rho` = :func:`~mlrpl_mm.utils.linear_ramp`
      over ``ramp_epochs`` epochs (:meth:`ramp`), applied by
      :meth:`weighted`.

    Args:
        num_classes (int): C.
        in_channels (int): Cin. Defaults to 2048.
        trunk (dict | nn.Module, optional): :class:`SemanticTrunk` config.
            Defaults to ``dict(type='SemanticTrunk')``.
        loss_weights (dict, optional): Overrides of
            :attr:`DEFAULT_LOSS_WEIGHTS`.
        ramp_epochs (int): E of the warm-up ramp. Defaults to 1.
        score_activation (str): See :class:`BasePartialLabelHead`.
        init_cfg (dict, optional): Initialisation config.
        **flat_trunk: Old flat trunk arguments (:data:`TRUNK_KEYS`).
    """

    #: loss-term name -> default weight (subclasses set their terms)
    DEFAULT_LOSS_WEIGHTS: Dict[str, float] = dict(cls=1.0)
    #: ramped terms: False -> (w * rho) * L (HST), True -> rho * (w * L)
    #: (DSRB); the same value up to rounding, kept so that every loss keeps
    #: its exact bits
    ramp_after_weight: bool = False

    def __init__(self, num_classes: int, in_channels: int = 2048,
                 trunk: Union[dict, nn.Module, None] = None,
                 loss_weights: Optional[Dict[str, float]] = None,
                 ramp_epochs: int = 1, score_activation: str = 'sigmoid',
                 init_cfg: Optional[dict] = None, **flat_trunk) -> None:
        super().__init__(num_classes=num_classes,
                         score_activation=score_activation, init_cfg=init_cfg)
        who = type(self).__name__
        self.in_channels = in_channels
        self.trunk = build_module(merge_trunk_cfg(trunk, flat_trunk, who),
                                  num_classes=num_classes,
                                  in_channels=in_channels)
        if self.trunk.num_classes != num_classes:
            raise ValueError(f'{who}: trunk num_classes='
                             f'{self.trunk.num_classes} != head num_classes='
                             f'{num_classes}')
        unknown = set(loss_weights or {}) - set(self.DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f'{who}: unknown loss_weights keys '
                             f'{sorted(unknown)}; valid: '
                             f'{sorted(self.DEFAULT_LOSS_WEIGHTS)}')
        self.loss_weights = dict(self.DEFAULT_LOSS_WEIGHTS,
                                 **(loss_weights or {}))
        self.ramp_epochs = ramp_epochs

    # ------------------------------------------------------------------ trunk
    def set_label_graph(self, adj: torch.Tensor) -> None:
        """Set the (C, C) label graph of the gated GNN (``LabelGraphHook``)."""
        self.trunk.set_label_graph(adj)

    def semantic_features(self, feats: Tuple[torch.Tensor]
                          ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(f, attn, x)``: class features f (B, C, D), attention
        (B, N, C) and the reduced map x (B, D, H', W')."""
        x = self.trunk.reduce(last_feature(feats))
        f, attn = self.trunk.decouple(x)
        return f, attn, x

    def class_features(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Class features F (B, C, D) (``CSTPrototypeHook``)."""
        return self.semantic_features(feats)[0]

    def pre_logits(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """o (B, C, O), what the element-wise classifier consumes
        (``ImageClassifier.extract_feat(inputs, stage='pre_logits')``)."""
        return self.trunk.pre_logits(self.semantic_features(feats)[0])

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Classifier logits (B, C)."""
        return self.trunk.classifier(self.pre_logits(feats))

    # ------------------------------------------------------------------- loss
    def ramp(self, progress: TrainProgress) -> float:
        r""":math:`\rho` = :func:`~mlrpl_mm.utils.linear_ramp` over
        ``ramp_epochs``."""
        return linear_ramp(progress, self.ramp_epochs)

    def weighted(self, name: str, loss: torch.Tensor,
                 ramp: float = 1.0) -> torch.Tensor:
        r"""Term ``name``: :math:`w_{name}\,\rho\,L`, w from ``loss_weights``.

        Evaluated as :math:`(w \rho) L`, or :math:`\rho (w L)` when
        :attr:`ramp_after_weight`; :math:`w L` when :math:`\rho = 1`.
        """
        w = self.loss_weights[name]
        if ramp == 1.0:
            return w * loss
        if self.ramp_after_weight:
            return ramp * (w * loss)
        return w * ramp * loss
