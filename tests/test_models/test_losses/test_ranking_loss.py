"""SPMLRankingLoss (SigRL zero-shot ranking) on hand-computed values."""
import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401


def build(**cfg):
    return MODELS.build(cfg)


def test_ranking_loss_hand_values():
    scores = torch.tensor([[0.5, 0.2, 0.9], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]],
                          requires_grad=True)
    target = torch.tensor([[1.0, -1.0, -1.0], [1.0, 0.0, -1.0],
                           [0.0, 0.0, 0.0]])
    loss = build(type='SPMLRankingLoss')(scores, target)
    # image 0: (0.7 + 1.4) / 2; image 1: 1 / 1 (unknown class 1 ignored);
    # image 2: no pair -> 0
    assert loss.item() == pytest.approx((1.05 + 1.0 + 0.0) / 3, abs=1e-6)
    loss.backward()
    assert scores.grad[0].tolist() == pytest.approx([-1 / 3, 1 / 6, 1 / 6])
    assert scores.grad[1, 1].item() == 0


def test_old_registry_name_builds_the_same_class():
    from mlrpl_mm.models.losses import RankingLoss, SPMLRankingLoss
    from mlrpl_mm.models.losses.spml_losses import RankingLoss as OldImport
    assert RankingLoss is SPMLRankingLoss and OldImport is SPMLRankingLoss
    old = build(type='RankingLoss', margin=0.5)
    assert type(old) is SPMLRankingLoss and old.margin == 0.5
