"""open_clip ViT image tower returning projected CLS and patch tokens."""
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
    r"""open_clip ViT image tower for SigRL.

    Tokens after the last block are normalised by ``ln_post`` and projected
    by the visual projection W (width -> D):

    .. math:: g = \mathrm{LN}(z_0) W \in \mathbb{R}^{B \times D}, \quad
        P = \mathrm{LN}(z_{1..L}) W \in \mathbb{R}^{B \times L \times D}

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
        trainable (str | int): ``'all'`` or n: only the last n blocks plus
            ``ln_post`` and the projection train. Defaults to ``'all'``.
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
