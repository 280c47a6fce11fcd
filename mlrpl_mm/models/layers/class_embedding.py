"""Class-embedding sources for the semantic decoupling (C, E) tables.

Each source is a registered ``nn.Module`` whose ``forward()`` returns the
(C, E) class-embedding matrix and which exposes ``embed_dims`` (E) and
``num_classes`` (C).
"""
import os.path as osp
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from mlrpl_mm.models.utils.clip_text import (DEFAULT_CACHE_DIR,
                                             DEFAULT_TEMPLATE,
                                             encode_label_names)


class ClassEmbeddingTable(BaseModule):
    """Base of the class-embedding sources: ``self.embedding`` is the
    (C, E) table (a buffer or a parameter)."""

    embedding: torch.Tensor

    @property
    def num_classes(self) -> int:
        """C."""
        return self.embedding.shape[0]

    @property
    def embed_dims(self) -> int:
        """E."""
        return self.embedding.shape[1]

    def forward(self) -> torch.Tensor:
        """(C, E) embeddings."""
        return self.embedding


@MODELS.register_module()
class NpyClassEmbedding(ClassEmbeddingTable):
    """Fixed class embeddings read from a ``.npy`` file of shape (C, E).

    E.g. the 300-d GloVe vectors of the class names used by the reference.
    Stored as a persistent, frozen buffer (so checkpoints are
    self-contained).

    Args:
        path (str): ``.npy`` file holding a (C, E) float array.
        num_classes (int, optional): Expected C; checked against the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the array is not 2-D, not finite or has the wrong C.
    """

    def __init__(self, path: str, num_classes: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'NpyClassEmbedding: class-embedding file {path!r} not found; '
                'set class_embedding.path to a (num_classes, E) .npy file, or '
                "use type='CLIPClassEmbedding' / 'LearnableClassEmbedding'")
        arr = np.load(path, allow_pickle=False)
        if arr.ndim != 2:
            raise ValueError(f'NpyClassEmbedding: {path!r} holds an array of '
                             f'shape {arr.shape}; expected (num_classes, E)')
        if num_classes is not None and arr.shape[0] != num_classes:
            raise ValueError(
                f'NpyClassEmbedding: {path!r} has {arr.shape[0]} rows but the '
                f'model has num_classes={num_classes}; the file must have one '
                'row per class in dataset class order')
        if not np.isfinite(arr).all():
            raise ValueError(f'NpyClassEmbedding: {path!r} contains NaN/inf')
        self.path = path
        self.register_buffer('embedding', torch.from_numpy(
            np.ascontiguousarray(arr, dtype=np.float32)))


@MODELS.register_module()
class CLIPClassEmbedding(ClassEmbeddingTable):
    """CLIP text embeddings of ``template.format(class_name)`` (frozen).

    Computed once at build time with open_clip through
    :func:`mlrpl_mm.models.utils.encode_label_names` (cached on disk when
    ``pretrained`` is set) and kept as a persistent buffer. The text tower
    uses QuickGELU for weights trained with it (``pretrained='openai'``:
    the ``'-quickgelu'`` config), the choice of the image tower and of
    SigRL's label embeddings; before, the OpenAI weights were run with GELU
    here (issue #14).

    Args:
        class_names (Sequence[str]): The C class names in dataset order.
        model_name (str): open_clip model. Defaults to ``'ViT-B-16'``.
        pretrained (str, optional): open_clip pretrained tag or local
            checkpoint; None = random text tower (offline tests only).
        template (str): Prompt with one ``{}``.
        cache_dir (str, optional): Embedding cache directory.
        num_classes (int, optional): Expected C; checked.
        quick_gelu (bool, optional): QuickGELU in the text tower; None
            (default): auto, on for weights trained with it (OpenAI).
    """

    def __init__(self, class_names: Sequence[str], model_name: str = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 template: str = DEFAULT_TEMPLATE,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                 num_classes: Optional[int] = None,
                 quick_gelu: Optional[bool] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        class_names = list(class_names)
        if num_classes is not None and len(class_names) != num_classes:
            raise ValueError(
                f'CLIPClassEmbedding: {len(class_names)} class_names given but '
                f'num_classes={num_classes}')
        # seed=None: a random tower from the global RNG, as before
        emb = encode_label_names(class_names, model_name=model_name,
                                 pretrained=pretrained, template=template,
                                 quick_gelu=quick_gelu, seed=None,
                                 who='CLIPClassEmbedding',
                                 cache_dir=cache_dir)
        self.class_names = class_names
        self.register_buffer('embedding', emb.float().contiguous())


@MODELS.register_module()
class LearnableClassEmbedding(ClassEmbeddingTable):
    """A learnable (C, E) class-embedding table (offline fallback).

    Args:
        num_classes (int): C.
        embed_dims (int): E. Defaults to 300 (the GloVe size).
        std (float): Normal init std. Defaults to 1.0.
        requires_grad (bool): False gives a fixed random table.
    """

    def __init__(self, num_classes: int, embed_dims: int = 300,
                 std: float = 1.0, requires_grad: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes <= 0 or embed_dims <= 0:
            raise ValueError('LearnableClassEmbedding: num_classes and '
                             f'embed_dims must be positive, got {num_classes}, '
                             f'{embed_dims}')
        self.embedding = nn.Parameter(torch.randn(num_classes, embed_dims) * std,
                                      requires_grad=requires_grad)
