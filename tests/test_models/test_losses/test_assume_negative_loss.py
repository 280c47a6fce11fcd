"""AssumeNegativeLoss (AN) on hand-computed values."""
import math

import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401

L3 = math.log(3.0)          # sigmoid(L3) = 0.75, sigmoid(-L3) = 0.25
EPS = 1e-5


def lg(x):
    return math.log(x + EPS)


def build(**cfg):
    return MODELS.build(cfg)


def test_an_hand_values():
    logits = torch.tensor([[0.0, L3, -L3]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    # the reference's neg_log(x) = -log(x + 1e-5)
    an = build(type='AssumeNegativeLoss')(logits, target)
    assert an.item() == pytest.approx(
        (-lg(0.5) - lg(0.25) - lg(0.75)) / 3, abs=1e-7)
    # eps=None: the exact BCE
    an = build(type='AssumeNegativeLoss', eps=None)(logits, target)
    assert an.item() == pytest.approx(
        (math.log(2) + math.log(4) + -math.log(0.75)) / 3, abs=1e-6)
    # a confident wrong prediction saturates at -log(1e-5) as the reference
    # (the exact BCE would be 30)
    big = torch.tensor([[30.0, -30.0]])
    t = torch.tensor([[0.0, 1.0]])
    assert build(type='AssumeNegativeLoss')(big, t).item() == pytest.approx(
        -math.log(1e-5), rel=1e-4)
    assert build(type='AssumeNegativeLoss', eps=None)(big, t).item() == \
        pytest.approx(30.0, rel=1e-6)
    with pytest.raises(ValueError, match=r'\(B, C\)'):
        build(type='AssumeNegativeLoss')(logits, target[:, :2])
