from .clip_text import (CLIPTextTower, DEFAULT_TEMPLATE, build_clip_model,
                        build_label_embed, encode_class_names,
                        encode_label_names, get_clip_tokenizer,
                        load_embedding_file)

__all__ = ['DEFAULT_TEMPLATE', 'encode_class_names', 'encode_label_names',
           'build_label_embed', 'load_embedding_file', 'CLIPTextTower',
           'build_clip_model', 'get_clip_tokenizer']
