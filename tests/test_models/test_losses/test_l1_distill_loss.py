"""SigRLL1DistillLoss on hand-computed values."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401


def build(**cfg):
    return MODELS.build(cfg)


def test_l1_distill():
    g = torch.tensor([[1.0, -2.0]], requires_grad=True)
    t = torch.tensor([[0.5, 0.0]], requires_grad=True)
    loss = build(type='SigRLL1DistillLoss', loss_weight=2.0)(g, t)
    assert loss.item() == pytest.approx(2.0 * (0.5 + 2.0) / 2)
    loss.backward()
    assert t.grad is None
    with pytest.raises(ValueError, match='shapes'):
        build(type='SigRLL1DistillLoss')(g, torch.zeros(1, 3))


def test_old_registry_name_builds_the_same_class():
    from mlrpl_mm.models.losses import L1DistillLoss, SigRLL1DistillLoss
    from mlrpl_mm.models.losses.spml_losses import L1DistillLoss as OldImport
    assert L1DistillLoss is SigRLL1DistillLoss
    assert OldImport is SigRLL1DistillLoss
    old = build(type='L1DistillLoss', loss_weight=3.0)
    assert type(old) is SigRLL1DistillLoss and old.loss_weight == 3.0
