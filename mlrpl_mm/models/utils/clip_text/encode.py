r"""Class-name embeddings from the open_clip text tower, cached on disk.

For class names :math:`n_1 \dots n_C` and a template with one ``{}``:

.. math:: E_c = \frac{T(\mathrm{tok}(\mathrm{template}(n_c)))}
    {\|T(\cdot)\|_2} \in \mathbb{R}^D, \qquad E \in \mathbb{R}^{C \times D}

with T the CLIP text tower (``CLIP.encode_text``).
"""
import hashlib
import json
import os
import os.path as osp
from typing import Optional, Sequence, Union

import numpy as np
import torch
from mmengine.logging import print_log

from mlrpl_mm.models.utils.open_clip_factory import \
    register_open_clip_configs
from .model import build_custom_clip, resolve_text_model, seeded

DEFAULT_TEMPLATE = 'There is a {} in the scene'
DEFAULT_CACHE_DIR = osp.join(osp.expanduser('~'), '.cache', 'mlrpl_mm',
                             'text_embeddings')


def _weights_id(pretrained: Optional[str]) -> str:
    """The weights part of the cache key: an open_clip tag as is; a local
    checkpoint file by its absolute path, size and modification time, so
    that a replaced file never returns the old file's embeddings."""
    path = osp.expanduser(str(pretrained))
    if pretrained is not None and osp.isfile(path):
        st = os.stat(path)
        return f'file:{osp.abspath(path)}:{st.st_size}:{st.st_mtime_ns}'
    return str(pretrained)


def _cache_key(model_name: str, pretrained: Optional[str], template: str,
               class_names: Sequence[str]) -> str:
    h = hashlib.sha256(json.dumps(
        dict(model=model_name, pretrained=_weights_id(pretrained),
             template=template, classes=list(class_names)),
        sort_keys=True).encode()).hexdigest()
    return h[:24]


@torch.no_grad()
def encode_class_names(class_names: Sequence[str],
                       model_name: str = 'ViT-B-16',
                       pretrained: Optional[str] = None,
                       template: str = DEFAULT_TEMPLATE,
                       cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                       model: Optional[torch.nn.Module] = None,
                       device: Union[str, torch.device] = 'cpu',
                       batch_size: int = 256) -> torch.Tensor:
    """L2-normalised text embeddings of ``template.format(name)``.

    Args:
        class_names: C class names.
        model_name: open_clip model name (e.g. ``'ViT-B-16'``).
        pretrained: open_clip pretrained tag or local checkpoint path; None =
            random init (offline tests). A tag may trigger a download.
        template: Prompt with one ``{}``. Defaults to
            ``'There is a {} in the scene'``.
        cache_dir: Where to cache the (C, D) array, keyed by model, weights,
            template and class names (a local checkpoint file also by its
            size and modification time). None disables caching. Random-init
            models (``pretrained=None`` and no ``model``) are never cached.
        model: An already-built open_clip model to encode with (its text
            tower is used as is, e.g. after loading weights).
        device: Device for encoding.
        batch_size: Prompts per forward pass.

    Returns:
        (C, D) float32 tensor on CPU, rows of unit L2 norm.
    """
    if '{}' not in template:
        raise ValueError(f'template must contain "{{}}", got {template!r}')
    class_names = list(class_names)
    cacheable = cache_dir is not None and (pretrained is not None)
    path = None
    if cacheable:
        path = osp.join(cache_dir, f'{model_name}-'
                        f'{_cache_key(model_name, pretrained, template, class_names)}.npy')
        if osp.isfile(path):
            arr = np.load(path)
            if arr.shape[0] == len(class_names):
                return torch.from_numpy(arr).float()
    import open_clip

    # model names that mlrpl_mm adds to open_clip (e.g. 'mlrpl-tiny-vit')
    register_open_clip_configs()
    if model is None:
        model = open_clip.create_model(model_name, pretrained=pretrained)
    tokenizer = open_clip.get_tokenizer(model_name)
    model = model.to(device).eval()
    feats = []
    prompts = [template.format(n.replace('_', ' ')) for n in class_names]
    for i in range(0, len(prompts), batch_size):
        tok = tokenizer(prompts[i:i + batch_size]).to(device)
        feats.append(model.encode_text(tok).float().cpu())
    emb = torch.nn.functional.normalize(torch.cat(feats, 0), dim=-1)
    if cacheable:
        os.makedirs(cache_dir, exist_ok=True)
        tmp = path + f'.tmp{os.getpid()}.npy'
        np.save(tmp, emb.numpy())
        os.replace(tmp, path)
        print_log(f'cached {len(class_names)} class embeddings at {path}',
                  logger='current')
    return emb


def encode_label_names(class_names: Sequence[str],
                       model_name: str = 'ViT-B-16',
                       pretrained: Optional[str] = None,
                       template: str = DEFAULT_TEMPLATE,
                       model_cfg: Optional[dict] = None,
                       quick_gelu: Optional[bool] = None,
                       seed: Optional[int] = 0,
                       who: str = 'text_encoder',
                       **kwargs) -> torch.Tensor:
    """:func:`encode_class_names` with the activation of the weights.

    The text model is chosen by :func:`resolve_text_model` (``quick_gelu``
    None = auto: QuickGELU for the OpenAI weights, the same choice as the
    image tower) or built from ``model_cfg`` (random init). ``seed``: a
    random-init tower is built under this seed, so that two builds give the
    same embeddings (None: the global RNG). ``kwargs`` go to
    :func:`encode_class_names` (``cache_dir``...).

    Returns:
        (C, D) float32 on CPU, rows of unit L2 norm.
    """
    with seeded(seed):
        model = None
        key_weights = pretrained
        if model_cfg is not None:
            model = build_custom_clip(model_cfg, pretrained, quick_gelu, who)
            model_name = 'custom'
        else:
            model_name, model, key_weights = resolve_text_model(
                model_name, pretrained, quick_gelu, who)
        emb = encode_class_names(class_names, model_name=model_name,
                                 pretrained=key_weights, template=template,
                                 model=model, **kwargs)
    return emb
