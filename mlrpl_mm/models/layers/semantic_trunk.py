"""The shared semantic trunk of SSGRL / SST / HST / DSRB."""
import copy
from typing import Dict, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from .element_wise_linear import SSGRLElementWiseLinear
from .gated_gnn import SSGRLGatedGNN
from .semantic_decoupling import SemanticDecoupling


@MODELS.register_module()
class SemanticTrunk(BaseModule):
    r"""Reduction + semantic decoupling + gated GNN + element-wise classifier.

    1. ``reduce``: optional 2x2 average pooling (stride 2; the reference
       backbone's easy-to-miss pooling), then a 1x1 conv Cin->D (no bias) +
       BN: (B, Cin, H, W) -> (B, D, H', W').
    2. ``decouple``: :class:`SemanticDecoupling` with the class embeddings:
       F (B, C, D) and the attention maps (B, N, C).
    3. ``classify``: :class:`SSGRLGatedGNN` over the label graph ``adj``
       (h (B, C, D)), :math:`o_c = \tanh(W_o [h_c; f_c] + b_o)` (2D->O), and
       :class:`SSGRLElementWiseLinear` :math:`\mathrm{logit}_c = \langle u_c,
       o_c\rangle + e_c`.

    The label graph is a persistent buffer ``adj`` (C, C), zero until
    :meth:`set_label_graph` is called (by ``LabelGraphHook`` before training);
    it is saved in checkpoints.

    Args:
        num_classes (int): C.
        in_channels (int): Cin, channels of the backbone's last feature map.
            Defaults to 2048 (ResNet-101).
        feat_channels (int): D. Defaults to 1024.
        inter_channels (int): I of the semantic decoupling. Defaults to 512.
        out_channels (int): O of the classifier. Defaults to 1024.
        class_embedding (dict | nn.Module): class-embedding source config
            (``NpyClassEmbedding``, ``CLIPClassEmbedding``,
            ``LearnableClassEmbedding``); ``num_classes`` is filled in.
        avg_pool (bool): Apply the 2x2 average pooling. Defaults to True.
        gnn_steps (int): Gated GNN steps. Defaults to 3.
        sd_chunk_size (int, optional): Class chunk of the decoupling.
    """

    def __init__(self, num_classes: int, in_channels: int = 2048,
                 feat_channels: int = 1024, inter_channels: int = 512,
                 out_channels: int = 1024,
                 class_embedding: Union[dict, nn.Module] = dict(
                     type='LearnableClassEmbedding', embed_dims=300),
                 avg_pool: bool = True, gnn_steps: int = 3,
                 sd_chunk_size: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.feat_channels = feat_channels
        self.inter_channels = inter_channels
        self.out_channels = out_channels
        self.avg_pool = avg_pool
        if isinstance(class_embedding, nn.Module):
            self.class_embedding = class_embedding
        else:
            cfg = copy.deepcopy(dict(class_embedding))
            cfg.setdefault('num_classes', num_classes)
            self.class_embedding = MODELS.build(cfg)
        emb = self.class_embedding()
        if emb.shape[0] != num_classes:
            raise ValueError(
                f'SemanticTrunk: the class embedding has {emb.shape[0]} rows '
                f'but num_classes={num_classes}')
        self.embed_dims = int(emb.shape[1])
        self.reduction = nn.Sequential(
            nn.Conv2d(in_channels, feat_channels, 1, bias=False),
            nn.BatchNorm2d(feat_channels))
        self.sd = SemanticDecoupling(feat_channels, self.embed_dims,
                                     inter_channels, chunk_size=sd_chunk_size)
        self.gnn = SSGRLGatedGNN(feat_channels, gnn_steps)
        self.fc_out = nn.Linear(2 * feat_channels, out_channels)
        self.classifier = SSGRLElementWiseLinear(num_classes, out_channels)
        self.register_buffer('adj', torch.zeros(num_classes, num_classes))

    def set_label_graph(self, adj: torch.Tensor) -> None:
        """Copy a (C, C) label graph into the ``adj`` buffer.

        Raises:
            ValueError: wrong shape or non-finite entries.
        """
        adj = torch.as_tensor(adj)
        if adj.shape != self.adj.shape:
            raise ValueError(f'label graph must be {tuple(self.adj.shape)}, '
                             f'got {tuple(adj.shape)}')
        if not torch.isfinite(adj).all():
            raise ValueError('label graph contains NaN/inf')
        self.adj.copy_(adj.to(self.adj))

    def required_hooks(self, max_epochs: Optional[int] = None
                       ) -> Dict[str, str]:
        """``{'LabelGraphHook': ...}`` while ``adj`` is all zero (not set, not
        restored from a checkpoint); checked by ``RequiredHooksCheckHook``."""
        if bool(self.adj.any()):
            return {}
        return {'LabelGraphHook': 'the label graph (trunk.adj, all zero now) '
                'of the gated GNN'}

    def reduce(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, H, W) -> (B, D, H', W') (pool if enabled, 1x1 conv + BN)."""
        if torch.is_tensor(x) and x.dim() == 4 and \
                x.shape[1] != self.in_channels:
            raise ValueError(
                f'channel mismatch: the backbone\'s last feature map '
                f'{tuple(x.shape)} has {x.shape[1]} channels but the head has '
                f'in_channels={self.in_channels}; set '
                f'model.head.in_channels={x.shape[1]} (or pick a backbone '
                f'whose last stage gives {self.in_channels} channels)')
        if not torch.is_tensor(x) or x.dim() != 4:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f'SemanticTrunk expects the backbone to output a 4-D feature '
                f'map (B, {self.in_channels}, H, W), got {shape}. Set the '
                "head's in_channels to the backbone's last-stage channels and "
                'make the backbone output a spatial map (e.g. ViT: '
                "out_type='featmap'; no global pooling neck).")
        if self.avg_pool:
            if min(x.shape[2:]) < 2:
                raise ValueError(
                    f'SemanticTrunk: the feature map {tuple(x.shape)} is too '
                    'small for the 2x2 average pooling; set avg_pool=False or '
                    'use a larger input')
            x = F.avg_pool2d(x, kernel_size=2, stride=2)
        return self.reduction(x)

    def decouple(self, x: torch.Tensor):
        """Reduced map (B, D, H, W) -> f (B, C, D), attn (B, N, C)."""
        return self.sd(x, self.class_embedding())

    def pre_logits(self, f: torch.Tensor) -> torch.Tensor:
        r"""f (B', C, D) -> o (B', C, O), the input of the element-wise
        classifier: :math:`o_c = \tanh(W_o [h_c; f_c] + b_o)` with h the
        gated-GNN output over the label graph ``adj``."""
        h = self.gnn(f, self.adj)
        return torch.tanh(self.fc_out(torch.cat([h, f], dim=2)))

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        """f (B', C, D) -> logits (B', C) over the label graph ``adj``."""
        return self.classifier(self.pre_logits(f))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Backbone map (B, Cin, H, W) -> dict(logits (B, C), f (B, C, D),
        attn (B, N, C), feat (B, D, H', W'))."""
        feat = self.reduce(x)
        f, attn = self.decouple(feat)
        return dict(logits=self.classify(f), f=f, attn=attn, feat=feat)
