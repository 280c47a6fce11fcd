"""cooccurrence_graph accumulates the counts over row blocks (bounded
memory): the graph is bit-identical for every block size."""
import numpy as np
import pytest

from mlrpl_mm.datasets import cooccurrence_graph


def test_block_size_does_not_change_the_graph():
    rng = np.random.RandomState(0)
    y = rng.choice([-1, 0, 1], size=(101, 9), p=[0.5, 0.3, 0.2]).astype(
        np.int8)
    pos = (y == 1).astype(np.float64)
    counts = pos.T @ pos
    n_pos = np.diag(counts)
    ref = np.where(n_pos[:, None] > 0,
                   counts / np.maximum(n_pos, 1)[:, None], 0.0).astype(
                       np.float32)
    for chunk in (1, 7, 100, 101, 16384):
        np.testing.assert_array_equal(cooccurrence_graph(y, chunk=chunk), ref)
    with pytest.raises(ValueError, match='chunk'):
        cooccurrence_graph(y, chunk=0)
