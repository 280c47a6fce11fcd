"""Label embeddings E (C, D) of a label set: from a file, or the class names
encoded by the CLIP text tower (``text_encoder`` config)."""
import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mlrpl_mm.models.utils.open_clip_factory import (
    warn_random_fallback, weights_unavailable_message)
from .encode import DEFAULT_TEMPLATE, encode_label_names

#: keys of the ``text_encoder`` config of :func:`build_label_embed`
LABEL_ENCODER_KEYS = ('model_name', 'pretrained', 'model_cfg', 'template',
                      'cache_dir', 'seed', 'quick_gelu', 'fallback_to_random')


def load_embedding_file(path: str) -> torch.Tensor:
    """(C, D) float32 embeddings from a ``.npy`` or ``.pt``/``.pth`` file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'label embedding file not found: {path}')
    if path.endswith('.npy'):
        arr = torch.from_numpy(np.load(path))
    elif path.endswith(('.pt', '.pth')):
        arr = torch.load(path, map_location='cpu', weights_only=True)
        if not torch.is_tensor(arr):
            raise TypeError(f'{path}: expected a tensor, got {type(arr)}')
    else:
        raise ValueError(f'{path}: label embeddings must be .npy, .pt or .pth')
    if arr.dim() != 2:
        raise ValueError(f'{path}: expected (C, D) embeddings, got shape '
                         f'{tuple(arr.shape)}')
    return arr.float()


def build_label_embed(class_names: Optional[Sequence[str]] = None,
                      embed_file: Optional[str] = None,
                      text_encoder: Optional[Dict] = None,
                      who: str = 'SigRLHead') -> torch.Tensor:
    """L2-normalised label embeddings E (C, D).

    Either loaded from ``embed_file`` or computed by the frozen open_clip
    text tower described by ``text_encoder`` (keys: ``model_name``,
    ``pretrained``, ``model_cfg``, ``template``, ``cache_dir`` (the
    embedding cache), ``seed``, ``quick_gelu`` (None = auto: QuickGELU for
    weights trained with it, e.g. ``'openai'``), ``fallback_to_random``)
    through :func:`encode_label_names` (disk cache keyed by model, weights,
    template and class names). A random-init text tower (``pretrained=None``,
    offline tests) is built under the fixed ``seed`` so training and testing
    see the same embeddings.
    """
    if embed_file is not None:
        emb = load_embedding_file(embed_file)
        if class_names is not None and emb.shape[0] != len(class_names):
            raise ValueError(f'{embed_file}: {emb.shape[0]} rows but '
                             f'{len(class_names)} class names')
        return F.normalize(emb, dim=-1)
    if class_names is None:
        raise ValueError(f'{who}: give class_names (with text_encoder) '
                         'or a label embedding file')
    cfg = dict(text_encoder or {})
    unknown = set(cfg) - set(LABEL_ENCODER_KEYS)
    if unknown:
        raise KeyError(f'{who}.text_encoder: unknown keys '
                       f'{sorted(unknown)}')
    model_name = cfg.get('model_name', 'ViT-B-16')
    pretrained = cfg.get('pretrained', None)
    args = dict(model_name=model_name, model_cfg=cfg.get('model_cfg', None),
                template=cfg.get('template', DEFAULT_TEMPLATE),
                quick_gelu=cfg.get('quick_gelu', None),
                seed=int(cfg.get('seed', 0)), who=f'{who}.text_encoder')
    if 'cache_dir' in cfg:
        args['cache_dir'] = cfg['cache_dir']
    try:
        emb = encode_label_names(class_names, pretrained=pretrained, **args)
    except (RuntimeError, OSError) as err:
        if pretrained is None:
            raise
        if not cfg.get('fallback_to_random', False):
            raise RuntimeError(weights_unavailable_message(
                f'{who} text tower', model_name, pretrained,
                cfg.get('cache_dir'), err, 'model.head.text_encoder')) from err
        warn_random_fallback(
            who, f'the {model_name} text tower', pretrained, err,
            'RANDOM text tower instead (fallback_to_random=True): the label '
            'embeddings carry no semantics')
        emb = encode_label_names(class_names, pretrained=None, **args)
    return F.normalize(emb.float(), dim=-1)
