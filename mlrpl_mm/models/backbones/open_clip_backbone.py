"""open_clip image towers returning projected global and spatial tokens.

ViT towers: projected CLS and patch tokens. ModifiedResNet towers (CLIP
RN50 / RN101): the attention-pool output and dense tokens (the pool's value
and output projections applied at every location), see
:func:`resnet_attnpool_tokens`.
"""
import copy
import json
import logging
import os.path as osp
import tempfile
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS


#: open_clip model configs added by mlrpl_mm. ``mlrpl-tiny-vit``: width 64,
#: 2 layers, 64 px images (16 patches), tiny text tower; random weights only,
#: for tests and smoke runs (``model_name='mlrpl-tiny-vit'``).
EXTRA_OPEN_CLIP_CONFIGS = {
    'mlrpl-tiny-vit': dict(
        embed_dim=64,
        vision_cfg=dict(image_size=64, layers=2, width=64, patch_size=16,
                        head_width=32),
        text_cfg=dict(context_length=77, vocab_size=49408, width=64,
                      heads=2, layers=2)),
    # CLIP ModifiedResNet in miniature (one bottleneck per stage, stem width
    # 8 -> 256 channels after layer4, 64 px -> 2x2 map): random weights only,
    # for DualCoOp tests and the demo (``model_name='mlrpl-tiny-rn'``)
    'mlrpl-tiny-rn': dict(
        embed_dim=64,
        vision_cfg=dict(image_size=64, layers=[1, 1, 1, 1], width=8,
                        head_width=64),
        text_cfg=dict(context_length=77, vocab_size=49408, width=64,
                      heads=2, layers=2)),
}


def register_open_clip_configs() -> None:
    """Make :data:`EXTRA_OPEN_CLIP_CONFIGS` known to open_clip by name."""
    import open_clip
    missing = {k: v for k, v in EXTRA_OPEN_CLIP_CONFIGS.items()
               if k not in open_clip.list_models()}
    if not missing:
        return
    registry = getattr(open_clip.factory, '_MODEL_CONFIGS', None)
    if isinstance(registry, dict):
        registry.update(copy.deepcopy(missing))
        return
    # fallback for open_clip versions without the module-level registry
    tmp = tempfile.mkdtemp(prefix='mlrpl_open_clip_')
    for name, cfg in missing.items():
        with open(osp.join(tmp, f'{name}.json'), 'w') as f:
            json.dump(cfg, f)
    open_clip.add_model_config(tmp)


def tag_needs_quick_gelu(model_name: str, pretrained: Optional[str]) -> bool:
    """Whether the open_clip pretrained tag ``pretrained`` of ``model_name``
    was trained with QuickGELU (the OpenAI weights). Offline: reads
    open_clip's pretrained table, downloads nothing."""
    if not pretrained:
        return False
    import open_clip
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained) or {}
    return bool(cfg.get('quick_gelu', False))


def config_uses_quick_gelu(model_name: str) -> bool:
    """Whether open_clip's config of ``model_name`` already uses QuickGELU
    (e.g. ``'ViT-B-16-quickgelu'``)."""
    import open_clip
    return bool((open_clip.get_model_config(model_name) or {}).get(
        'quick_gelu', False))


def resolve_quick_gelu(model_name: str, pretrained: Optional[str],
                       quick_gelu: Optional[bool], who: str) -> bool:
    """``force_quick_gelu`` for open_clip.

    None (auto): force QuickGELU when the weights were trained with it
    (``pretrained='openai'``), so ``'ViT-B-16'`` + ``'openai'`` gives the
    same network as ``'ViT-B-16-quickgelu'``; True: force it; False: leave
    the activation to the model config, with a warning when the weights
    need QuickGELU and the config does not use it (open_clip only warns).
    """
    needs = tag_needs_quick_gelu(model_name, pretrained)
    if quick_gelu is None:
        return needs
    if not quick_gelu and needs:
        if not config_uses_quick_gelu(model_name):
            print_log(f'{who}: the {pretrained!r} weights of {model_name} '
                      'were trained with QuickGELU but quick_gelu=False: '
                      'the network uses GELU and does not reproduce them; '
                      'use quick_gelu=None (auto) or a "-quickgelu" model',
                      logger='current', level=logging.WARNING)
    return bool(quick_gelu)


def weights_unavailable_message(owner: str, model_name: str, pretrained: str,
                                cache_dir: Optional[str], err: BaseException,
                                cfg_key: str) -> str:
    """Error text for open_clip weights that cannot be loaded (offline, not
    cached, unknown tag): names the model, the weights, the cache and the
    config keys to set (``cfg_key``, e.g. ``'model.backbone'``)."""
    cache = cache_dir if cache_dir else \
        'the default open_clip / Hugging Face cache (~/.cache/huggingface)'
    return (
        f'{owner}: cannot load the weights {pretrained!r} of open_clip model '
        f'{model_name!r} from {cache} ({type(err).__name__}: {err}). '
        'Offline: fetch them once on a machine with internet access '
        f"(open_clip.create_model({model_name!r}, pretrained={pretrained!r}) "
        'fills the cache), copy the cache here and set HF_HUB_OFFLINE=1, or '
        f'set {cfg_key}.pretrained to a local weights file. Only for smoke '
        'tests and demos, a RANDOM initialisation (results are not the '
        f"method's) is the offline switch {cfg_key}.fallback_to_random=True.")


def build_open_clip_visual(model_name: str = 'ViT-B-16',
                           pretrained: Optional[str] = None,
                           model_cfg: Optional[Dict] = None,
                           quick_gelu: Optional[bool] = None,
                           cache_dir: Optional[str] = None,
                           fallback_to_random: bool = False) -> nn.Module:
    """Build an open_clip image tower.

    Args:
        model_name: open_clip model name (ignored when ``model_cfg`` is given).
        pretrained: None (random init, offline), an open_clip tag (may
            download) or a local checkpoint path.
        model_cfg: An explicit open_clip model config
            ``dict(embed_dim=..., vision_cfg=dict(...), text_cfg=...)``; the
            text part is ignored here. Random init only (``pretrained`` must
            then be None).
        quick_gelu: Force QuickGELU; None (default) = auto, i.e. when the
            pretrained tag needs it (OpenAI weights), see
            :func:`resolve_quick_gelu`.
        cache_dir: open_clip download cache.
        fallback_to_random: When the weights cannot be loaded (offline, no
            cached file), warn and build a random-init tower instead of
            raising (:func:`weights_unavailable_message`). Demo / test
            configs only; the protocol configs keep it False.
    """
    import open_clip
    register_open_clip_configs()
    if model_cfg is None:
        quick_gelu = resolve_quick_gelu(model_name, pretrained, quick_gelu,
                                        'OpenCLIPBackbone')
    quick_gelu = bool(quick_gelu)
    if model_cfg is not None:
        if pretrained is not None:
            raise ValueError('OpenCLIPBackbone: pretrained weights can only '
                             'be loaded with a named model (model_name); got '
                             f'model_cfg and pretrained={pretrained!r}')
        if 'embed_dim' not in model_cfg or 'vision_cfg' not in model_cfg:
            raise KeyError('OpenCLIPBackbone: model_cfg needs "embed_dim" '
                           f'and "vision_cfg", got keys {sorted(model_cfg)}')
        from open_clip.model import _build_vision_tower
        return _build_vision_tower(model_cfg['embed_dim'],
                                   dict(model_cfg['vision_cfg']),
                                   quick_gelu=quick_gelu)
    if model_name not in open_clip.list_models():
        raise ValueError(f'OpenCLIPBackbone: unknown open_clip model '
                         f'{model_name!r}; pass model_cfg for a custom one')
    try:
        model = open_clip.create_model(model_name, pretrained=pretrained,
                                       force_quick_gelu=quick_gelu,
                                       cache_dir=cache_dir)
    except (RuntimeError, OSError) as err:
        if pretrained is None:
            raise
        if not fallback_to_random:
            raise RuntimeError(weights_unavailable_message(
                'OpenCLIPBackbone', model_name, pretrained, cache_dir, err,
                'model.backbone')) from err
        print_log(f'OpenCLIPBackbone: could not load {model_name} weights '
                  f'{pretrained!r} ({err}); RANDOM INITIALISATION instead '
                  '(fallback_to_random=True)', logger='current',
                  level=logging.WARNING)
        model = open_clip.create_model(model_name, pretrained=None,
                                       force_quick_gelu=quick_gelu)
    return model.visual


@MODELS.register_module()
class OpenCLIPBackbone(BaseModule):
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
        self.is_resnet = is_open_clip_resnet(v)
        if self.is_resnet:
            self._init_resnet(trainable, with_teacher, pretrained)
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
        if pretrained is None:
            print_log('OpenCLIPBackbone: random initialisation '
                      '(pretrained=None)', logger='current')

    def _set_trainable(self, trainable: Union[str, int]) -> None:
        if trainable == 'all':
            return
        if trainable == 'none':
            for p in self.visual.parameters():
                p.requires_grad = False
            return
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

    # ------------------------------------------------------------------
    # CLIP ModifiedResNet towers (RN50 / RN101 ...): separate from the ViT
    # path above.
    def _init_resnet(self, trainable: Union[str, int], with_teacher: bool,
                     pretrained: Optional[str]) -> None:
        """ResNet tower: stages ``layer1..layer4`` + attention pool."""
        if with_teacher:
            raise NotImplementedError('OpenCLIPBackbone: with_teacher is '
                                      'implemented for ViT towers only')
        self.with_teacher = False
        self.num_layers = 4
        self.embed_dims = self.visual.attnpool.c_proj.out_features
        self.trainable = trainable
        self._set_trainable_resnet(trainable)
        if pretrained is None:
            print_log('OpenCLIPBackbone: random initialisation '
                      '(pretrained=None)', logger='current')

    def _set_trainable_resnet(self, trainable: Union[str, int]) -> None:
        """``'all'``; ``'none'`` (frozen, eval mode: DualCoOp); or n in
        [0, 4]: the last n residual stages and the attention pool train
        (their BN too), the stem and earlier stages are frozen with BN in
        eval mode."""
        if trainable == 'all':
            return
        if trainable == 'none':
            for p in self.visual.parameters():
                p.requires_grad = False
            return
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
            return ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3', 'layer1',
                    'layer2', 'layer3', 'layer4', 'attnpool')
        if self.trainable == 'none':
            return ()
        stages = ('layer1', 'layer2', 'layer3', 'layer4')
        return stages[4 - self.trainable:] + ('attnpool', )

    def _resnet_frozen_bn_eval(self) -> None:
        """BatchNorm of frozen parts stays in eval mode (no statistics
        update) while the rest trains."""
        parts = self._resnet_trainable_parts()
        for name, m in self.visual.named_children():
            if name not in parts:
                m.eval()

    def _resnet_forward(self, x: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
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
        if part in ('conv1', 'bn1', 'conv2', 'bn2', 'conv3', 'bn3'):
            return 0, 6
        return 5, 6


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
    grid = torch.nn.functional.interpolate(grid.float(), size=(h, w),
                                           mode='bicubic',
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
    import torch.nn.functional as F
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
