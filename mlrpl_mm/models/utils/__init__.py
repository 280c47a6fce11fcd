from .clip_text import DEFAULT_TEMPLATE, encode_class_names
from .clip_text_tower import (CLIPTextTower, build_clip_model,
                              get_clip_tokenizer)

__all__ = ['DEFAULT_TEMPLATE', 'encode_class_names', 'CLIPTextTower',
           'build_clip_model', 'get_clip_tokenizer']
