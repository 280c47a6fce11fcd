"""DSRB head: semantic trunk + IPRB + PPRB + instance contrastive loss."""
import copy
import logging
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mlrpl_mm.utils import get_train_progress, seeded_generator

from .head_utils import build_module
from .semantic_trunk_head import SemanticTrunkHead

DEFAULT_INSTANCE_LOSS = dict(type='InstanceContrastiveLoss')


def _log_override(old: str, old_value, new: str, new_value) -> None:
    print_log(f'DSRBHead: the old argument {old}={old_value!r} overrides '
              f'{new}={new_value!r} (the new name is {new})',
              logger='current', level=logging.INFO)


def legacy_dsrb_kwargs(kwargs: dict, instance_loss: Optional[dict],
                       loss_weights: Optional[dict],
                       ramp_epochs: Optional[int]
                       ) -> Tuple[Optional[dict], dict, int]:
    """Map the old DSRBHead arguments (popped from ``kwargs``) to the family
    convention.

    - ``contrastive_loss`` -> ``instance_loss``; its ``loss_weight`` (the
      only weight of the term then, default 1) -> ``loss_weights['instance']``
      (the loss module is built with weight 1: the same numbers);
    - ``contrastive_ramp_epochs`` -> ``ramp_epochs``;
    - ``iprb_weight`` / ``pprb_weight`` -> ``loss_weights['iprb' / 'pprb']``.

    An old name given next to its new one wins: the repository's base
    configs use the new names, so an old name comes from an older child
    config (or ``--cfg-options``) that overrides its base. The override is
    logged.

    Returns:
        ``(instance_loss, loss_weights, ramp_epochs)``.
    """
    weights = dict(loss_weights or {})
    legacy = {}
    for old, key in (('iprb_weight', 'iprb'), ('pprb_weight', 'pprb')):
        if old in kwargs:
            legacy[key] = (old, kwargs.pop(old))
    if 'contrastive_loss' in kwargs:
        old = kwargs.pop('contrastive_loss')
        if instance_loss != DEFAULT_INSTANCE_LOSS:
            _log_override('contrastive_loss', old, 'instance_loss',
                          instance_loss)
        instance_loss = old
        if isinstance(old, dict):
            instance_loss = copy.deepcopy(dict(old))
            legacy['instance'] = ('contrastive_loss.loss_weight',
                                  instance_loss.pop('loss_weight', 1.0))
        elif old is not None:  # a built module keeps its own weight
            legacy['instance'] = ('contrastive_loss', 1.0)
    for key, (old, value) in legacy.items():
        if key in weights and weights[key] != value:
            _log_override(old, value, f'loss_weights[{key!r}]', weights[key])
        weights[key] = value
    if 'contrastive_ramp_epochs' in kwargs:
        old = kwargs.pop('contrastive_ramp_epochs')
        if ramp_epochs is not None and ramp_epochs != old:
            _log_override('contrastive_ramp_epochs', old, 'ramp_epochs',
                          ramp_epochs)
        ramp_epochs = old
    return instance_loss, weights, 1 if ramp_epochs is None else ramp_epochs


@MODELS.register_module()
class DSRBHead(SemanticTrunkHead):
    r"""Dual-perspective Semantic-aware Representation Blending head.

    Pu et al., "Dual-Perspective Semantic-Aware Representation Blending for
    Multi-Label Image Recognition with Partial Labels", Expert Systems with
    Applications 2024; journal version of SARB (AAAI 2022). Spec:
    docs/equations/dsrb.md.

    On the last backbone map :math:`X` (B, Cin, H, W) the shared
    :class:`~mlrpl_mm.models.layers.SemanticTrunk` gives the reduced map
    :math:`x` (B, D, H', W'), the attention :math:`\alpha` (B, N, C) and the
    pooled class features :math:`f_{bc} = \sum_n \alpha_{n,c} x_{b,n}`
    (B, C, D); ``classify`` (gated GNN + tanh layer + element-wise
    classifier) gives the logits. The training loss is

    .. math::
        \mathcal{L} = w_{cls}\,\mathrm{BCE}(\ell, y)
            + \rho\, \lambda_c\, \mathcal{L}_{inst}(f, y)
            + [e \ge e_0]\,\big(w_i\, \mathrm{BCE}(\ell^{I}, \tilde y^{I})
            + w_p\, \mathrm{BCE}(\ell^{P}, \tilde y^{P})\big)

    with BCE the partial BCE over known entries (soft targets on blended
    entries), :math:`\mathcal{L}_{inst}` the instance contrastive loss
    (:math:`\lambda_c` = ``loss_weights['instance']`` = 0.05; logged as
    ``loss_instance``), :math:`\rho` the ramp
    :func:`~mlrpl_mm.utils.linear_ramp` over the first ``ramp_epochs``
    epochs (applied after the weight, :attr:`ramp_after_weight`), :math:`e` the epoch (from
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
        trunk (dict, optional): :class:`SemanticTrunk` config; ``num_classes``
            and ``in_channels`` are filled in. Defaults to
            ``dict(type='SemanticTrunk')``.
        iprb (dict, optional): IPRB config, None to disable.
            Defaults to ``dict(type='IPRB')``.
        pprb (dict, optional): PPRB config (``num_classes`` / ``in_channels``
            filled in), None to disable. Defaults to
            ``dict(type='PPRB', top_k=1)``.
        loss (dict): Classification loss. Defaults to ``PartialBCELoss``.
        instance_loss (dict, optional): Instance contrastive loss, None to
            disable. Defaults to ``InstanceContrastiveLoss``.
        loss_weights (dict, optional): Overrides of
            :attr:`DEFAULT_LOSS_WEIGHTS`: ``cls`` (1.0), ``iprb`` (w_i, 1.0),
            ``pprb`` (w_p, 1.0), ``instance`` (:math:`\lambda_c`, 0.05).
        ramp_epochs (int): Epochs of the linear ramp of the instance term
            (0 = none). Defaults to 1 (epoch 0).
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
        **kwargs: ``score_activation``, the old flat trunk arguments (moved
            into ``trunk``) and the old names (:func:`legacy_dsrb_kwargs`):
            ``contrastive_loss`` (its ``loss_weight`` becomes
            ``loss_weights['instance']``), ``contrastive_ramp_epochs``,
            ``iprb_weight``, ``pprb_weight``.
    """

    DEFAULT_LOSS_WEIGHTS = dict(cls=1.0, iprb=1.0, pprb=1.0, instance=0.05)
    ramp_after_weight = True

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 2048,
                 trunk: Union[dict, nn.Module, None] = None,
                 iprb: Optional[dict] = dict(type='IPRB'),
                 pprb: Optional[dict] = dict(type='PPRB', top_k=1),
                 loss: dict = dict(type='PartialBCELoss'),
                 instance_loss: Optional[dict] = DEFAULT_INSTANCE_LOSS,
                 loss_weights: Optional[dict] = None,
                 ramp_epochs: Optional[int] = None,
                 blend_start_epoch: int = 5,
                 batch_branches: bool = True,
                 skip_unblended: bool = True,
                 pprb_seed: Optional[int] = None,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        instance_loss, loss_weights, ramp_epochs = legacy_dsrb_kwargs(
            kwargs, instance_loss, loss_weights, ramp_epochs)
        if ramp_epochs < 0 or blend_start_epoch < 0:
            raise ValueError('DSRBHead: ramp_epochs (contrastive_ramp_epochs) '
                             'and blend_start_epoch must be >= 0, got '
                             f'{ramp_epochs}, {blend_start_epoch}')
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         trunk=trunk, loss_weights=loss_weights,
                         ramp_epochs=ramp_epochs, init_cfg=init_cfg, **kwargs)
        self.iprb = build_module(iprb)
        self.pprb = build_module(pprb, num_classes=num_classes,
                                 in_channels=self.trunk.feat_channels)
        self.loss_module = build_module(loss)
        self.instance_loss = build_module(instance_loss)
        self.blend_start_epoch = blend_start_epoch
        self.batch_branches = batch_branches
        self.skip_unblended = skip_unblended
        self.generator = seeded_generator(pprb_seed)

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

    def class_features(self, feats: Tuple[torch.Tensor]
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                  Tuple[int, int]]:
        r"""Pooled class features and the energy map.

        Returns:
            ``(f, attn, energy, (H, W))``: f (B, C, D), attn (B, N, C),
            energy :math:`e_{b,n,c} = \alpha_{b,n,c} \sum_d x_{b,n,d}`
            (B, N, C), and the size of the reduced map.
        """
        f, attn, x = self.semantic_features(feats)  # x (B, D, H, W)
        energy = attn * x.flatten(2).sum(1).unsqueeze(-1)
        return f, attn, energy, (x.shape[2], x.shape[3])

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
            dict with ``loss_cls``, ``loss_instance`` (if enabled) and, in
            the blending phase, ``loss_iprb`` / ``loss_pprb`` (if enabled),
            plus detached diagnostics ``iprb_alpha``, ``pprb_beta`` and the
            mean number of blended entries per image.
        """
        f, _, energy, hw = self.class_features(feats)
        target = self.get_targets(data_samples, device=f.device)
        progress = get_train_progress()
        blending = progress.epoch >= self.blend_start_epoch
        blends = []  # (name, blend weight name, (features, targets, mask))
        if blending and self.iprb is not None:
            blends.append(('iprb', 'alpha', self.iprb(f, target)))
        if blending and self.pprb is not None:
            blends.append(('pprb', 'beta', self.pprb(
                f, energy, target, hw, generator=self.generator)[:3]))
        branches, soft_targets, names, masks = [f], [target], ['cls'], [None]
        out: Dict[str, torch.Tensor] = {}
        for name, weight, (f_b, y_b, m_b) in blends:
            branches.append(f_b)
            masks.append(m_b)
            soft_targets.append(y_b)
            names.append(name)
            out[f'{name}_{weight}'] = getattr(getattr(self, name),
                                              weight).detach().clone()
            out[f'{name}_blended'] = m_b.float().sum(1).mean().detach()
        logits = self._classify_branches(branches, masks)
        for name, lg, tg in zip(names, logits, soft_targets):
            out[f'loss_{name}'] = self.weighted(name, self.loss_module(lg, tg))
        if self.instance_loss is not None:
            out['loss_instance'] = self.weighted(
                'instance', self.instance_loss(f, target), self.ramp(progress))
        return out
