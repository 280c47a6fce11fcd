"""Building open_clip models: extra model configs, the QuickGELU choice and
loading weights with a clear error (or an explicit random fallback).

Shared by the image tower
(:class:`~mlrpl_mm.models.backbones.OpenCLIPBackbone`) and the text towers
(:mod:`mlrpl_mm.models.utils.clip_text`), so that both make the same
activation choice for the same weights.
"""
import copy
import json
import logging
import os.path as osp
import tempfile
from typing import Optional

import torch.nn as nn
from mmengine.logging import print_log

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
    r"""``force_quick_gelu`` for open_clip.

    QuickGELU is :math:`x\,\sigma(1.702\,x)`, the activation the OpenAI CLIP
    weights were trained with. None (auto): force it when the weights were
    trained with it (``pretrained='openai'``), so ``'ViT-B-16'`` +
    ``'openai'`` gives the same network as ``'ViT-B-16-quickgelu'``; True:
    force it; False: leave the activation to the model config, with a
    warning when the weights need QuickGELU and the config does not use it
    (open_clip only warns).
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


def warn_random_fallback(owner: str, what: str, pretrained: str,
                         err: BaseException, consequence: str) -> None:
    """The loud warning of ``fallback_to_random=True``."""
    print_log(f'{owner}: could not load {what} {pretrained!r} ({err}); '
              f'{consequence}', logger='current', level=logging.WARNING)


def create_open_clip_model(model_name: str, pretrained: Optional[str],
                           force_quick_gelu: bool,
                           cache_dir: Optional[str] = None,
                           fallback_to_random: bool = False,
                           owner: str = 'OpenCLIPBackbone',
                           cfg_key: str = 'model.backbone',
                           errors: tuple = (RuntimeError, OSError),
                           raw_error: bool = False,
                           what: Optional[str] = None,
                           consequence: str = 'RANDOM INITIALISATION instead '
                           '(fallback_to_random=True)'
                           ) -> nn.Module:
    """``open_clip.create_model`` with a clear failure.

    When the weights cannot be loaded (one of ``errors``, e.g. offline and
    not cached): raise a RuntimeError with
    :func:`weights_unavailable_message` (the original error when
    ``raw_error``), or with ``fallback_to_random`` warn loudly and build the
    random-init model (demo / test configs only).
    """
    import open_clip
    try:
        return open_clip.create_model(model_name, pretrained=pretrained,
                                      force_quick_gelu=force_quick_gelu,
                                      cache_dir=cache_dir)
    except errors as err:
        if pretrained is None:
            raise
        if not fallback_to_random:
            if raw_error:
                raise
            raise RuntimeError(weights_unavailable_message(
                owner, model_name, pretrained, cache_dir, err,
                cfg_key)) from err
        warn_random_fallback(owner, what or f'{model_name} weights',
                             pretrained, err, consequence)
        return open_clip.create_model(model_name, pretrained=None,
                                      force_quick_gelu=force_quick_gelu)


def build_open_clip_visual(model_name: str = 'ViT-B-16',
                           pretrained: Optional[str] = None,
                           model_cfg: Optional[dict] = None,
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
                                   quick_gelu=bool(quick_gelu))
    quick_gelu = resolve_quick_gelu(model_name, pretrained, quick_gelu,
                                    'OpenCLIPBackbone')
    if model_name not in open_clip.list_models():
        raise ValueError(f'OpenCLIPBackbone: unknown open_clip model '
                         f'{model_name!r}; pass model_cfg for a custom one')
    return create_open_clip_model(model_name, pretrained, quick_gelu,
                                  cache_dir, fallback_to_random).visual
