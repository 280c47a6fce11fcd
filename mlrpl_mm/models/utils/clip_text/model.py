"""The open_clip CLIP model behind a text tower, and its tokenizer.

Both text paths make the QuickGELU choice of the image tower
(:func:`~mlrpl_mm.models.utils.open_clip_factory.resolve_quick_gelu`): auto
= QuickGELU for weights trained with it (``pretrained='openai'``), as
open_clip's ``-quickgelu`` configs do for the OpenAI weights.

* :func:`build_clip_model`: the whole model, built now (DualCoOp's
  :class:`~mlrpl_mm.models.utils.clip_text.CLIPTextTower`).
* :func:`resolve_text_model`: which model encodes class-name prompts
  (SigRL label embeddings, ``CLIPClassEmbedding``); built lazily after the
  embedding disk-cache look-up when possible.
"""
import contextlib
import os.path as osp
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn

from mlrpl_mm.models.utils.open_clip_factory import (
    config_uses_quick_gelu, create_open_clip_model, register_open_clip_configs,
    resolve_quick_gelu)

#: keys of the ``text_encoder`` config of :func:`build_clip_model`
TEXT_ENCODER_KEYS = ('model_name', 'pretrained', 'model_cfg', 'quick_gelu',
                     'cache_dir', 'fallback_to_random', 'seed')


@contextlib.contextmanager
def seeded(seed: Optional[int]) -> Iterator[None]:
    """Run under ``torch.manual_seed(seed)`` without touching the global CPU
    RNG state outside; None: the global RNG as is."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def build_custom_clip(model_cfg: Dict, pretrained: Optional[str],
                      quick_gelu: Optional[bool], who: str) -> nn.Module:
    """open_clip ``CLIP(**model_cfg)``, random init only."""
    if pretrained is not None:
        raise ValueError(f'{who}: pretrained weights need a model_name, not '
                         'a model_cfg')
    from open_clip.model import CLIP
    return CLIP(**model_cfg, quick_gelu=bool(quick_gelu))


def build_clip_model(cfg: Optional[Dict] = None, who: str = 'text_encoder'
                     ) -> nn.Module:
    """An open_clip ``CLIP`` model for its text tower.

    ``cfg`` keys: ``model_name`` (default ``'RN101'``), ``pretrained``
    (None = random init, an open_clip tag or a checkpoint path),
    ``model_cfg`` (an explicit open_clip config, random init only),
    ``quick_gelu`` (None = auto: QuickGELU for weights trained with it, e.g.
    ``'openai'``, as :class:`OpenCLIPBackbone`), ``cache_dir`` (open_clip
    download cache), ``fallback_to_random`` (False: raise when the weights
    cannot be loaded; True: warn loudly and use a random init, for offline
    tests / demos only), ``seed`` (random init under this seed, default 0,
    so two builds give the same tower).
    """
    import open_clip
    cfg = dict(cfg or {})
    unknown = set(cfg) - set(TEXT_ENCODER_KEYS)
    if unknown:
        raise KeyError(f'{who}: unknown keys {sorted(unknown)}; allowed: '
                       f'{list(TEXT_ENCODER_KEYS)}')
    register_open_clip_configs()
    model_name = cfg.get('model_name', 'RN101')
    pretrained = cfg.get('pretrained', None)
    with seeded(cfg.get('seed', 0)):
        if cfg.get('model_cfg') is not None:
            return build_custom_clip(cfg['model_cfg'], pretrained,
                                     cfg.get('quick_gelu', False), who)
        if model_name not in open_clip.list_models():
            raise ValueError(f'{who}: unknown open_clip model '
                             f'{model_name!r}; pass model_cfg for a custom '
                             'one')
        quick = resolve_quick_gelu(model_name, pretrained,
                                   cfg.get('quick_gelu', None), who)
        return create_open_clip_model(
            model_name, pretrained, quick, cfg.get('cache_dir'),
            cfg.get('fallback_to_random', False), owner=who,
            errors=(RuntimeError, ), raw_error=True,
            what=f'the {model_name} text tower',
            consequence='RANDOM text tower instead (fallback_to_random='
            'True): the prompts carry no CLIP semantics')


def resolve_text_model(model_name: str, pretrained: Optional[str],
                       quick_gelu: Optional[bool], who: str
                       ) -> Tuple[str, Optional[nn.Module], Optional[str]]:
    """The model that encodes class-name prompts, with QuickGELU resolved.

    Returns ``(name, model, key_weights)``: with QuickGELU (auto for the
    OpenAI weights) the ``'-quickgelu'`` variant of ``model_name`` when
    open_clip has it for these weights (same weights, QuickGELU config;
    ``model`` None: built lazily by :func:`encode_class_names` after its
    disk-cache look-up, cached under the variant's name); otherwise the
    model built now with ``force_quick_gelu`` and ``key_weights`` marked
    ``'+force_quick_gelu'`` (a forced activation must not share the cache
    key of the model's own GELU config). Without QuickGELU: ``(model_name,
    None, pretrained)``.
    """
    register_open_clip_configs()
    if not resolve_quick_gelu(model_name, pretrained, quick_gelu, who) or \
            config_uses_quick_gelu(model_name):
        return model_name, None, pretrained
    import open_clip
    variant = f'{model_name}-quickgelu'
    if variant in open_clip.list_models() and (
            pretrained is None or osp.isfile(pretrained) or
            open_clip.get_pretrained_cfg(variant, pretrained)):
        return variant, None, pretrained
    model = open_clip.create_model(model_name, pretrained=pretrained,
                                   force_quick_gelu=True)
    key = f'{pretrained}+force_quick_gelu' if pretrained is not None \
        else None
    return model_name, model, key


def get_clip_tokenizer(model_name: Optional[str]):
    """open_clip's tokenizer of ``model_name`` (CLIP's BPE tokenizer for a
    custom ``model_cfg``: ``model_name=None``). Offline."""
    import open_clip
    if model_name is None:
        return open_clip.SimpleTokenizer()
    return open_clip.get_tokenizer(model_name)
