r"""CLIP ModifiedResNet towers (RN50 / RN101 ...) in
:class:`~mlrpl_mm.models.backbones.OpenCLIPBackbone`.

The tower's stages ``layer1..layer4`` give a map x (B, C, H, W); the global
feature g is the attention-pool output and the dense tokens P apply the
pool's value and output projections at every location
(:func:`resnet_attnpool_tokens`), the DualCoOp region features.
"""
from typing import Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F


def is_open_clip_resnet(visual: nn.Module) -> bool:
    """Whether ``visual`` is open_clip's ModifiedResNet (CLIP RN towers)."""
    from open_clip.modified_resnet import ModifiedResNet
    return isinstance(visual, ModifiedResNet)


def attnpool_positional_embedding(attnpool: nn.Module, h: int, w: int
                                  ) -> torch.Tensor:
    """The attention pool's positional embedding for an (h, w) map, (1 + hw,
    C): the spatial part bicubically resized from its native s x s grid
    (s = image_size / 32) when (h, w) differs (e.g. 448 px input on 224 px
    weights: 14 x 14 from 7 x 7); row 0 (the mean token) unchanged."""
    pos = attnpool.positional_embedding
    s = int(round((pos.shape[0] - 1) ** 0.5))
    if (h, w) == (s, s):
        return pos
    grid = pos[1:].reshape(1, s, s, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(h, w), mode='bicubic',
                         align_corners=False)
    grid = grid.to(pos.dtype).permute(0, 2, 3, 1).reshape(h * w, -1)
    return torch.cat([pos[:1], grid], 0)


def resnet_attnpool_tokens(attnpool: nn.Module, x: torch.Tensor
                           ) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Global and dense tokens of CLIP's attention pool.

    With the layer4 map x (B, C, H, W), its locations :math:`x_l` and mean
    :math:`x_0`, positional embeddings :math:`e_l` (resized to H x W by
    :func:`attnpool_positional_embedding`):

    .. math::
        g = \mathrm{MHA}(q = x_0 + e_0,\ k = v = \{x_l + e_l\}_{l=0}^{HW}),
        \qquad P_l = W_c (W_v (x_l + e_l) + b_v) + b_c

    g is open_clip's ``AttentionPool2d`` output (equal to it at the native
    resolution); the dense tokens P apply the pool's value and output
    projections to every location (the DualCoOp region features). Since the
    pool's output is an attention-weighted average of such terms, g lies in
    the convex hull of :math:`\{P_l\} \cup \{P_0\}`.

    Returns:
        (P (B, HW, D), g (B, D)).
    """
    b, c, h, w = x.shape
    tokens = x.reshape(b, c, h * w).permute(2, 0, 1)            # (HW, B, C)
    tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], 0)
    pos = attnpool_positional_embedding(attnpool, h, w)
    tokens = tokens + pos[:, None, :].to(tokens.dtype)
    glob, _ = F.multi_head_attention_forward(
        query=tokens[:1], key=tokens, value=tokens,
        embed_dim_to_check=c, num_heads=attnpool.num_heads,
        q_proj_weight=attnpool.q_proj.weight,
        k_proj_weight=attnpool.k_proj.weight,
        v_proj_weight=attnpool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([attnpool.q_proj.bias, attnpool.k_proj.bias,
                                attnpool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.,
        out_proj_weight=attnpool.c_proj.weight,
        out_proj_bias=attnpool.c_proj.bias, use_separate_proj_weight=True,
        training=False, need_weights=False)
    dense = attnpool.c_proj(attnpool.v_proj(tokens[1:]))     # (HW, B, D)
    return dense.permute(1, 0, 2), glob[0]


class OpenCLIPResNetMixin:
    """The ResNet-tower path of ``OpenCLIPBackbone`` (``self.visual`` is a
    ModifiedResNet): the stem, 4 residual stages ``layer1..layer4`` and the
    attention pool."""

    #: stem modules of ModifiedResNet
    STEM = ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3')
    STAGES = ('layer1', 'layer2', 'layer3', 'layer4')

    def _init_resnet(self, trainable: Union[str, int],
                     with_teacher: bool) -> None:
        """ResNet tower: stages ``layer1..layer4`` + attention pool."""
        if with_teacher:
            raise NotImplementedError('OpenCLIPBackbone: with_teacher is '
                                      'implemented for ViT towers only')
        self.with_teacher = False
        self.num_layers = 4
        self.embed_dims = self.visual.attnpool.c_proj.out_features
        self.trainable = trainable
        self._set_trainable(trainable)

    def _set_trainable_resnet(self, trainable: int) -> None:
        """n in [0, 4]: the last n residual stages and the attention pool
        train (their BN too), the stem and earlier stages are frozen with BN
        in eval mode."""
        if not isinstance(trainable, int) or isinstance(trainable, bool) or \
                not 0 <= trainable <= 4:
            raise ValueError(
                "OpenCLIPBackbone (ResNet tower): trainable must be 'all', "
                f"'none' or an int in [0, 4] (residual stages), got "
                f'{trainable!r}')
        for name, p in self.visual.named_parameters():
            p.requires_grad = name.split('.')[0] in \
                self._resnet_trainable_parts()

    def _resnet_trainable_parts(self) -> Tuple[str, ...]:
        if self.trainable == 'all':
            return self.STEM + self.STAGES + ('attnpool', )
        if self.trainable == 'none':
            return ()
        return self.STAGES[4 - self.trainable:] + ('attnpool', )

    def _resnet_frozen_bn_eval(self) -> None:
        """BatchNorm of frozen parts stays in eval mode (no statistics
        update) while the rest trains."""
        parts = self._resnet_trainable_parts()
        for name, m in self.visual.named_children():
            if name not in parts:
                m.eval()

    def _resnet_forward(self, x: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
        """x (B, 3, H, W) -> (P (B, HW/32^2, D), g (B, D))."""
        v = self.visual
        x = v.stem(x)
        x = v.layer4(v.layer3(v.layer2(v.layer1(x))))
        return resnet_attnpool_tokens(v.attnpool, x)

    def _resnet_layer_depth(self, param_name: str, prefix: str
                            ) -> Tuple[int, int]:
        """Stem 0, layer i -> i, attention pool and heads 5; of 6."""
        name = param_name[len(prefix):] if param_name.startswith(prefix) \
            else ''
        part = name.split('.')[1] if name.startswith('visual.') else ''
        if part.startswith('layer') and part[5:].isdigit():
            return int(part[5:]), 6
        if part in self.STEM:
            return 0, 6
        return 5, 6
