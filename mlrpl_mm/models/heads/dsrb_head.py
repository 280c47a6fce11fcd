"""DSRB head: semantic trunk + IPRB + PPRB + instance contrastive loss."""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mlrpl_mm.utils import get_train_progress

from .base_partial_head import BasePartialLabelHead


def _build(cfg: Union[dict, nn.Module, None], **defaults) -> Optional[nn.Module]:
    """Build a module from a config, filling in missing ``defaults``."""
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    for k, v in defaults.items():
        cfg.setdefault(k, v)
    return MODELS.build(cfg)


@MODELS.register_module()
class DSRBHead(BasePartialLabelHead):
    r"""Dual-perspective Semantic-aware Representation Blending head.

    Pu et al., "Dual-Perspective Semantic-Aware Representation Blending for
    Multi-Label Image Recognition with Partial Labels", Expert Systems with
    Applications 2024; journal version of SARB (AAAI 2022). Spec: dsrb.md.

    On the last backbone map :math:`X` (B, Cin, H, W) the shared
    :class:`~mlrpl_mm.models.layers.SemanticTrunk` gives the reduced map
    :math:`x` (B, D, H', W'), the attention :math:`\alpha` (B, N, C) and the
    pooled class features :math:`f_{bc} = \sum_n \alpha_{n,c} x_{b,n}`
    (B, C, D); ``classify`` (gated GNN + tanh layer + element-wise
    classifier) gives the logits. The training loss is

    .. math::
        \mathcal{L} = \mathrm{BCE}(\ell, y)
            + \lambda_c\, \rho\, \mathcal{L}_{inst}(f, y)
            + [e \ge e_0]\,\big(w_i\, \mathrm{BCE}(\ell^{I}, \tilde y^{I})
            + w_p\, \mathrm{BCE}(\ell^{P}, \tilde y^{P})\big)

    with BCE the partial BCE over known entries (soft targets on blended
    entries), :math:`\mathcal{L}_{inst}` the instance contrastive loss
    (:math:`\lambda_c` = 0.05 is its ``loss_weight``), :math:`\rho` the ramp
    ``inner_iter / iters_per_epoch`` during the first ``contrastive_ramp_epochs``
    epochs (1 after), :math:`e` the epoch (from
    :func:`~mlrpl_mm.utils.get_train_progress`), :math:`e_0` =
    ``blend_start_epoch`` (5), and :math:`\ell^{I}, \ell^{P}` the logits of the
    IPRB / PPRB blended features (:class:`~mlrpl_mm.models.layers.IPRB`,
    :class:`~mlrpl_mm.models.layers.PPRB`). The PPRB quadrants use the energy
    map :math:`e_{b,n,c} = \alpha_{b,n,c} \sum_d x_{b,n,d}` (B, N, C), which
    equals :math:`\sum_d F_{b,n,c,d}` of the literal (B, N, C, D)
    formulation; nothing of that size is built. With ``batch_branches`` the
    plain, IPRB and PPRB features go through the gated GNN and the classifier
    as one (3B, C, D) batch (exact: these layers act per sample); with
    ``skip_unblended`` a blended branch only carries its images that have a
    blended entry (the others' blended logits are the plain ones).

    Inference (:meth:`predict`) uses the plain classifier scores.

    Args:
        num_classes (int): C.
        in_channels (int): Channels of the backbone's last map. Defaults to
            2048.
        trunk (dict): :class:`SemanticTrunk` config; ``num_classes`` and
            ``in_channels`` are filled in.
        iprb (dict, optional): IPRB config, None to disable.
            Defaults to ``dict(type='IPRB')``.
        pprb (dict, optional): PPRB config (``num_classes`` / ``in_channels``
            filled in), None to disable. Defaults to
            ``dict(type='PPRB', top_k=1)``.
        loss (dict): Classification loss. Defaults to ``PartialBCELoss``.
        contrastive_loss (dict, optional): Instance contrastive loss, None to
            disable. Defaults to ``InstanceContrastiveLoss`` with weight 0.05.
        contrastive_ramp_epochs (int): Epochs of the linear ramp of the
            contrastive loss (0 = none). Defaults to 1 (epoch 0).
        iprb_weight (float): w_i. Defaults to 1.0.
        pprb_weight (float): w_p. Defaults to 1.0.
        blend_start_epoch (int): e_0, first (0-based) blending epoch.
            Defaults to 5.
        batch_branches (bool): Classify the three branches as one batch.
            Defaults to True.
        skip_unblended (bool): Classify only the images of a blended branch
            that have at least one blended entry; the others reuse the plain
            logits (their blended features are the plain ones, so this is
            exact). Defaults to True.
        pprb_seed (int, optional): Seed of a private generator for the PPRB
            draws; None uses torch's global generator. Defaults to None.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 2048,
                 trunk: dict = dict(type='SemanticTrunk'),
                 iprb: Optional[dict] = dict(type='IPRB'),
                 pprb: Optional[dict] = dict(type='PPRB', top_k=1),
                 loss: dict = dict(type='PartialBCELoss'),
                 contrastive_loss: Optional[dict] = dict(
                     type='InstanceContrastiveLoss', loss_weight=0.05),
                 contrastive_ramp_epochs: int = 1,
                 iprb_weight: float = 1.0,
                 pprb_weight: float = 1.0,
                 blend_start_epoch: int = 5,
                 batch_branches: bool = True,
                 skip_unblended: bool = True,
                 pprb_seed: Optional[int] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, init_cfg=init_cfg, **kwargs)
        if contrastive_ramp_epochs < 0 or blend_start_epoch < 0:
            raise ValueError('DSRBHead: contrastive_ramp_epochs and '
                             'blend_start_epoch must be >= 0, got '
                             f'{contrastive_ramp_epochs}, {blend_start_epoch}')
        self.in_channels = in_channels
        self.trunk = _build(trunk, num_classes=num_classes,
                            in_channels=in_channels)
        if self.trunk.num_classes != num_classes:
            raise ValueError(f'DSRBHead: trunk num_classes={self.trunk.num_classes} '
                             f'!= head num_classes={num_classes}')
        feat_channels = self.trunk.feat_channels
        self.iprb = _build(iprb)
        self.pprb = _build(pprb, num_classes=num_classes,
                           in_channels=feat_channels)
        self.loss_module = _build(loss)
        self.contrastive_loss = _build(contrastive_loss)
        self.contrastive_ramp_epochs = contrastive_ramp_epochs
        self.iprb_weight = iprb_weight
        self.pprb_weight = pprb_weight
        self.blend_start_epoch = blend_start_epoch
        self.batch_branches = batch_branches
        self.skip_unblended = skip_unblended
        self.generator = None
        if pprb_seed is not None:
            self.generator = torch.Generator()
            self.generator.manual_seed(int(pprb_seed))

    # ------------------------------------------------------------------ trunk
    def set_label_graph(self, adj: torch.Tensor) -> None:
        """Set the (C, C) label graph of the trunk (``LabelGraphHook``)."""
        self.trunk.set_label_graph(adj)

    def required_hooks(self, max_epochs: Optional[int] = None
                       ) -> Dict[str, str]:
        """Hooks of the blending phase when it starts within ``max_epochs``:
        ``PPRBPrototypeHook`` (PPRB on) and ``BlendWeightClampHook`` (a
        learnable alpha / beta). The label graph is the trunk's requirement.
        Checked by ``RequiredHooksCheckHook``."""
        if max_epochs is not None and self.blend_start_epoch >= max_epochs:
            return {}
        need = {}
        if self.pprb is not None:
            need['PPRBPrototypeHook'] = (
                'the PPRB prototypes (used from epoch '
                f'{self.blend_start_epoch}, 0-based)')
        learnable = [n for n, m in (('alpha', self.iprb), ('beta', self.pprb))
                     if m is not None and
                     isinstance(getattr(m, n, None), nn.Parameter)]
        if learnable:
            need['BlendWeightClampHook'] = (
                f'the [0, 1] clamp of the learnable {" / ".join(learnable)} '
                'after each optimizer step')
        return need

    @staticmethod
    def _last(feats) -> torch.Tensor:
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def class_features(self, feats: Tuple[torch.Tensor]
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                  Tuple[int, int]]:
        r"""Pooled class features and the energy map.

        Returns:
            ``(f, attn, energy, (H, W))``: f (B, C, D), attn (B, N, C),
            energy :math:`e_{b,n,c} = \alpha_{b,n,c} \sum_d x_{b,n,d}`
            (B, N, C), and the size of the reduced map.
        """
        x = self.trunk.reduce(self._last(feats))  # (B, D, H, W)
        f, attn = self.trunk.decouple(x)
        energy = attn * x.flatten(2).sum(1).unsqueeze(-1)
        return f, attn, energy, (x.shape[2], x.shape[3])

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Plain classifier logits (B, C)."""
        f, _, _, _ = self.class_features(feats)
        return self.trunk.classify(f)

    # ------------------------------------------------------------------- loss
    def _classify_branches(self, branches: List[torch.Tensor],
                           masks: List[Optional[torch.Tensor]]
                           ) -> List[torch.Tensor]:
        """Logits of every branch (B, C).

        ``branches[0]`` is the plain (B, C, D) branch; ``masks[i]`` (B, C)
        bool marks the blended entries of branch i (None: the plain branch).
        With ``skip_unblended`` only the images with a blended entry of a
        blended branch go through the GNN and the classifier; the rows of
        the other images are the plain logits (identical inputs, so identical
        values, and the gradient reaches the same parameters).
        """
        rows = [None] * len(branches)
        inputs = list(branches)
        if self.skip_unblended:
            for i, m in enumerate(masks):
                if m is not None:
                    rows[i] = m.any(1).nonzero(as_tuple=True)[0]
                    inputs[i] = branches[i][rows[i]]
        if self.batch_branches and len(inputs) > 1:
            outs = list(self.trunk.classify(torch.cat(inputs, 0)).split(
                [b.shape[0] for b in inputs], 0))
        else:
            outs = [self.trunk.classify(b) if b.shape[0] else b.new_zeros(
                0, b.shape[1]) for b in inputs]
        plain = outs[0]
        for i, r in enumerate(rows):
            if r is not None:
                outs[i] = plain.index_put((r, ), outs[i])
        return outs

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms (see the class docstring) and diagnostics.

        Returns:
            dict with ``loss_cls``, ``loss_contrastive`` (if enabled) and, in
            the blending phase, ``loss_iprb`` / ``loss_pprb`` (if enabled),
            plus detached diagnostics ``iprb_alpha``, ``pprb_beta`` and the
            mean number of blended entries per image.
        """
        f, _, energy, hw = self.class_features(feats)
        target = self.get_targets(data_samples, device=f.device)
        progress = get_train_progress()
        blending = progress.epoch >= self.blend_start_epoch
        branches, soft_targets, names, masks = [f], [target], ['cls'], [None]
        out: Dict[str, torch.Tensor] = {}
        if blending and self.iprb is not None:
            f_i, y_i, m_i = self.iprb(f, target)
            branches.append(f_i)
            masks.append(m_i)
            soft_targets.append(y_i)
            names.append('iprb')
            out['iprb_alpha'] = self.iprb.alpha.detach().clone()
            out['iprb_blended'] = m_i.float().sum(1).mean().detach()
        if blending and self.pprb is not None:
            f_p, y_p, m_p, _ = self.pprb(f, energy, target, hw,
                                         generator=self.generator)
            branches.append(f_p)
            masks.append(m_p)
            soft_targets.append(y_p)
            names.append('pprb')
            out['pprb_beta'] = self.pprb.beta.detach().clone()
            out['pprb_blended'] = m_p.float().sum(1).mean().detach()
        logits = self._classify_branches(branches, masks)
        weights = dict(cls=1.0, iprb=self.iprb_weight, pprb=self.pprb_weight)
        for name, lg, tg in zip(names, logits, soft_targets):
            out[f'loss_{name}'] = weights[name] * self.loss_module(lg, tg)
        if self.contrastive_loss is not None:
            ramp = 1.0
            if progress.epoch < self.contrastive_ramp_epochs:
                ramp = (progress.epoch + progress.epoch_fraction) / \
                    self.contrastive_ramp_epochs
            out['loss_contrastive'] = ramp * self.contrastive_loss(f, target)
        return out

    def predict(self, feats: Tuple[torch.Tensor],
                data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """Classifier scores (sigmoid of the plain logits), ``pred_score``."""
        return super().predict(feats, data_samples)
