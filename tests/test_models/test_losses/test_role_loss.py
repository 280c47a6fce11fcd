"""ROLELoss against the reference loss and its Adam step."""
import math

import pytest
import torch
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401

EPS = 1e-5


def build(**cfg):
    return MODELS.build(cfg)


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
