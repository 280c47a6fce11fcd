"""The CLIP text side, one module in four parts.

* :mod:`.model`: the open_clip model behind a text tower (QuickGELU for the
  OpenAI weights, the image tower's choice) and its tokenizer.
* :mod:`.encode`: class-name prompts -> (C, D) embeddings, disk-cached
  (``CLIPClassEmbedding``, SigRL).
* :mod:`.label_embed`: a label set's embeddings from a file or a
  ``text_encoder`` config (SigRL).
* :mod:`.tower`: the frozen text tower on token *embeddings* (DualCoOp's
  learnable prompts).
"""
from .encode import (DEFAULT_CACHE_DIR, DEFAULT_TEMPLATE, encode_class_names,
                     encode_label_names)
from .label_embed import (LABEL_ENCODER_KEYS, build_label_embed,
                          load_embedding_file)
from .model import (TEXT_ENCODER_KEYS, build_clip_model, build_custom_clip,
                    get_clip_tokenizer, resolve_text_model, seeded)
from .tower import CLIPTextTower

__all__ = [
    'DEFAULT_CACHE_DIR', 'DEFAULT_TEMPLATE', 'encode_class_names',
    'encode_label_names', 'LABEL_ENCODER_KEYS', 'build_label_embed',
    'load_embedding_file', 'TEXT_ENCODER_KEYS', 'build_clip_model',
    'build_custom_clip', 'get_clip_tokenizer', 'resolve_text_model',
    'seeded', 'CLIPTextTower'
]
