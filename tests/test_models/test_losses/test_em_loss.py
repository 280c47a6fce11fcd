"""SPMLEMLoss (EM) on hand-computed values."""
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


def test_em_loss_hand_values():
    logits = torch.tensor([[0.0, L3], [-L3, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    loss = build(type='SPMLEMLoss', alpha=0.2)(logits, target)
    ent = 0.75 * lg(0.75) + 0.25 * lg(0.25)
    expected = (-lg(0.5) + 0.2 * ent + 0.2 * ent - lg(0.5)) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # gradient of the unknown term pushes p towards 0.5 (entropy maximum)
    x = torch.tensor([[2.0]], requires_grad=True)
    build(type='SPMLEMLoss')(x, torch.zeros(1, 1)).backward()
    assert x.grad.item() > 0


def test_old_registry_name_builds_the_same_class():
    from mlrpl_mm.models.losses import EMLoss, SPMLEMLoss
    from mlrpl_mm.models.losses.spml_losses import EMLoss as OldImport
    assert EMLoss is SPMLEMLoss and OldImport is SPMLEMLoss
    old = build(type='EMLoss', alpha=0.1)
    assert type(old) is SPMLEMLoss and old.alpha == 0.1
    logits = torch.randn(3, 4)
    target = torch.tensor([[1.0, 0, -1, 0]] * 3)
    assert torch.equal(old(logits, target),
                       build(type='SPMLEMLoss', alpha=0.1)(logits, target))
