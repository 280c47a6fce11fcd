"""SPML / zero-shot losses on hand-computed values."""
import math

import pytest
import torch
from mmengine.logging import MessageHub
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
    loss = build(type='EMLoss', alpha=0.2)(logits, target)
    ent = 0.75 * lg(0.75) + 0.25 * lg(0.25)
    expected = (-lg(0.5) + 0.2 * ent + 0.2 * ent - lg(0.5)) / 4
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # gradient of the unknown term pushes p towards 0.5 (entropy maximum)
    x = torch.tensor([[2.0]], requires_grad=True)
    build(type='EMLoss')(x, torch.zeros(1, 1)).backward()
    assert x.grad.item() > 0


def test_an_and_wan_hand_values():
    logits = torch.tensor([[0.0, L3, -L3]])
    target = torch.tensor([[1.0, 0.0, 0.0]])
    # the reference's neg_log(x) = -log(x + 1e-5)
    an = build(type='AssumeNegativeLoss')(logits, target)
    assert an.item() == pytest.approx(
        (-lg(0.5) - lg(0.25) - lg(0.75)) / 3, abs=1e-7)
    wan = build(type='WeakAssumeNegativeLoss')(logits, target)
    assert wan.item() == pytest.approx(
        (-lg(0.5) - lg(0.25) / 2 - lg(0.75) / 2) / 3, abs=1e-7)
    # eps=None: the exact BCE
    an = build(type='AssumeNegativeLoss', eps=None)(logits, target)
    assert an.item() == pytest.approx(
        (math.log(2) + math.log(4) + -math.log(0.75)) / 3, abs=1e-6)
    wan = build(type='WeakAssumeNegativeLoss', eps=None)(logits, target)
    assert wan.item() == pytest.approx(
        (math.log(2) + math.log(4) / 2 - math.log(0.75) / 2) / 3, abs=1e-6)
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
    with pytest.raises(ValueError, match='C >= 2'):
        build(type='WeakAssumeNegativeLoss')(logits[:, :1], target[:, :1])


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


def test_ranking_loss_hand_values():
    scores = torch.tensor([[0.5, 0.2, 0.9], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]],
                          requires_grad=True)
    target = torch.tensor([[1.0, -1.0, -1.0], [1.0, 0.0, -1.0],
                           [0.0, 0.0, 0.0]])
    loss = build(type='RankingLoss')(scores, target)
    # image 0: (0.7 + 1.4) / 2; image 1: 1 / 1 (unknown class 1 ignored);
    # image 2: no pair -> 0
    assert loss.item() == pytest.approx((1.05 + 1.0 + 0.0) / 3, abs=1e-6)
    loss.backward()
    assert scores.grad[0].tolist() == pytest.approx([-1 / 3, 1 / 6, 1 / 6])
    assert scores.grad[1, 1].item() == 0


def test_l1_distill():
    g = torch.tensor([[1.0, -2.0]], requires_grad=True)
    t = torch.tensor([[0.5, 0.0]], requires_grad=True)
    loss = build(type='L1DistillLoss', loss_weight=2.0)(g, t)
    assert loss.item() == pytest.approx(2.0 * (0.5 + 2.0) / 2)
    loss.backward()
    assert t.grad is None
    with pytest.raises(ValueError, match='shapes'):
        build(type='L1DistillLoss')(g, torch.zeros(1, 3))


def _naive_role(logits, target, theta, k, eps=EPS):
    """Cole et al.'s loss_role + compute_batch_loss, literally."""
    def neg_log(x):
        return -torch.log(x + eps)
    preds = torch.sigmoid(logits)
    est = torch.sigmoid(theta)
    b, c = preds.shape
    obs = target
    pos_1 = torch.where(obs == 1, neg_log(preds), torch.zeros_like(preds))
    cross_1 = est.detach() * neg_log(preds) + \
        (1 - est.detach()) * neg_log(1 - preds)
    reg_1 = (preds.sum(1).mean(0) - k) ** 2 / c ** 2
    pos_2 = torch.where(obs == 1, neg_log(est), torch.zeros_like(est))
    cross_2 = preds.detach() * neg_log(est) + \
        (1 - preds.detach()) * neg_log(1 - est)
    reg_2 = (est.sum(1).mean(0) - k) ** 2 / c ** 2
    mtx = 0.5 * (pos_1 + pos_2) + 0.5 * (cross_1 + cross_2)
    return (mtx / (b * c)).sum() + 0.5 * (reg_1 + reg_2)


def test_role_matches_the_reference_loss_and_adam():
    torch.manual_seed(0)
    n, c = 5, 4
    labels = torch.zeros(n, c)
    labels[torch.arange(n), torch.tensor([0, 1, 2, 3, 0])] = 1
    role = build(type='ROLELoss', expected_num_pos=1.5, estimator_lr=0.05)
    # the reference initialises every row up front; same values here
    role._grow(n, c, 'cpu')
    role._init_rows(torch.arange(n), labels)
    q6 = math.log(0.6 / 0.4)
    assert role.est_logits[labels > 0].allclose(
        torch.tensor(math.log(0.995 / 0.005)))
    unk = role.est_logits[labels == 0]
    assert unk.abs().max() < q6 and unk.std() > 0
    theta = torch.nn.Parameter(role.est_logits.clone())
    opt = torch.optim.Adam([theta], lr=0.05)
    for batch in ([0, 1, 2], [3, 4], [1, 4]):
        idx = torch.tensor(batch)
        x = torch.randn(len(batch), c, requires_grad=True)
        x_ref = x.detach().clone().requires_grad_(True)
        val = role(x, labels[idx], sample_idx=idx)
        (gx,) = torch.autograd.grad(val, x)
        opt.zero_grad()
        ref = _naive_role(x_ref, labels[idx], theta[idx], 1.5)
        ref.backward()
        opt.step()
        assert val.item() == pytest.approx(ref.item(), rel=1e-6)
        torch.testing.assert_close(gx, x_ref.grad)
        # every row moves as with the reference's dense Adam (momentum moves
        # rows outside the batch too)
        torch.testing.assert_close(role.est_logits, theta.detach())
    # the state survives a checkpoint round trip; no sample_idx is an error
    fresh = build(type='ROLELoss', expected_num_pos=1.5)
    fresh.load_state_dict(role.state_dict())
    torch.testing.assert_close(fresh.est_logits, role.est_logits)
    assert int(fresh.adam_step) == 3 and bool(fresh.seen.all())
    with pytest.raises(ValueError, match='sample_idx'):
        role(torch.zeros(1, c), labels[:1])


def test_role_rows_are_created_on_first_sight_independent_of_order():
    labels = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    a = build(type='ROLELoss', expected_num_pos=1.0, estimator_lr=0.0)
    b = build(type='ROLELoss', expected_num_pos=1.0, estimator_lr=0.0)
    a(torch.zeros(3, 3), labels, sample_idx=torch.tensor([0, 1, 2]))
    b(torch.zeros(1, 3), labels[2:], sample_idx=torch.tensor([2]))
    assert b.est_logits.shape == (3, 3) and b.seen.tolist() == [
        False, False, True]
    b(torch.zeros(2, 3), labels[[1, 0]], sample_idx=torch.tensor([1, 0]))
    torch.testing.assert_close(a.est_logits, b.est_logits)
    assert a.estimates()[0, 0].item() == pytest.approx(0.995)
