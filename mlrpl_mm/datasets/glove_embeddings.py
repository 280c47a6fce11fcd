"""Class embeddings from GloVe word vectors
(``tools/data/make_class_embeddings.py``)."""
import re
from typing import Dict, Optional, Sequence

import numpy as np


def glove_class_embeddings(class_names: Sequence[str], glove_file: str,
                           dim: Optional[int] = None) -> np.ndarray:
    """(C, d) class embeddings: the mean GloVe vector of the words of each
    class name (split on spaces, ``_`` and ``-``; lower-cased).

    Reads the GloVe text file once, keeping only the needed words.

    Raises:
        ValueError: a word of a class name is not in the file (named), or a
            line of the file is malformed (named).
    """
    words = {c: [w for w in re.split(r'[\s_\-]+', c.lower()) if w]
             for c in class_names}
    needed = {w for ws in words.values() for w in ws}
    vectors: Dict[str, np.ndarray] = {}
    with open(glove_file, encoding='utf8') as f:
        for lineno, line in enumerate(f, 1):
            word, _, rest = line.rstrip('\n').partition(' ')
            if word in needed and word not in vectors:
                try:
                    vec = np.array(rest.split(), dtype=np.float32)
                except ValueError:
                    raise ValueError(f'{glove_file}, line {lineno}: cannot '
                                     'parse the vector')
                if dim is not None and vec.size != dim:
                    raise ValueError(f'{glove_file}, line {lineno}: '
                                     f'{vec.size} values, expected {dim}')
                vectors[word] = vec
    missing = sorted(needed - set(vectors))
    if missing:
        raise ValueError(f'{glove_file} has no vector for {missing[:10]} '
                         f'({len(missing)} word(s) missing)')
    dims = {v.size for v in vectors.values()}
    if len(dims) != 1:
        raise ValueError(f'{glove_file}: vectors of different sizes {dims}')
    return np.stack([np.mean([vectors[w] for w in words[c]], 0)
                     for c in class_names]).astype(np.float32)
