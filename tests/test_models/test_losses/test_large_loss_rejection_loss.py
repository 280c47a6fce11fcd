"""LargeLossRejectionLoss (LL-R) on hand-computed values."""
import math

import pytest
import torch
from mmengine.logging import MessageHub
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401

L3 = math.log(3.0)          # sigmoid(L3) = 0.75, sigmoid(-L3) = 0.25


def build(**cfg):
    return MODELS.build(cfg)


def test_large_loss_rejection_hand_values():
    logits = torch.tensor([[0.0, L3, -L3, 0.0]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    ll = build(type='LargeLossRejectionLoss', delta_rel=25.0)
    all_ = (math.log(2) + math.log(4) - math.log(0.75) + math.log(2)) / 4
    assert ll(logits, target, epoch=0).item() == pytest.approx(all_, abs=1e-6)
    # epoch 1: rate 25% -> k = 1 -> the largest unknown loss (log 4) goes
    kept = (math.log(2) - math.log(0.75) + math.log(2)) / 4
    assert ll(logits, target, epoch=1).item() == pytest.approx(kept, abs=1e-6)
    # epoch 2: k = 2 -> log 4 and log 2 (unknown) go; the positive stays
    kept2 = (math.log(2) - math.log(0.75)) / 4
    assert ll(logits, target, epoch=2).item() == pytest.approx(kept2, abs=1e-6)
    # the epoch is read from the message hub by default
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 1)
    try:
        assert ll(logits, target).item() == pytest.approx(kept, abs=1e-6)
    finally:
        hub.update_info('epoch', 0)
    assert build(type='LargeLossRejectionLoss').rejection_rate(10) == \
        pytest.approx(0.02)
