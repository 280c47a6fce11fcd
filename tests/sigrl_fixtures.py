"""Shared pieces of the SigRL / CLIP tests: a tiny open_clip config, a tiny
:class:`SigRLHead` and partial-label data samples."""
import os.path as osp

import numpy as np
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401

#: the repository root
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

TINY_CLIP = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=2, width=32, patch_size=8,
                    head_width=16),
    text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=2,
                  layers=1))


def tiny_sigrl_head(**kw):
    cfg = dict(type='SigRLHead', class_names=['cat', 'dog', 'car'],
               text_encoder=dict(model_cfg=TINY_CLIP), embed_dims=32, topk=3,
               gmc=dict(type='SigRLGMC', in_channels=32, hidden_channels=16,
                        num_heads=2),
               svfr=dict(type='SigRLSVFR', embed_dims=32, class_chunk=2))
    cfg.update(kw)
    return MODELS.build(cfg)


def partial_samples(labels):
    out = []
    for i, row in enumerate(labels):
        ds = DataSample(metainfo=dict(sample_idx=i))
        ds.set_field(np.asarray(row, np.int8), 'partial_label')
        out.append(ds)
    return out
