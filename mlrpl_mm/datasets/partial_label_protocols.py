"""The partial-label protocols of docs/equations/protocol.md as pure NumPy
functions.

* :func:`proportion_mask`: the "known proportion" protocol of the SSGRL family
  (bit-exact with the published VOC 2007 files).
* :func:`single_positive_labels`: the single-positive protocol of Cole et al.
  (CVPR 2021), and :func:`spml_train_val_split`, its 80/20 split.
* :func:`load_label_file` / :func:`save_label_file`: N x C matrices as text
  (comma separated, as the published files) or ``.npy``.
"""
import numbers
import os
import os.path as osp
from typing import Optional, Tuple

import numpy as np

from .base_multi_label import LABEL_DTYPE, check_label_matrix


def check_known_ratio(known_ratio,
                      owner: str = 'proportion protocol') -> float:
    """``known_ratio`` as a Python float in (0, 1].

    Accepts Python and numpy reals (``np.float32(0.3)`` is read as its
    shortest decimal, 0.3, so the mask equals the one of ``0.3``). Rejects
    bools (``True`` is not "100 %") and everything else with a
    ``ValueError`` naming ``owner`` and the value.
    """
    if isinstance(known_ratio, (bool, np.bool_)) or \
            not isinstance(known_ratio, numbers.Real):
        raise ValueError(f'{owner}: known_ratio must be in (0, 1] (an int '
                         'or float, not a bool), got '
                         f'{type(known_ratio).__name__} {known_ratio!r}')
    if isinstance(known_ratio, np.floating):
        value = float(str(known_ratio))  # shortest repr of its own precision
    else:
        value = float(known_ratio)
    if not 0 < value <= 1:
        raise ValueError(f'{owner}: known_ratio must be in (0, 1], got '
                         f'{known_ratio!r}')
    return value


def proportion_mask(full_labels: np.ndarray, known_ratio: float,
                    seed: int = 0) -> np.ndarray:
    r"""Keep every entry independently with probability ``known_ratio``.

    The reference procedure: ``np.random.seed(seed)``;
    :math:`m = \mathrm{random}(N, C)` (one uniform per entry, row-major);
    :math:`y_{ic} = L_{ic}` if :math:`m_{ic} < p` else 0. A private
    ``RandomState(seed)`` draws the same numbers as the seeded legacy global
    generator, without touching the global state.

    Args:
        full_labels: (N, C) in {+1, -1, 0}, in the reference dataset order.
        known_ratio: p in (0, 1]; 1 keeps every label.
        seed: Seed of the generator. Defaults to 0 (the published files).

    Returns:
        (N, C) int8 partial labels.
    """
    known_ratio = check_known_ratio(known_ratio, 'proportion_mask')
    labels = np.asarray(full_labels)
    m = np.random.RandomState(seed).random_sample(labels.shape)
    return np.where(m < known_ratio, labels, 0).astype(LABEL_DTYPE)


def single_positive_labels(full_labels: np.ndarray,
                           seed: int = 1200) -> np.ndarray:
    """One known positive per image, every other entry unknown (Cole et al.).

    A fresh ``RandomState(seed)``; for every image in order: shuffle the
    indices of its positives and keep the first, then shuffle the indices of
    its negatives with the same generator (that draw is made although no
    negative is kept; it changes the later draws). An image without any
    positive gets an all-unknown row.

    Args:
        full_labels: (N, C) in {+1, -1, 0} (0 counts neither as positive nor
            as negative).
        seed: Defaults to 1200 (the reference).

    Returns:
        (N, C) int8 in {+1, 0}.
    """
    labels = np.asarray(full_labels)
    rng = np.random.RandomState(seed)
    out = np.zeros(labels.shape, LABEL_DTYPE)
    for i in range(labels.shape[0]):
        pos = np.flatnonzero(labels[i] == 1)
        neg = np.flatnonzero(labels[i] == -1)
        rng.shuffle(pos)
        if pos.size:
            out[i, pos[0]] = 1
        rng.shuffle(neg)  # made for the generator state only
    return out


def spml_train_val_split(num_images: int, val_fraction: float = 0.2,
                         seed: int = 1200) -> Tuple[np.ndarray, np.ndarray]:
    """The 80/20 train/val split of the single-positive protocol.

    ``perm = RandomState(seed).permutation(N)``; ``n_val = round(0.2 N)``;
    train = sorted ``perm[:N - n_val]``, val = sorted ``perm[N - n_val:]``.

    Returns:
        (train_indices, val_indices), sorted int64 arrays.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f'val_fraction must be in [0, 1), got {val_fraction}')
    perm = np.random.RandomState(seed).permutation(num_images)
    n_val = int(np.round(val_fraction * num_images))
    n_train = num_images - n_val
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def load_label_file(path: str, num_rows: Optional[int] = None,
                    num_classes: Optional[int] = None) -> np.ndarray:
    """Load an N x C partial-label matrix (``.npy`` or text) and validate it.

    Text files: one row per image, entries separated by commas and/or
    whitespace (the format of the published ``train_proportion_P.txt``).

    Raises:
        FileNotFoundError: the file does not exist (named).
        ValueError: unparsable, wrong shape or values outside {-1, 0, 1}
            (the file is named).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'label file {path} not found')
    if path.endswith('.npy'):
        arr = np.load(path, allow_pickle=False)
    else:
        rows = []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append([int(float(v)) if float(v).is_integer()
                                 else float(v)
                                 for v in line.replace(',', ' ').split()])
                except ValueError:
                    raise ValueError(f'label file {path}, line {lineno}: '
                                     f'cannot parse {line[:80]!r}')
        if len({len(r) for r in rows}) > 1:
            lens = [len(r) for r in rows]
            bad = next(i for i, n in enumerate(lens) if n != lens[0])
            raise ValueError(f'label file {path}: row {bad} has {lens[bad]} '
                             f'entries, row 0 has {lens[0]}')
        arr = np.asarray(rows) if rows else np.zeros((0, num_classes or 0))
    return check_label_matrix(arr, f'label file {path}',
                              num_classes=num_classes, num_rows=num_rows)


def save_label_file(path: str, labels: np.ndarray) -> str:
    """Save an N x C label matrix as ``.npy`` or comma-separated text (the
    published format, e.g. ``-1,0,1``). Returns the path."""
    labels = check_label_matrix(labels, f'labels saved to {path}')
    d = osp.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    if path.endswith('.npy'):
        np.save(path, labels)
    else:
        np.savetxt(path, labels, fmt='%d', delimiter=',')
    return path
