"""open_clip image towers returning projected global and spatial tokens.

ViT towers: projected CLS and patch tokens (here). ModifiedResNet towers
(CLIP RN50 / RN101): the attention-pool output and dense tokens, see
:mod:`mlrpl_mm.models.backbones.open_clip_resnet`. Building the tower
(QuickGELU choice, weights, random fallback):
:mod:`mlrpl_mm.models.utils.open_clip_factory`.
"""
import copy
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

# the helpers below were defined here before: importable from here too
from mlrpl_mm.models.utils.open_clip_factory import (  # noqa: F401
    EXTRA_OPEN_CLIP_CONFIGS, build_open_clip_visual, config_uses_quick_gelu,
    register_open_clip_configs, resolve_quick_gelu, tag_needs_quick_gelu,
    weights_unavailable_message)
from .open_clip_resnet import (OpenCLIPResNetMixin,  # noqa: F401
                               attnpool_positional_embedding,
                               is_open_clip_resnet, resnet_attnpool_tokens)


@MODELS.register_module()
class OpenCLIPBackbone(OpenCLIPResNetMixin, BaseModule):
    r"""open_clip image tower (ViT for SigRL; ViT or CLIP ResNet for
    DualCoOp).

    Tokens after the last block are normalised by ``ln_post`` and projected
    by the visual projection W (width -> D):

    .. math:: g = \mathrm{LN}(z_0) W \in \mathbb{R}^{B \times D}, \quad
        P = \mathrm{LN}(z_{1..L}) W \in \mathbb{R}^{B \times L \times D}

    CLIP ResNet towers (``'RN50'``, ``'RN101'``, ...; open_clip's
    ModifiedResNet) give g = the attention-pool output and P = the dense
    tokens of :func:`resnet_attnpool_tokens` (L = H W / 32^2 locations, the
    pool's positional embedding resized to the input).

    Outputs ``(P, g)`` (so ``feats[-1]`` is the pooled global feature, usable
    by plain linear heads); with ``with_teacher`` in training mode
    ``(g_teacher, P, g)`` where ``g_teacher`` (B, D) comes from a frozen copy
    of the initial tower (for the L1 distillation of zero-shot training).

    Nothing is downloaded at import; a download happens only when
    ``pretrained`` is an open_clip tag that is not cached.

    Args:
        model_name (str): open_clip name, e.g. ``'ViT-B-16'`` or
            ``'ViT-B-16-quickgelu'`` (OpenAI weights). Defaults to
            ``'ViT-B-16'``.
        pretrained (str, optional): None (random init), an open_clip tag
            (``'openai'``, ``'laion2b_s34b_b88k'``...) or a checkpoint path.
        model_cfg (dict, optional): Explicit open_clip config
            (``embed_dim``, ``vision_cfg``) instead of a name, e.g. a tiny
            tower for tests.
        quick_gelu (bool, optional): Force QuickGELU. Defaults to None:
            automatic, on when the pretrained tag was trained with it (the
            OpenAI weights), so ``'ViT-B-16'`` + ``'openai'`` is the right
            network too; False leaves the activation to the model config.
        trainable (str | int): ``'all'``; ``'none'`` (frozen tower kept in
            eval mode, e.g. DualCoOp); or n: only the last n blocks plus
            ``ln_post`` and the projection train (ResNet towers: the last n
            of the 4 residual stages plus the attention pool, with the BN
            of the frozen parts in eval mode). Defaults to ``'all'``.
        with_teacher (bool): Keep a frozen copy of the initial tower and
            return its global feature in training. Defaults to False.
        cache_dir (str, optional): open_clip download cache.
        fallback_to_random (bool): If the weights cannot be loaded (e.g.
            offline), warn and use a random init. Defaults to False: raise
            naming the model, the weights and the switches to set.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 model_cfg: Optional[Dict] = None,
                 quick_gelu: Optional[bool] = None,
                 trainable: Union[str, int] = 'all',
                 with_teacher: bool = False,
                 cache_dir: Optional[str] = None,
                 fallback_to_random: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.visual = build_open_clip_visual(model_name, pretrained,
                                             model_cfg, quick_gelu, cache_dir,
                                             fallback_to_random)
        v = self.visual
        if pretrained is None:
            print_log('OpenCLIPBackbone: random initialisation '
                      '(pretrained=None)', logger='current')
        self.is_resnet = is_open_clip_resnet(v)
        if self.is_resnet:
            self._init_resnet(trainable, with_teacher)
            return
        for attr in ('conv1', 'transformer', 'ln_post', 'proj'):
            if not hasattr(v, attr):
                raise NotImplementedError(
                    f'OpenCLIPBackbone supports open_clip ViT towers only; '
                    f'{type(v).__name__} has no {attr!r}')
        if v.attn_pool is not None or v.pool_type != 'tok' or \
                v.final_ln_after_pool or v.proj is None:
            raise NotImplementedError(
                'OpenCLIPBackbone needs a ViT with CLS-token pooling, ln_post '
                'on all tokens and a projection (pool_type="tok", no '
                'attentional pooler, final_ln_after_pool=False)')
        self.num_layers = len(v.transformer.resblocks)
        self.embed_dims = v.proj.shape[1]
        self.trainable = trainable
        self._set_trainable(trainable)
        self.with_teacher = with_teacher
        if with_teacher:
            self.teacher = copy.deepcopy(self.visual)
            for p in self.teacher.parameters():
                p.requires_grad = False
            self.teacher.eval()

    def _set_trainable(self, trainable: Union[str, int]) -> None:
        """``'all'``; ``'none'`` (frozen, eval mode: DualCoOp); or n: the
        last n blocks (ResNet: stages) train, see :meth:`_set_trainable_vit`
        and :meth:`_set_trainable_resnet`."""
        if trainable == 'all':
            return
        if trainable == 'none':
            for p in self.visual.parameters():
                p.requires_grad = False
            return
        if self.is_resnet:
            self._set_trainable_resnet(trainable)
        else:
            self._set_trainable_vit(trainable)

    def _set_trainable_vit(self, trainable: int) -> None:
        """The last n transformer blocks, ``ln_post`` and ``proj`` train."""
        if not isinstance(trainable, int) or isinstance(trainable, bool) or \
                not 0 <= trainable <= self.num_layers:
            raise ValueError(
                f"OpenCLIPBackbone: trainable must be 'all' or an int in "
                f'[0, {self.num_layers}], got {trainable!r}')
        for p in self.visual.parameters():
            p.requires_grad = False
        blocks = self.visual.transformer.resblocks
        for blk in list(blocks)[self.num_layers - trainable:]:
            for p in blk.parameters():
                p.requires_grad = True
        for p in self.visual.ln_post.parameters():
            p.requires_grad = True
        self.visual.proj.requires_grad = True

    def train(self, mode: bool = True) -> 'OpenCLIPBackbone':
        super().train(mode)
        if self.with_teacher:
            self.teacher.eval()
        if mode and self.trainable == 'none':
            self.visual.eval()      # frozen tower: no BN statistics update
        elif mode and self.is_resnet:
            self._resnet_frozen_bn_eval()
        return self

    @staticmethod
    def _tokens(visual: nn.Module, x: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        z = visual.transformer(visual._embeds(x))
        z = visual.ln_post(z) @ visual.proj
        return z[:, 1:], z[:, 0]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Args: x (B, 3, H, W). Returns (P (B, L, D), g (B, D)), plus the
        teacher's g first in training with ``with_teacher``."""
        if self.is_resnet:
            return self._resnet_forward(x)
        tokens, glob = self._tokens(self.visual, x)
        if self.with_teacher and self.training:
            with torch.no_grad():
                _, teacher = self._tokens(self.teacher, x)
            return teacher, tokens, glob
        return tokens, glob

    def get_layer_depth(self, param_name: str, prefix: str = ''
                        ) -> Tuple[int, int]:
        """Layer depth for layer-wise lr decay (mmpretrain's
        ``LearningRateDecayOptimWrapperConstructor``).

        Depth 0: patch embedding, class/positional embeddings, ln_pre;
        block i: i + 1; ln_post, projection and every module outside the
        backbone (heads): num_layers + 1. Returns (depth, num_layers + 2).
        """
        max_depth = self.num_layers + 2
        if self.is_resnet:
            return self._resnet_layer_depth(param_name, prefix)
        if not param_name.startswith(prefix):
            return max_depth - 1, max_depth
        name = param_name[len(prefix):]
        if name.startswith('visual.transformer.resblocks.'):
            return int(name.split('.')[3]) + 1, max_depth
        if name.startswith('visual.') and name.split('.')[1] in (
                'conv1', 'class_embedding', 'positional_embedding', 'ln_pre',
                'patch_dropout'):
            return 0, max_depth
        return max_depth - 1, max_depth
