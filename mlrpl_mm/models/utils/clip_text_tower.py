"""The frozen open_clip text tower, applied to token *embeddings*.

Prompt learning (CoOp / DualCoOp) replaces some token embeddings of a
tokenised prompt by learnable vectors, so the text tower has to run from the
embedding stage on. :class:`CLIPTextTower` holds open_clip's own modules
(token embedding, positional embedding, transformer, ``ln_final``,
``text_projection``) and runs them exactly as ``CLIP.encode_text`` does after
its token-embedding lookup.
"""
import logging
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log

TEXT_ENCODER_KEYS = ('model_name', 'pretrained', 'model_cfg', 'quick_gelu',
                     'cache_dir', 'fallback_to_random', 'seed')


def build_clip_model(cfg: Optional[Dict] = None, who: str = 'text_encoder'
                     ) -> nn.Module:
    """An open_clip ``CLIP`` model for its text tower.

    ``cfg`` keys: ``model_name`` (default ``'RN101'``), ``pretrained``
    (None = random init, an open_clip tag or a checkpoint path),
    ``model_cfg`` (an explicit open_clip config, random init only),
    ``quick_gelu`` (None = auto: QuickGELU for weights trained with it, e.g.
    ``'openai'``, as :class:`OpenCLIPBackbone`), ``cache_dir``,
    ``fallback_to_random`` (False: raise when the weights cannot be loaded;
    True: warn loudly and use a random init, for offline tests / demos
    only), ``seed`` (random init under this seed, default 0, so two builds
    give the same tower).
    """
    import open_clip

    from mlrpl_mm.models.backbones.open_clip_backbone import (
        register_open_clip_configs, resolve_quick_gelu)
    cfg = dict(cfg or {})
    unknown = set(cfg) - set(TEXT_ENCODER_KEYS)
    if unknown:
        raise KeyError(f'{who}: unknown keys {sorted(unknown)}; allowed: '
                       f'{list(TEXT_ENCODER_KEYS)}')
    register_open_clip_configs()
    model_name = cfg.get('model_name', 'RN101')
    pretrained = cfg.get('pretrained', None)
    model_cfg = cfg.get('model_cfg', None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get('seed', 0)))
        if model_cfg is not None:
            if pretrained is not None:
                raise ValueError(f'{who}: pretrained weights need a '
                                 'model_name, not a model_cfg')
            from open_clip.model import CLIP
            return CLIP(**model_cfg,
                        quick_gelu=bool(cfg.get('quick_gelu', False)))
        if model_name not in open_clip.list_models():
            raise ValueError(f'{who}: unknown open_clip model '
                             f'{model_name!r}; pass model_cfg for a custom '
                             'one')
        quick = resolve_quick_gelu(model_name, pretrained,
                                   cfg.get('quick_gelu', None), who)
        try:
            return open_clip.create_model(model_name, pretrained=pretrained,
                                          force_quick_gelu=quick,
                                          cache_dir=cfg.get('cache_dir'))
        except RuntimeError as err:
            if not cfg.get('fallback_to_random', False) or pretrained is None:
                raise
            print_log(f'{who}: could not load the {model_name} text tower '
                      f'{pretrained!r} ({err}); RANDOM text tower instead '
                      '(fallback_to_random=True): the prompts carry no CLIP '
                      'semantics', logger='current', level=logging.WARNING)
            return open_clip.create_model(model_name, pretrained=None,
                                          force_quick_gelu=quick)


def get_clip_tokenizer(model_name: Optional[str]):
    """open_clip's tokenizer of ``model_name`` (CLIP's BPE tokenizer for a
    custom ``model_cfg``: ``model_name=None``). Offline."""
    import open_clip
    if model_name is None:
        return open_clip.SimpleTokenizer()
    return open_clip.get_tokenizer(model_name)


class CLIPTextTower(nn.Module):
    r"""Frozen open_clip text tower on token embeddings.

    For token embeddings X (N, T, W) of tokenised prompts whose end-of-text
    token sits at position :math:`e_n`:

    .. math::
        t_n = \mathrm{LN}_{final}\big(\mathrm{Transformer}(X_n + E_{pos})
        \big)_{e_n} W_{text}

    which equals ``CLIP.encode_text(tokens)`` when X is the token-embedding
    lookup of ``tokens`` (open_clip's 'argmax' pooling: the EOT id is the
    largest). All parameters are frozen and kept in the state dict; the
    module stays in eval mode.

    Args:
        clip_model: An open_clip ``CLIP`` (its image tower is dropped).
    """

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        pool = getattr(clip_model, 'text_pool_type', 'argmax')
        if pool != 'argmax' or not hasattr(clip_model, 'token_embedding'):
            raise NotImplementedError(
                'CLIPTextTower: needs an open_clip CLIP text tower with '
                f"'argmax' (EOT) pooling, got pool type {pool!r} / "
                f'{type(clip_model).__name__}')
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        mask = getattr(clip_model, 'attn_mask', None)
        self.register_buffer('attn_mask', mask, persistent=False)
        # CLIP's learned temperature, exp() of it scales the logits
        self.register_buffer('logit_scale',
                             clip_model.logit_scale.detach().clone().reshape(()))
        for p in self.parameters():
            p.requires_grad = False
        self.eval()

    @property
    def context_length(self) -> int:
        return int(self.positional_embedding.shape[0])

    @property
    def width(self) -> int:
        """W, the token-embedding width (the size of a context vector)."""
        return int(self.token_embedding.weight.shape[1])

    @property
    def embed_dims(self) -> int:
        """D, the joint image-text embedding size."""
        proj = self.text_projection
        if isinstance(proj, nn.Linear):
            return proj.out_features
        return int(proj.shape[1]) if proj is not None else self.width

    def train(self, mode: bool = True) -> 'CLIPTextTower':
        return super().train(False)

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, T) token ids -> (N, T, W) token embeddings."""
        return self.token_embedding(tokens)

    def forward(self, embeds: torch.Tensor, eot_index: torch.Tensor
                ) -> torch.Tensor:
        """Args: embeds (N, T, W) token embeddings, eot_index (N,) position
        of each sequence's EOT token. Returns (N, D), not normalised."""
        cast = self.transformer.get_cast_dtype() \
            if hasattr(self.transformer, 'get_cast_dtype') else embeds.dtype
        x = embeds.to(cast) + self.positional_embedding.to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        proj = self.text_projection
        if proj is None:
            return x
        if isinstance(proj, nn.Linear):
            return proj(x)
        return x @ proj
