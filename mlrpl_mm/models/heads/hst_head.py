"""HST head: semantic trunk + IST + CST (Chen et al., IJCV 2024)."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mlrpl_mm.models.losses.partial_bce_loss import partial_bce_with_logits
from mlrpl_mm.utils import get_train_progress, sample_indices

from .head_utils import build_module, last_feature
from .semantic_trunk_head import SemanticTrunkHead

DEFAULT_LOSS_WEIGHTS = dict(cls=1.0, cls_ist=1.0, cls_cst=1.0,
                            cooccurrence=10.0, margin_ist=0.1,
                            margin_cst=0.1, instance=0.05, prototype=0.05)


@MODELS.register_module()
class HSTHead(SemanticTrunkHead):
    r"""Heterogeneous Semantic Transfer head.

    `Heterogeneous Semantic Transfer for Multi-label Recognition with Partial
    Labels <https://arxiv.org/abs/2205.11131>`_.

    Input: the backbone's last feature map (B, Cin, H, W) (ResNet, ConvNeXt,
    Swin, ViT with ``out_type='featmap'``). :class:`SemanticTrunk` gives the
    class features F (B, C, D) and the classifier logits (B, C);
    ``predict`` returns the classifier scores only. With epoch e and ramp
    :math:`r = \mathrm{iter}/\mathrm{iters\_per\_epoch}` in epoch 0 (1 after):

    - e < ``pseudo_label_epoch`` (5):
      :math:`\mathrm{BCE}(z, y) + 10 r\,\mathcal{L}_{cooc} + 0.05 r\,\mathcal{L}_{inst}`;
    - e >= 5: :math:`\mathrm{BCE}(z, y) + \mathrm{BCE}(z, y_{ist}) +
      \mathrm{BCE}(z, y_{cst}) + 0.1\,\mathrm{BCE}(ist, y) + 10\,\mathcal{L}_{cooc}
      + 0.1\,\mathrm{BCE}(cst, y) + 0.05\,\mathcal{L}_{inst} + 0.05\,\mathcal{L}_{proto}`,

    where BCE is the partial BCE (known entries only),
    :math:`y_{ist}` is y with every unknown entry whose ist score is > 0 set
    to +1 (likewise :math:`y_{cst}`), :math:`\mathcal{L}_{cooc}` the
    asymmetric loss on the IST pair logits, :math:`\mathcal{L}_{inst}` the
    instance contrastive loss and :math:`\mathcal{L}_{proto}` the prototype
    contrastive loss. IST and CST are optional (``ist=None`` / ``cst=None``
    drop their terms: the IST-only / CST-only ablations). Weights are in
    ``loss_weights`` (keys of :data:`DEFAULT_LOSS_WEIGHTS`).

    Besides the loss terms, ``loss()`` returns diagnostics (logged, not
    summed): ``ist_new_pos`` / ``cst_new_pos``, the number of unknown labels
    of the batch turned positive, and ``ist_margin`` / ``cst_margin``, the
    current values of the learnable margins (for the training curves). The last batch's pseudo-positive masks
    and sample indices are kept in :attr:`last_pseudo_labels` for
    ``PseudoLabelPrecisionHook`` (precision against the hidden labels,
    computed outside the model).

    Args:
        num_classes (int): C.
        in_channels (int): Backbone channels Cin. Defaults to 2048.
        trunk (dict, optional): :class:`SemanticTrunk` config (D =
            ``feat_channels`` 1024, I = ``inter_channels`` 512, O =
            ``out_channels`` 1024, ``class_embedding``, ``avg_pool`` (2x2
            average pooling before the reduction, True), ``gnn_steps`` 3,
            ``sd_chunk_size``). Defaults to ``dict(type='SemanticTrunk')``.
        ist (dict, optional): :class:`IntraSemanticTransfer` config
            (``num_classes`` / channels filled in); None disables IST.
        cst (dict, optional): :class:`CrossSemanticTransfer` config; None
            disables CST.
        cooccurrence_loss (dict): Defaults to ``AsymmetricCooccurrenceLoss``.
        instance_loss (dict, optional): Defaults to
            ``InstanceContrastiveLoss``; None disables it.
        prototype_loss (dict): Defaults to ``PrototypeContrastiveLoss`` with
            the reference sign and reduction (``mode='reference'``,
            ``average='all'``).
        loss_weights (dict): Overrides of :data:`DEFAULT_LOSS_WEIGHTS`.
        pseudo_label_epoch (int): First epoch of the pseudo labels (0-based).
            Defaults to 5.
        ramp_epochs (int): Epochs of the linear warm-up ramp of the
            co-occurrence and instance terms. Defaults to 1 (epoch 0).
        **kwargs: ``score_activation`` and the old flat trunk arguments
            (feat_channels, ..., sd_chunk_size), moved into ``trunk``.
    """

    DEFAULT_LOSS_WEIGHTS = DEFAULT_LOSS_WEIGHTS

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 2048,
                 trunk: Union[dict, nn.Module, None] = None,
                 ist: Optional[dict] = dict(type='IntraSemanticTransfer'),
                 cst: Optional[dict] = dict(type='CrossSemanticTransfer'),
                 cooccurrence_loss: dict = dict(type='AsymmetricCooccurrenceLoss'),
                 instance_loss: Optional[dict] = dict(type='InstanceContrastiveLoss'),
                 prototype_loss: dict = dict(type='PrototypeContrastiveLoss',
                                             mode='reference', average='all'),
                 loss_weights: Optional[dict] = None,
                 pseudo_label_epoch: int = 5,
                 ramp_epochs: int = 1,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels,
                         trunk=trunk, loss_weights=loss_weights,
                         ramp_epochs=ramp_epochs, init_cfg=init_cfg, **kwargs)
        t = self.trunk
        self.ist = build_module(ist, num_classes=num_classes,
                                in_channels=t.feat_channels,
                                inter_channels=t.inter_channels,
                                out_channels=t.out_channels)
        self.cst = build_module(cst, num_classes=num_classes,
                                in_channels=t.feat_channels)
        self.cooccurrence_loss = build_module(cooccurrence_loss) \
            if self.ist else None
        self.instance_loss = build_module(instance_loss)
        self.prototype_loss = build_module(prototype_loss) if self.cst else None
        self.pseudo_label_epoch = pseudo_label_epoch
        self.last_pseudo_labels: Dict[str, torch.Tensor] = {}

    def required_hooks(self, max_epochs: Optional[int] = None
                       ) -> Dict[str, str]:
        """``CSTPrototypeHook`` when CST is on and the pseudo-label phase
        (``pseudo_label_epoch``) starts within ``max_epochs`` (recomputed on
        schedule, so restored prototypes do not replace it). The label graph
        is the trunk's requirement. Checked by ``RequiredHooksCheckHook``."""
        if self.cst is None or (max_epochs is not None and
                                self.pseudo_label_epoch >= max_epochs):
            return {}
        return {'CSTPrototypeHook': 'the CST class prototypes (used from '
                f'epoch {self.pseudo_label_epoch}, 0-based)'}

    # -------------------------------------------------------------- loss
    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms of the current phase plus diagnostics (see class doc)."""
        out = self.trunk(last_feature(feats))
        logits, f = out['logits'], out['f']
        y = self.get_targets(data_samples, device=logits.device)
        progress = get_train_progress()
        ramp = self.ramp(progress)
        phase2 = progress.epoch >= self.pseudo_label_epoch
        wt = self.weighted
        losses = dict(loss_cls=wt('cls', partial_bce_with_logits(logits, y)))
        unknown = y == 0
        pseudo = dict(sample_idx=sample_indices(data_samples))
        if self.ist is not None:
            q = self.ist(f)
            losses['loss_cooc'] = wt('cooccurrence', self.cooccurrence_loss(
                q, y, self.ist.pair_i, self.ist.pair_j), ramp)
            if phase2:
                ist = self.ist.pseudo_scores(q, y)
                new = unknown & (ist > 0)
                y_ist = torch.where(new, torch.ones_like(y), y)
                losses['loss_cls_ist'] = wt('cls_ist', partial_bce_with_logits(logits, y_ist))
                losses['loss_margin_ist'] = wt('margin_ist', partial_bce_with_logits(ist, y))
                losses['ist_new_pos'] = new.sum().float().detach()
                losses['ist_margin'] = self.ist.margin.detach().clone()
                pseudo['ist'] = new.detach().cpu()
        if self.instance_loss is not None:
            losses['loss_instance'] = wt('instance', self.instance_loss(f, y), ramp)
        if self.cst is not None and phase2:
            if not self.cst.has_prototypes:
                raise RuntimeError(
                    f'HSTHead: epoch {progress.epoch} needs the CST prototypes '
                    'but none were computed; add dict(type="CSTPrototypeHook") '
                    'to custom_hooks (or set cst=None)')
            sim = self.cst.similarity(f)
            cst = self.cst.pseudo_scores(f, sim=sim)
            new = unknown & (cst > 0)
            y_cst = torch.where(new, torch.ones_like(y), y)
            losses['loss_cls_cst'] = wt('cls_cst', partial_bce_with_logits(logits, y_cst))
            losses['loss_margin_cst'] = wt('margin_cst', partial_bce_with_logits(cst, y))
            losses['loss_prototype'] = wt('prototype', self.prototype_loss(
                sim, y, self.cst.valid_classes))
            losses['cst_new_pos'] = new.sum().float().detach()
            losses['cst_margin'] = self.cst.margin.detach().clone()
            pseudo['cst'] = new.detach().cpu()
        self.last_pseudo_labels = {k: v.cpu() for k, v in pseudo.items()}
        return losses
