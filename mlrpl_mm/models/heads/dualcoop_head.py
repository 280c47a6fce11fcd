"""DualCoOp head: dual prompts + class-specific region feature aggregation."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .base_partial_head import BasePartialLabelHead


def region_aggregation(regions: torch.Tensor, text: torch.Tensor,
                       tau: float) -> torch.Tensor:
    r"""Class-specific region feature aggregation (DualCoOp).

    With L2-normalised region features :math:`f_{bl}` and text features
    :math:`t_c`, :math:`s_{bcl} = \langle f_{bl}, t_c \rangle` and

    .. math:: a_{bc} = \sum_l \mathrm{softmax}_l(s_{bcl} / \tau)\, s_{bcl}

    Args:
        regions: (B, L, D), unit rows.
        text: (C, D), unit rows.
        tau: Temperature of the spatial softmax.

    Returns:
        (B, C).
    """
    sim = torch.einsum('bld,cd->bcl', regions, text.to(regions.dtype))
    weight = torch.softmax(sim / tau, dim=-1)
    return (weight * sim).sum(-1)


@MODELS.register_module()
class DualCoOpHead(BasePartialLabelHead):
    r"""DualCoOp: positive / negative prompts and region aggregation.

    `DualCoOp: Fast Adaptation to Multi-Label Recognition with Limited
    Annotations <https://arxiv.org/abs/2206.09541>`_ (Sun, Hu, Saenko,
    NeurIPS 2022).

    Input ``feats`` from :class:`OpenCLIPBackbone`: ``(P, g)`` with region
    features P (B, L, D) (CLIP ResNet: the attention pool's value + output
    projections at every location; ViT: the projected patch tokens); g is
    not used. With the prompt features :math:`t^\pm_c` of
    :class:`DualPromptLearner` and :math:`f_{bl} = P_{bl} / \|P_{bl}\|`:

    .. math::
        \ell^\pm_{bc} = \lambda \sum_l \mathrm{softmax}_l
            (\langle f_{bl}, t^\pm_c\rangle / \tau)\,
            \langle f_{bl}, t^\pm_c\rangle, \qquad
        p_{bc} = \frac{e^{\ell^+_{bc}}}{e^{\ell^+_{bc}} + e^{\ell^-_{bc}}}
            = \sigma(\ell^+_{bc} - \ell^-_{bc})

    (:math:`\tau` = ``tau``, :math:`\lambda` = ``logit_scale``, by default
    CLIP's learned :math:`e^{s}`, 100 for the OpenAI weights). ``forward``
    returns the logit :math:`x = \ell^+ - \ell^-` (B, C), so p = sigmoid(x)
    (``predict``) and the loss is the ASL of :math:`p` over the known
    labels (``PartialAsymmetricLoss`` on x).

    Args:
        num_classes (int): C.
        prompt_learner (dict): :class:`DualPromptLearner` config (its
            ``num_classes`` and ``class_names`` are filled in from here).
        class_names (list[str], optional): Class names; None: from the
            dataset (``PromptClassNamesHook``) or the checkpoint.
        tau (float): Spatial softmax temperature. Defaults to 0.02.
        logit_scale (float, optional): :math:`\lambda`; None (default):
            CLIP's learned temperature, exp(logit_scale) of the text tower's
            weights (frozen).
        loss (dict): Loss on x. Defaults to ASL with gamma_pos=1,
            gamma_neg=2, clip=0.05, summed over the known entries.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 prompt_learner: Dict = dict(type='DualPromptLearner'),
                 class_names: Optional[Sequence[str]] = None,
                 tau: float = 0.02,
                 logit_scale: Optional[float] = None,
                 loss: Dict = dict(type='PartialAsymmetricLoss',
                                   gamma_pos=1.0, gamma_neg=2.0, clip=0.05,
                                   reduction='sum'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(num_classes=num_classes, score_activation='sigmoid',
                         init_cfg=init_cfg)
        if tau <= 0:
            raise ValueError(f'DualCoOpHead: tau must be positive, got {tau}')
        if logit_scale is not None and logit_scale <= 0:
            raise ValueError('DualCoOpHead: logit_scale must be positive or '
                             f'None, got {logit_scale}')
        cfg = dict(prompt_learner)
        cfg['num_classes'] = num_classes
        if class_names is not None:
            cfg['class_names'] = list(class_names)
        self.prompt_learner = MODELS.build(cfg)
        self.tau = float(tau)
        self.fixed_logit_scale = logit_scale
        self.loss_module = MODELS.build(loss)

    # -------------------------------------------- class names (hook / infer)
    @property
    def has_class_names(self) -> bool:
        return self.prompt_learner.has_class_names

    # the names MultiLabelInferencer looks for
    @property
    def _has_train_classes(self) -> bool:
        return self.has_class_names

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Tokenise the prompts of these C class names."""
        self.prompt_learner.set_class_names(class_names)

    set_train_classes = set_class_names

    # ------------------------------------------------------------------
    @property
    def logit_scale(self) -> torch.Tensor:
        if self.fixed_logit_scale is not None:
            return torch.tensor(float(self.fixed_logit_scale))
        return self.prompt_learner.text.logit_scale.exp()

    def _regions(self, feats) -> torch.Tensor:
        if isinstance(feats, (tuple, list)):
            if len(feats) < 2:
                raise ValueError('DualCoOpHead expects (region tokens, '
                                 'global) features from OpenCLIPBackbone')
            feats = feats[-2]
        if feats.dim() != 3:
            raise ValueError('DualCoOpHead: region features must be (B, L, '
                             f'D), got {tuple(feats.shape)}')
        d = self.prompt_learner.embed_dims
        if feats.shape[-1] != d:
            raise ValueError(
                f'DualCoOpHead: region features are {feats.shape[-1]}-d but '
                f'the text tower gives {d}-d features; use the same open_clip '
                'model for backbone and prompt_learner.text_encoder')
        return F.normalize(feats.float(), dim=-1)

    def pre_logits(self, feats) -> torch.Tensor:
        r"""The region features the logits are computed from,
        :math:`f_{bl} = P_{bl} / \|P_{bl}\|`, (B, L, D) float32
        (``model.extract_feat(inputs, stage='pre_logits')``)."""
        return self._regions(feats)

    def pair_logits(self, feats) -> Tuple[torch.Tensor, torch.Tensor]:
        """(l_pos (B, C), l_neg (B, C)), scaled by ``logit_scale``."""
        regions = self.pre_logits(feats)
        t_pos, t_neg = self.prompt_learner()
        scale = self.logit_scale.to(regions.device)
        return (scale * region_aggregation(regions, t_pos, self.tau),
                scale * region_aggregation(regions, t_neg, self.tau))

    def forward(self, feats) -> torch.Tensor:
        """x = l_pos - l_neg (B, C); sigmoid(x) = softmax over the pair."""
        pos, neg = self.pair_logits(feats)
        return pos - neg

    def loss(self, feats, data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """``loss_cls``: the partial-label loss (ASL over known entries)."""
        logits = self(feats)
        target = self.get_targets(data_samples, device=logits.device)
        return dict(loss_cls=self.loss_module(logits, target))
