"""The frozen open_clip text tower, applied to token *embeddings*.

Prompt learning (CoOp / DualCoOp) replaces some token embeddings of a
tokenised prompt by learnable vectors, so the text tower has to run from the
embedding stage on. :class:`CLIPTextTower` holds open_clip's own modules
(token embedding, positional embedding, transformer, ``ln_final``,
``text_projection``) and runs them exactly as ``CLIP.encode_text`` does after
its token-embedding lookup.
"""
import torch
import torch.nn as nn


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
