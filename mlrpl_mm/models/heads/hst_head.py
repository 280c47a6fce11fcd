"""HST head: semantic trunk + IST + CST (Chen et al., IJCV 2024)."""
import copy
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mlrpl_mm.models.layers.semantic_trunk import SemanticTrunk
from mlrpl_mm.models.losses.partial_bce_loss import partial_bce_with_logits
from mlrpl_mm.utils import get_train_progress, sample_indices

from .base_partial_head import BasePartialLabelHead

DEFAULT_LOSS_WEIGHTS = dict(cls=1.0, cls_ist=1.0, cls_cst=1.0,
                            cooccurrence=10.0, margin_ist=0.1,
                            margin_cst=0.1, instance=0.05, prototype=0.05)


def _build(cfg: Union[dict, nn.Module, None], **defaults):
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    for k, v in defaults.items():
        cfg.setdefault(k, v)
    return MODELS.build(cfg)


def _feature_map(feats) -> torch.Tensor:
    return feats[-1] if isinstance(feats, (tuple, list)) else feats


@MODELS.register_module()
class HSTHead(BasePartialLabelHead):
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
        feat_channels (int): D. Defaults to 1024.
        inter_channels (int): I. Defaults to 512.
        out_channels (int): O. Defaults to 1024.
        class_embedding (dict): Class-embedding source of the trunk.
        avg_pool (bool): 2x2 average pooling before the reduction.
            Defaults to True.
        gnn_steps (int): Defaults to 3.
        sd_chunk_size (int, optional): Class chunk of the decoupling.
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
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 2048,
                 feat_channels: int = 1024,
                 inter_channels: int = 512,
                 out_channels: int = 1024,
                 class_embedding: dict = dict(type='LearnableClassEmbedding',
                                              embed_dims=300),
                 avg_pool: bool = True,
                 gnn_steps: int = 3,
                 sd_chunk_size: Optional[int] = None,
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
        super().__init__(num_classes=num_classes, init_cfg=init_cfg, **kwargs)
        self.trunk = SemanticTrunk(
            num_classes, in_channels=in_channels, feat_channels=feat_channels,
            inter_channels=inter_channels, out_channels=out_channels,
            class_embedding=class_embedding, avg_pool=avg_pool,
            gnn_steps=gnn_steps, sd_chunk_size=sd_chunk_size)
        self.ist = _build(ist, num_classes=num_classes,
                          in_channels=feat_channels,
                          inter_channels=inter_channels,
                          out_channels=out_channels)
        self.cst = _build(cst, num_classes=num_classes,
                          in_channels=feat_channels)
        self.cooccurrence_loss = _build(cooccurrence_loss) if self.ist else None
        self.instance_loss = _build(instance_loss)
        self.prototype_loss = _build(prototype_loss) if self.cst else None
        unknown = set(loss_weights or {}) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f'HSTHead: unknown loss_weights keys {sorted(unknown)}; '
                             f'valid: {sorted(DEFAULT_LOSS_WEIGHTS)}')
        self.loss_weights = dict(DEFAULT_LOSS_WEIGHTS, **(loss_weights or {}))
        self.pseudo_label_epoch = pseudo_label_epoch
        self.ramp_epochs = ramp_epochs
        self.last_pseudo_labels: Dict[str, torch.Tensor] = {}

    # -------------------------------------------------------------- trunk
    def set_label_graph(self, adj: torch.Tensor) -> None:
        """Set the (C, C) label graph of the gated GNN."""
        self.trunk.set_label_graph(adj)

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

    def class_features(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """SD class features F (B, C, D) (used by ``CSTPrototypeHook``)."""
        return self.trunk.decouple(self.trunk.reduce(_feature_map(feats)))[0]

    def forward(self, feats: Tuple[torch.Tensor]) -> torch.Tensor:
        """Classifier logits (B, C)."""
        return self.trunk(_feature_map(feats))['logits']

    # -------------------------------------------------------------- loss
    def _ramp(self, progress) -> float:
        if progress.epoch >= self.ramp_epochs:
            return 1.0
        return (progress.epoch + progress.epoch_fraction) / self.ramp_epochs

    def loss(self, feats: Tuple[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms of the current phase plus diagnostics (see class doc)."""
        out = self.trunk(_feature_map(feats))
        logits, f = out['logits'], out['f']
        y = self.get_targets(data_samples, device=logits.device)
        progress = get_train_progress()
        ramp = self._ramp(progress)
        phase2 = progress.epoch >= self.pseudo_label_epoch
        w = self.loss_weights
        losses = dict(loss_cls=w['cls'] * partial_bce_with_logits(logits, y))
        unknown = y == 0
        pseudo = dict(sample_idx=sample_indices(data_samples))
        if self.ist is not None:
            q = self.ist(f)
            losses['loss_cooc'] = w['cooccurrence'] * ramp * self.cooccurrence_loss(
                q, y, self.ist.pair_i, self.ist.pair_j)
            if phase2:
                ist = self.ist.pseudo_scores(q, y)
                new = unknown & (ist > 0)
                y_ist = torch.where(new, torch.ones_like(y), y)
                losses['loss_cls_ist'] = w['cls_ist'] * partial_bce_with_logits(logits, y_ist)
                losses['loss_margin_ist'] = w['margin_ist'] * partial_bce_with_logits(ist, y)
                losses['ist_new_pos'] = new.sum().float().detach()
                losses['ist_margin'] = self.ist.margin.detach().clone()
                pseudo['ist'] = new.detach().cpu()
        if self.instance_loss is not None:
            losses['loss_instance'] = w['instance'] * ramp * self.instance_loss(f, y)
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
            losses['loss_cls_cst'] = w['cls_cst'] * partial_bce_with_logits(logits, y_cst)
            losses['loss_margin_cst'] = w['margin_cst'] * partial_bce_with_logits(cst, y)
            losses['loss_prototype'] = w['prototype'] * self.prototype_loss(
                sim, y, self.cst.valid_classes)
            losses['cst_new_pos'] = new.sum().float().detach()
            losses['cst_margin'] = self.cst.margin.detach().clone()
            pseudo['cst'] = new.detach().cpu()
        self.last_pseudo_labels = {k: v.cpu() for k, v in pseudo.items()}
        return losses
