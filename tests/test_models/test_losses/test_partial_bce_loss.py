import math

import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.models.losses import partial_bce_with_logits


def _naive(logits, target):
    total, n = 0.0, 0
    for b in range(logits.shape[0]):
        for c in range(logits.shape[1]):
            t = float(target[b, c])
            if t == 0:
                continue
            p = 1 / (1 + math.exp(-float(logits[b, c])))
            y = max(t, 0.0)
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
            n += 1
    return total / n if n else 0.0


def test_matches_naive_formula_with_unknowns_and_soft_targets():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 6, generator=g, dtype=torch.float64)
    target = torch.randint(-1, 2, (4, 6), generator=g).double()
    target[0, 0] = 0.3  # a soft positive (blending)
    loss = MODELS.build(dict(type='PartialBCELoss'))(logits, target)
    assert loss.item() == pytest.approx(_naive(logits, target), abs=1e-6)


def test_gradient_is_zero_on_unknown_entries():
    logits = torch.randn(3, 5, requires_grad=True)
    target = torch.tensor([[1, 0, -1, 0, 1]] * 3, dtype=torch.float32)
    partial_bce_with_logits(logits, target).backward()
    assert torch.all(logits.grad[:, [1, 3]] == 0)
    assert torch.all(logits.grad[:, [0, 2, 4]] != 0)


def test_no_known_entry_gives_zero_not_nan():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = partial_bce_with_logits(logits, torch.zeros(2, 3))
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_half_precision_logits_computed_in_float32():
    logits = torch.full((1, 2), 30.0, dtype=torch.float16)
    loss = partial_bce_with_logits(logits, torch.tensor([[-1.0, 1.0]]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(15.0, rel=1e-3)
