"""SigRL head: GMC + SVFR + local/global scores over CLIP label embeddings.

The label set (training / eval embeddings, GMC graph) lives in
:mod:`.sigrl_label_set`; the label embeddings come from
:mod:`mlrpl_mm.models.utils.clip_text`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

# importable from here as before
from mlrpl_mm.models.utils.clip_text import (  # noqa: F401
    build_label_embed, load_embedding_file)
from .base_partial_head import BasePartialLabelHead
from .sigrl_label_set import SigRLLabelSetMixin


@MODELS.register_module()
class SigRLHead(SigRLLabelSetMixin, BasePartialLabelHead):
    r"""Semantic-guided representation learning head.

    `Semantic-guided Representation Learning for Multi-Label Recognition
    <https://arxiv.org/abs/2504.03801>`_ (ICME 2025).

    Input ``feats`` from :class:`OpenCLIPBackbone`: ``(P, g)`` or, with a
    teacher in training, ``(g_teacher, P, g)``; P (B, L, D) patch tokens,
    g (B, D) global feature. With label embeddings E (C, D):
    :math:`\hat H = \mathrm{GMC}(E)`, :math:`\hat P = \mathrm{SVFR}(P, E,
    \hat H)` and

    .. math::
        \mathrm{local}_{bc} = \frac1k \mathrm{top}k_l \langle \hat P_{bl},
        E_c\rangle, \quad \mathrm{global}_{bc} = \langle g_b, E_c \rangle,
        \quad s_b = \tau\,\frac12\Big(\frac{\mathrm{local}_b}
        {\|\mathrm{local}_b\|_2} + \frac{\mathrm{global}_b}
        {\|\mathrm{global}_b\|_2}\Big)

    (norms across the C classes of each image; k = ``topk`` capped at L;
    :math:`\tau` = ``logit_scale``, 1 in the reference). ``predict`` returns
    sigmoid(s) (SPML) or s (``score_activation='none'``, zero-shot).

    The label set is swappable without retraining: every parameter is
    shared across classes. ``test_class_names`` (or
    ``test_label_embed_file``) replaces the training classes in eval mode,
    e.g. the unseen classes of a zero-shot split; with
    ``zsl_class_indices`` (indices into the test classes) ``predict`` also
    stores ``zsl_pred_score``, the scores computed over that subset alone
    (ZSL), next to ``pred_score`` over all test classes (GZSL).

    Args:
        class_names (list[str], optional): Training class names.
        label_embed_file (str, optional): (C, D) ``.npy``/``.pt`` instead of
            the text tower.
        text_encoder (dict, optional): open_clip text tower, see
            :func:`build_label_embed`. Defaults to ViT-B-16, random init,
            template "There is a {} in the scene".
        test_class_names (list[str], optional): Classes used in eval mode.
        test_label_embed_file (str, optional): Their embeddings from a file.
        zsl_class_indices (list[int], optional): Subset of the test classes
            scored separately (``zsl_pred_score``).
        num_classes (int, optional): If given, must equal the number of
            training classes (a config check). Without class names or file,
            the classes come later from :meth:`set_train_classes` (e.g. by
            :class:`SigRLLabelSetHook` from the dataset's metainfo).
        embed_dims (int): D. Defaults to 512.
        topk (int): k of the local score. Defaults to 16.
        logit_scale (float): :math:`\tau`. Defaults to 1.0.
        adjacency (str | array, optional): (C, C) label graph for GMC on the
            training classes (``.npy`` path or array); None = complete graph
            (the reference). Also settable by ``LabelGraphHook`` (the
            co-occurrence graph of the known training labels) through
            :meth:`set_label_graph`. Not used for another test label set.
        gmc (dict): GMC config. Defaults to ``dict(type='SigRLGMC')``.
        svfr (dict): SVFR config. Defaults to ``dict(type='SigRLSVFR')``.
        loss (dict): Classification loss on the scores (partial labels).
            Defaults to ``dict(type='EMLoss', alpha=0.2)``.
        distill_loss (dict, optional): Loss between g and the teacher's g
            (e.g. ``dict(type='L1DistillLoss')``); needs a backbone with
            ``with_teacher=True``.
        score_activation (str): ``'sigmoid'`` or ``'none'``.
        drop_no_positive (bool): In training, leave out the images of the
            batch without any known positive (``partial_label`` +1) before
            the scores and the losses, as the SigRL zero-shot reference does
            before its forward pass (``configs/sigrl_nus_zsl.py`` sets it):
            the losses are then means over the kept images only. Defaults
            to False (every image counts). See :meth:`loss`.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 class_names: Optional[Sequence[str]] = None,
                 label_embed_file: Optional[str] = None,
                 text_encoder: Optional[Dict] = None,
                 test_class_names: Optional[Sequence[str]] = None,
                 test_label_embed_file: Optional[str] = None,
                 zsl_class_indices: Optional[Sequence[int]] = None,
                 num_classes: Optional[int] = None,
                 embed_dims: int = 512,
                 topk: int = 16,
                 logit_scale: float = 1.0,
                 adjacency: Optional[Union[str, np.ndarray]] = None,
                 gmc: Dict = dict(type='SigRLGMC'),
                 svfr: Dict = dict(type='SigRLSVFR'),
                 loss: Dict = dict(type='EMLoss', alpha=0.2),
                 distill_loss: Optional[Dict] = None,
                 score_activation: str = 'sigmoid',
                 drop_no_positive: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        self.drop_no_positive = bool(drop_no_positive)
        self._has_train_classes = class_names is not None or \
            label_embed_file is not None
        if self._has_train_classes:
            train_embed = build_label_embed(class_names, label_embed_file,
                                            text_encoder)
            if num_classes is not None and num_classes != train_embed.shape[0]:
                raise ValueError(f'SigRLHead: num_classes={num_classes} but '
                                 f'{train_embed.shape[0]} training classes')
        elif num_classes is None:
            raise ValueError('SigRLHead: give class_names, label_embed_file '
                             'or num_classes (classes then set from the '
                             'dataset by SigRLLabelSetHook)')
        else:
            train_embed = torch.zeros(num_classes, embed_dims)
        super().__init__(num_classes=train_embed.shape[0],
                         score_activation=score_activation, init_cfg=init_cfg)
        self.text_encoder = dict(text_encoder or {})
        if train_embed.shape[1] != embed_dims:
            raise ValueError(f'SigRLHead: label embeddings are '
                             f'{train_embed.shape[1]}-d but embed_dims='
                             f'{embed_dims}; match the text tower to the '
                             'image tower')
        if topk <= 0:
            raise ValueError(f'topk must be positive, got {topk}')
        self.embed_dims = embed_dims
        self.topk = topk
        self.logit_scale = logit_scale
        self._init_label_set(train_embed, class_names, test_class_names,
                             test_label_embed_file, text_encoder,
                             zsl_class_indices, adjacency)
        self.gmc = MODELS.build(gmc)
        self.svfr = MODELS.build(svfr)
        self.loss_module = MODELS.build(loss)
        self.distill_loss = MODELS.build(distill_loss) \
            if distill_loss else None

    def _split_feats(self, feats: Tuple[torch.Tensor, ...]):
        if not isinstance(feats, (tuple, list)) or len(feats) < 2:
            raise ValueError('SigRLHead expects (patch tokens, global) '
                             'features from OpenCLIPBackbone')
        tokens, glob = feats[-2], feats[-1]
        if tokens.dim() != 3 or glob.dim() != 2:
            raise ValueError(f'SigRLHead: expected P (B, L, D) and g (B, D), '
                             f'got {tuple(tokens.shape)} and '
                             f'{tuple(glob.shape)}')
        teacher = feats[-3] if len(feats) >= 3 else None
        return tokens, glob, teacher

    def reconstruct(self, tokens: torch.Tensor, label_embed: torch.Tensor,
                    adjacency: Optional[torch.Tensor] = None
                    ) -> torch.Tensor:
        r""":math:`\hat P = \mathrm{SVFR}(P, E, \mathrm{GMC}(E))`, (B, L, D)
        for P (B, L, D) and E (C, D)."""
        label_embed = label_embed.to(tokens.dtype)
        graph = self.gmc(label_embed, adjacency)
        return self.svfr(tokens, label_embed, graph)

    def pre_logits(self, feats: Tuple[torch.Tensor, ...]
                   ) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""The features the scores are computed from, over the current
        label set (``model.extract_feat(inputs, stage='pre_logits')``).

        Returns:
            (:math:`\hat P` (B, L, D), the reconstructed patch tokens of
            :meth:`reconstruct`, g (B, D), the global feature); the scores
            are :meth:`score_features` of them and E.
        """
        tokens, glob, _ = self._split_feats(feats)
        emb, adj = self.current_embed()
        return self.reconstruct(tokens, emb, adj), glob

    def scores(self, tokens: torch.Tensor, glob: torch.Tensor,
               label_embed: torch.Tensor,
               adjacency: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores s (B, C) for label embeddings E (C, D)."""
        label_embed = label_embed.to(tokens.dtype)
        rec = self.reconstruct(tokens, label_embed, adjacency)
        return self.score_features(rec, glob, label_embed)

    def score_features(self, rec: torch.Tensor, glob: torch.Tensor,
                       label_embed: torch.Tensor) -> torch.Tensor:
        r"""Scores s (B, C) of :math:`\hat P` (B, L, D) and g (B, D) for
        label embeddings E (C, D) (in the dtype of P): the normalised top-k
        local and global terms of the class docstring."""
        sim = torch.einsum('bld,cd->bcl', rec, label_embed)      # (B, C, L)
        k = min(self.topk, sim.shape[-1])
        local = sim.topk(k, dim=-1).values.mean(-1)                  # (B, C)
        glob_s = glob @ label_embed.t()                              # (B, C)
        local = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        glob_s = glob_s / glob_s.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.logit_scale * (local + glob_s) / 2

    def forward(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Scores (B, C) over the current label set."""
        tokens, glob, _ = self._split_feats(feats)
        emb, adj = self.current_embed()
        return self.scores(tokens, glob, emb, adj)

    def loss(self, feats: Tuple[torch.Tensor, ...],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms: ``loss_cls`` (partial-label loss on the scores) and,
        with ``distill_loss``, ``loss_distill``.

        With ``drop_no_positive``, the images without a known positive are
        removed from P, g, the teacher's g, the targets and the sample
        indices before anything else: every loss is the one of the batch of
        the kept images, exactly the reference's (it drops them before its
        forward pass; the image tower, SVFR and the scores are per image, so
        only the tower's compute for the dropped images differs). A batch
        in which no image has a positive gives losses 0 (connected to the
        graph, so DDP and the optimizer step run on every rank; the
        reference skips such a batch: with AdamW the moments and the weight
        decay still move here). The number kept is logged as
        ``kept_images``.
        """
        tokens, glob, teacher = self._split_feats(feats)
        self._check_train_classes()
        target = self.get_targets(data_samples, device=glob.device)
        idx = self.get_sample_indices(data_samples, device=glob.device)
        empty = None
        if self.drop_no_positive:
            keep = (target > 0).any(1)
            if not bool(keep.any()):
                empty = keep
            elif not bool(keep.all()):
                tokens, glob, target = tokens[keep], glob[keep], target[keep]
                teacher = None if teacher is None else teacher[keep]
                idx = None if idx is None else idx[keep]
        score = self.scores(tokens, glob, self.train_embed, self._graph())
        if empty is not None:  # nothing to learn from: zero, with a graph
            zero = score.sum() * 0.0 + glob.sum() * 0.0
            losses = dict(loss_cls=zero)
            if self.distill_loss is not None:
                losses['loss_distill'] = zero.clone()
            losses['kept_images'] = torch.zeros((), device=glob.device)
            return losses
        losses = dict(loss_cls=self.loss_module(score, target, sample_idx=idx))
        if self.drop_no_positive:
            losses['kept_images'] = torch.tensor(float(target.shape[0]),
                                                 device=glob.device)
        if self.distill_loss is not None:
            if teacher is None:
                raise ValueError('SigRLHead.distill_loss needs teacher '
                                 'features: set with_teacher=True in '
                                 'OpenCLIPBackbone')
            losses['loss_distill'] = self.distill_loss(glob, teacher)
        return losses

    def predict(self, feats: Tuple[torch.Tensor, ...],
                data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """``pred_score`` (C,) per sample over the eval label set, plus
        ``zsl_pred_score`` over ``zsl_class_indices`` when set."""
        tokens, glob, _ = self._split_feats(feats)
        emb, adj = self.current_embed()
        act = torch.sigmoid if self.score_activation == 'sigmoid' else \
            (lambda x: x)
        scores = act(self.scores(tokens, glob, emb, adj)).detach()
        zsl = None
        if self.zsl_class_indices is not None:
            sub = emb[self.zsl_class_indices]
            zsl = act(self.scores(tokens, glob, sub, None)).detach()
        if data_samples is None:
            data_samples = [None] * scores.shape[0]
        out = []
        for i, ds in enumerate(data_samples):
            ds = self.set_prediction(DataSample() if ds is None else ds,
                                     scores[i])
            if zsl is not None:
                ds.set_field(zsl[i], 'zsl_pred_score', field_type='data')
            out.append(ds)
        return out
