"""WeakAssumeNegativeLoss (WAN) on hand-computed values."""
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


def test_wan_hand_values():
    logits = torch.tensor([[0.0, L3, -L3]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    wan = build(type='WeakAssumeNegativeLoss')(logits, target)
    assert wan.item() == pytest.approx(
        (-lg(0.5) - lg(0.25) / 2 - lg(0.75) / 2) / 3, abs=1e-7)
    # eps=None: the exact BCE
    wan = build(type='WeakAssumeNegativeLoss', eps=None)(logits, target)
    assert wan.item() == pytest.approx(
        (math.log(2) + math.log(4) / 2 - math.log(0.75) / 2) / 3, abs=1e-6)
    with pytest.raises(ValueError, match='C >= 2'):
        build(type='WeakAssumeNegativeLoss')(logits[:, :1], target[:, :1])
