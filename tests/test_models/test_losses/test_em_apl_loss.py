"""EMAPLLoss (EM + APL): loss values and the pseudo-label update."""
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


def test_em_apl_loss_and_label_update():
    loss = build(type='EMAPLLoss', alpha=0.2, beta=0.5, warmup_epoch=1,
                 neg_proportion=1.0)
    logits = torch.tensor([[0.0, L3], [-L3, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    ent75 = 0.75 * lg(0.75) + 0.25 * lg(0.25)
    em = (-lg(0.5) + 0.2 * ent75 + 0.2 * ent75 + 0.2 * 2 * 0.5 * lg(0.5)) / 4
    # no pseudo labels yet: plain EM, sample_idx not needed
    assert loss(logits, target).item() == pytest.approx(em, abs=1e-6)

    # APL update over a 4-sample training set, 3 epochs, warm-up 1:
    # per class int(1.0 * U_c / (3 - 1)) lowest-probability unknowns
    probs = torch.tensor([[0.9, 0.5], [0.1, 0.4], [0.3, 0.2], [0.2, 0.6]])
    labels = torch.tensor([[1, 0], [0, 0], [0, 0], [0, 0]])
    added = loss.update_pseudo_labels(probs, labels, epoch=0, max_epochs=3)
    # class 0: U=3 -> 1 (sample 1, p=0.1); class 1: U=4 -> 2 (samples 2, 1)
    assert added == 3
    assert loss.pseudo_mask.tolist() == [[False, False], [True, True],
                                         [False, True], [False, False]]
    assert loss.pseudo_soft[1, 0].item() == pytest.approx(0.1)
    assert loss.pseudo_soft[2, 1].item() == pytest.approx(0.2)
    # second step takes the next lowest among the remaining unknowns
    assert loss.update_pseudo_labels(probs, labels, 1, 3) == 3
    assert loss.pseudo_mask[:, 0].tolist() == [False, True, False, True]
    assert loss.pseudo_mask[:, 1].all()

    # loss with pseudo labels: sample 1 (batch row 1) class 0 is a soft
    # negative with s = 0.1 -> beta * (-s log p - (1 - s) log(1 - p))
    loss2 = build(type='EMAPLLoss', alpha=0.2, beta=0.5, warmup_epoch=1,
                  neg_proportion=1.0)
    loss2.init_state(2, 2)
    loss2.pseudo_mask[1, 0] = True
    loss2.pseudo_soft[1, 0] = 0.1
    val = loss2(logits, target, sample_idx=torch.tensor([0, 1]))
    pl = 0.5 * (-0.1 * lg(0.25) - 0.9 * lg(0.75))
    exp = (-lg(0.5) + 0.2 * ent75 + pl + 0.2 * 0.5 * 2 * lg(0.5)) / 4
    assert val.item() == pytest.approx(exp, abs=1e-6)
    with pytest.raises(ValueError, match='sample_idx'):
        loss2(logits, target)
    # before the warm-up nothing changes; state survives a state-dict trip
    loss3 = build(type='EMAPLLoss', warmup_epoch=5)
    assert loss3.update_pseudo_labels(probs, labels, 2, 10) == 0
    loss3.load_state_dict(loss.state_dict())
    assert torch.equal(loss3.pseudo_mask, loss.pseudo_mask)
