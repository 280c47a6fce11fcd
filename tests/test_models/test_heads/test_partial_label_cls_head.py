"""PartialLabelClsHead: linear head on pooled features, any partial-label
loss, including losses with per-sample state indexed by ``sample_idx``."""
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401


def _samples(target, idx=None):
    out = []
    for i, row in enumerate(target):
        ds = DataSample()
        ds.set_field(row.clone(), 'partial_label')
        if idx is not None:
            ds.set_metainfo(dict(sample_idx=int(idx[i])))
        out.append(ds)
    return out


def _head(loss):
    torch.manual_seed(0)
    return MODELS.build(dict(type='PartialLabelClsHead', num_classes=3,
                             in_channels=4, loss=loss))


def test_logits_are_linear_on_the_pooled_map():
    head = _head(dict(type='PartialBCELoss'))
    x = torch.randn(2, 4, 3, 5)
    ref = x.mean(dim=(2, 3)) @ head.fc.weight.t() + head.fc.bias
    torch.testing.assert_close(head((x, )), ref)


def test_emapl_pseudo_labels_reach_the_loss_through_sample_idx():
    """With pseudo-negatives set for sample 7, the loss of a batch holding
    sample 7 changes exactly on those entries; the loss equals the direct
    EM+APL formula."""
    head = _head(dict(type='EMAPLLoss', alpha=0.2, beta=0.5))
    loss_mod = head.loss_module
    loss_mod.init_state(10, 3)
    loss_mod.pseudo_mask[7, 2] = True
    loss_mod.pseudo_soft[7, 2] = 0.25
    feats = (torch.randn(2, 4), )
    target = torch.tensor([[1., 0., 0.], [0., 1., 0.]])
    out = head.loss(feats, _samples(target, idx=[3, 7]))['loss']

    p = torch.sigmoid(head(feats)).detach()
    log = lambda v: torch.log(v + 1e-5)  # noqa: E731
    ent = 0.2 * (p * log(p) + (1 - p) * log(1 - p))
    ref = torch.where(target == 1, -log(p), ent)
    ref[1, 2] = 0.5 * (-0.25 * log(p[1, 2]) - 0.75 * log(1 - p[1, 2]))
    torch.testing.assert_close(out.detach(), ref.mean(), rtol=1e-5,
                               atol=1e-6)
    # Without sample_idx the pseudo labels cannot be looked up: clear error.
    with pytest.raises(ValueError, match='sample_idx'):
        head.loss(feats, _samples(target))


def test_role_loss_trains_on_the_baseline_head():
    head = _head(dict(type='ROLELoss', expected_num_pos=1.5))
    feats = (torch.randn(2, 4, requires_grad=True), )
    target = torch.tensor([[1., 0., 0.], [0., 0., 1.]])
    loss = head.loss(feats, _samples(target, idx=[0, 4]))['loss']
    assert torch.isfinite(loss)
    loss.backward()
    assert head.fc.weight.grad is not None
    # The estimates of the two samples seen were created (rows 0 and 4).
    assert head.loss_module.estimates().shape[0] >= 5
