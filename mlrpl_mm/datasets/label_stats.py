"""Label statistics computed from the known (partial) training labels."""
import numpy as np


def cooccurrence_graph(partial_labels: np.ndarray,
                       chunk: int = 16384) -> np.ndarray:
    r"""Conditional co-occurrence graph of the known positives.

    .. math:: A_{ij} = \frac{\#\{n : y_{ni} = +1,\ y_{nj} = +1\}}
                          {\#\{n : y_{ni} = +1\}}

    computed from the partial training labels only (never the test set,
    never hidden full labels). A class with no known positive gets a zero
    row (the reference divides by zero there and produces NaN). The diagonal
    is 1 for every class with at least one known positive.

    The counts are accumulated over blocks of ``chunk`` rows (float32
    products of 0/1 blocks are exact integers below 2**24; the running sum
    is float64), so the extra memory is a (chunk, C) block, not an (N, C)
    float64 copy (NUS-WIDE, 150k x 1006: 1.2 GB), with the same result.

    Args:
        partial_labels: (N, C) array in {+1, -1, 0}.
        chunk: Rows per block (at most 2**24). Defaults to 16384.

    Returns:
        (C, C) float32 array.
    """
    y = np.asarray(partial_labels)
    if y.ndim != 2:
        raise ValueError(f'partial_labels must be (N, C), got shape {y.shape}')
    if not 0 < chunk <= 2**24:
        raise ValueError(f'chunk must be in [1, 2**24], got {chunk}')
    counts = np.zeros((y.shape[1], y.shape[1]), np.float64)
    for start in range(0, y.shape[0], chunk):
        pos = (y[start:start + chunk] == 1).astype(np.float32)
        counts += pos.T @ pos  # (C, C): co-positive counts of the block
    n_pos = np.diag(counts).copy()
    with np.errstate(divide='ignore', invalid='ignore'):
        graph = np.where(n_pos[:, None] > 0, counts / np.maximum(n_pos, 1)[:, None], 0.0)
    return graph.astype(np.float32)
