"""DualCoOp's learnable positive / negative prompts, encoded by the frozen
CLIP text tower."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch.utils.checkpoint import checkpoint

from mlrpl_mm.models.utils.clip_text import (CLIPTextTower,
                                             build_clip_model,
                                             get_clip_tokenizer)

#: The placeholder word of the context slots (one BPE token, replaced by the
#: learnable vectors; CoOp's convention).
PLACEHOLDER = 'X'


@MODELS.register_module()
class DualPromptLearner(BaseModule):
    r"""Positive and negative learnable prompts per class (DualCoOp).

    `DualCoOp: Fast Adaptation to Multi-Label Recognition with Limited
    Annotations <https://arxiv.org/abs/2206.09541>`_ (NeurIPS 2022).

    Each class c gets two prompts of M learnable context vectors followed by
    its name, :math:`[v^\pm_1 \dots v^\pm_M][\mathrm{CLASS}_c].`: the
    prompt ``"X X ... X {name}."`` is tokenised by open_clip, embedded by the
    frozen token embedding, and the M placeholder embeddings (positions
    1..M, after the start token) are replaced by the context
    :math:`V^\pm` ((M, W) shared by all classes, or (C, M, W) with
    ``class_specific=True``). The frozen text tower
    (:class:`CLIPTextTower`) then gives

    .. math::
        t^\pm_c = \frac{T([v^\pm_1 \dots v^\pm_M][\mathrm{CLASS}_c])}
        {\|T(\cdot)\|_2} \in \mathbb{R}^D

    Only :math:`V^+, V^-` train: 2 M W parameters (shared) or 2 C M W
    (class-specific; 2 x 80 x 16 x 512 = 1.31 M for COCO with CLIP's 512-d
    text tower).

    Memory: the 2C prompts go through the text transformer in chunks of
    ``class_chunk`` sequences; in training each chunk is recomputed in the
    backward pass (activation checkpointing), so activations of at most one
    chunk are alive at a time and the result equals the unchunked one. In
    eval mode without gradients the features are computed once and cached
    until the contexts (or the weights) change.

    Args:
        num_classes (int): C.
        class_names (list[str], optional): C class names in dataset order;
            None: set later with :meth:`set_class_names` (e.g. by
            ``PromptClassNamesHook`` from the dataset) or restored from a
            checkpoint (the token ids are a persistent buffer).
        text_encoder (dict, optional): The open_clip text tower, see
            :func:`~mlrpl_mm.models.utils.clip_text.build_clip_model`
            (``model_name``, ``pretrained``, ``model_cfg``, ``quick_gelu``,
            ``cache_dir``, ``fallback_to_random``, ``seed``).
        n_ctx (int): M, context tokens per prompt. Defaults to 16.
        class_specific (bool): One context per class (C, M, W) instead of a
            shared (M, W). Defaults to False.
        ctx_init_std (float): Normal init std of the contexts. Defaults to
            0.02 (CoOp's random init).
        class_chunk (int, optional): Prompts per text-transformer call.
            None: all 2C at once. Defaults to 64.
        grad_checkpoint (bool): Recompute each chunk in backward (bounded
            memory). Defaults to True.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 class_names: Optional[Sequence[str]] = None,
                 text_encoder: Optional[Dict] = None,
                 n_ctx: int = 16,
                 class_specific: bool = False,
                 ctx_init_std: float = 0.02,
                 class_chunk: Optional[int] = 64,
                 grad_checkpoint: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_classes <= 0:
            raise ValueError(f'DualPromptLearner: num_classes must be '
                             f'positive, got {num_classes}')
        if n_ctx <= 0:
            raise ValueError(f'DualPromptLearner: n_ctx must be positive, got '
                             f'{n_ctx}')
        if class_chunk is not None and class_chunk <= 0:
            raise ValueError('DualPromptLearner: class_chunk must be positive '
                             f'or None, got {class_chunk}')
        self.text_encoder_cfg = dict(text_encoder or {})
        self.text = CLIPTextTower(build_clip_model(
            self.text_encoder_cfg, who='DualPromptLearner.text_encoder'))
        self.model_name = None if 'model_cfg' in self.text_encoder_cfg else \
            self.text_encoder_cfg.get('model_name', 'RN101')
        self.num_classes = num_classes
        self.n_ctx = n_ctx
        self.class_specific = class_specific
        self.class_chunk = class_chunk
        self.grad_checkpoint = grad_checkpoint
        width = self.text.width
        shape = (num_classes, n_ctx, width) if class_specific else \
            (n_ctx, width)
        self.ctx_pos = nn.Parameter(torch.randn(shape) * ctx_init_std)
        self.ctx_neg = nn.Parameter(torch.randn(shape) * ctx_init_std)
        # (C, T) token ids of "X ... X {name}."; zeros until names are set
        self.register_buffer('token_ids', torch.zeros(
            num_classes, self.text.context_length, dtype=torch.long))
        self.class_names: Optional[List[str]] = None
        self._cache = None
        self._register_load_state_dict_pre_hook(self._drop_cache)
        if class_names is not None:
            self.set_class_names(class_names)

    # ------------------------------------------------------------------
    @property
    def embed_dims(self) -> int:
        """D of the text features."""
        return self.text.embed_dims

    @property
    def has_class_names(self) -> bool:
        """Whether prompts exist (names set, or token ids loaded)."""
        return bool(self.token_ids[:, 0].ne(0).all())

    def _drop_cache(self, *args, **kwargs) -> None:
        self._cache = None

    def train(self, mode: bool = True) -> 'DualPromptLearner':
        self._cache = None
        return super().train(mode)

    def tokenize(self, class_names: Sequence[str]) -> torch.Tensor:
        """(C, T) token ids of ``"X ... X {name}."`` (underscores -> spaces).

        Raises:
            ValueError: a prompt does not fit the context length.
        """
        tokenizer = get_clip_tokenizer(self.model_name)
        length = self.text.context_length
        prefix = ' '.join([PLACEHOLDER] * self.n_ctx)
        prompts = [f'{prefix} {str(n).replace("_", " ")}.'
                   for n in class_names]
        base = getattr(tokenizer, 'encode', None)
        for name, prompt in zip(class_names, prompts):
            if base is not None and len(base(prompt)) + 2 > length:
                raise ValueError(
                    f'DualPromptLearner: the prompt of class {name!r} has '
                    f'{len(base(prompt)) + 2} tokens with n_ctx={self.n_ctx} '
                    f'context tokens, more than the text context length '
                    f'{length}; shorten the name or lower n_ctx')
        ids = tokenizer(prompts, context_length=length) if base is not None \
            else tokenizer(prompts)
        ids = torch.as_tensor(ids, dtype=torch.long)
        slot = ids[:, 1:1 + self.n_ctx]
        if not (slot == slot[0, 0]).all():
            raise RuntimeError('DualPromptLearner: the placeholder word '
                               f'{PLACEHOLDER!r} is not one token per slot '
                               'for this tokenizer')
        return ids

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Tokenise the C class names (in dataset order)."""
        class_names = [str(n) for n in class_names]
        if len(class_names) != self.num_classes:
            raise ValueError(
                f'DualPromptLearner: {len(class_names)} class names given but '
                f'num_classes={self.num_classes}')
        self.token_ids.copy_(self.tokenize(class_names).to(
            self.token_ids.device))
        self.class_names = class_names
        self._cache = None

    # ------------------------------------------------------------------
    def assemble(self, ctx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Token embeddings of the prompts of classes ``rows`` (n,):
        [SOT][ctx_1..ctx_M][name tokens . EOT pad...], (n, T, W)."""
        emb = self.text.embed_tokens(self.token_ids[rows])
        ctx = ctx[rows] if ctx.dim() == 3 else \
            ctx.unsqueeze(0).expand(rows.numel(), -1, -1)
        return torch.cat([emb[:, :1], ctx.to(emb.dtype),
                          emb[:, 1 + self.n_ctx:]], dim=1)

    def _encode_rows(self, ctx: torch.Tensor, rows: torch.Tensor
                     ) -> torch.Tensor:
        eot = self.token_ids[rows].argmax(dim=-1)
        return self.text(self.assemble(ctx, rows), eot)

    def encode(self, ctx: torch.Tensor,
               class_chunk: Optional[int] = None) -> torch.Tensor:
        """Text features (C, D), L2-normalised, of the prompts with context
        ``ctx`` (``ctx_pos`` or ``ctx_neg``)."""
        if not self.has_class_names:
            raise RuntimeError(
                'DualPromptLearner has no class names: give class_names, '
                'load a checkpoint, or add dict(type="PromptClassNamesHook") '
                'to custom_hooks to take them from the dataset')
        chunk = class_chunk if class_chunk is not None else self.class_chunk
        chunk = chunk or self.num_classes
        device = self.token_ids.device
        use_ckpt = self.grad_checkpoint and torch.is_grad_enabled() and \
            ctx.requires_grad and chunk < self.num_classes
        feats = []
        for start in range(0, self.num_classes, chunk):
            rows = torch.arange(start, min(start + chunk, self.num_classes),
                                device=device)
            if use_ckpt:
                feats.append(checkpoint(self._encode_rows, ctx, rows,
                                        use_reentrant=False))
            else:
                feats.append(self._encode_rows(ctx, rows))
        return F.normalize(torch.cat(feats, 0).float(), dim=-1)

    def _cache_key(self):
        return (self.ctx_pos._version, self.ctx_neg._version,
                self.ctx_pos.data_ptr(), self.ctx_neg.data_ptr(),
                self.token_ids._version, self.token_ids.data_ptr(),
                str(self.ctx_pos.device))

    def forward(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(t_pos (C, D), t_neg (C, D)), L2-normalised float32."""
        if torch.is_grad_enabled():
            self._cache = None
            return self.encode(self.ctx_pos), self.encode(self.ctx_neg)
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, (self.encode(self.ctx_pos),
                                 self.encode(self.ctx_neg)))
        return self._cache[1]
