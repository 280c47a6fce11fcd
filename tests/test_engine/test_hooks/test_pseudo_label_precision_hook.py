"""PseudoLabelPrecisionHook: counts and precision of the IST / CST pseudo
labels against the hidden full labels, which stay outside the model."""
import types

import numpy as np
import torch
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks.pseudo_label_precision_hook import \
    PseudoLabelPrecisionHook
from mmpretrain.registry import MODELS

C = 4
HIDDEN = np.array([[1, -1, 1, 1], [1, 1, -1, -1], [-1, -1, 1, 1],
                   [1, 1, 1, -1], [-1, 1, -1, 1]], np.int8)
PARTIAL = np.array([[1, 0, 0, 1], [1, 0, -1, 0], [0, -1, 1, 0],
                    [1, 0, 0, 0], [0, 1, -1, 0]], np.int8)


class _Inner:
    hidden_full_labels = HIDDEN
    partial_labels = PARTIAL


class _Wrapper:  # the hidden labels live on a wrapped dataset
    def __init__(self):
        self.dataset = _Inner()


class _Logger:
    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)


def _runner(head, dataset, name):
    model = types.SimpleNamespace(head=head)
    return types.SimpleNamespace(
        model=model, train_dataloader=types.SimpleNamespace(dataset=dataset),
        message_hub=MessageHub.get_instance(name), logger=_Logger())


def _samples(idx):
    out = []
    for i in idx:
        ds = DataSample()
        ds.set_field(PARTIAL[i], 'partial_label')  # no full label: not an input
        ds.set_metainfo(dict(sample_idx=int(i)))
        out.append(ds)
    return out


def test_counts_and_precision_against_hidden_labels():
    head = types.SimpleNamespace()
    runner = _runner(head, _Wrapper(), 'plp_unit')
    hook = PseudoLabelPrecisionHook()
    hook.before_train_epoch(runner)
    # batch 1: samples 3, 0; IST turns (3,1) right, (3,2) right, (0,1) wrong
    ist = torch.zeros(2, C, dtype=torch.bool)
    ist[0, 1] = ist[0, 2] = ist[1, 1] = True
    cst = torch.zeros(2, C, dtype=torch.bool)
    cst[1, 2] = True  # (0, 2): right
    head.last_pseudo_labels = dict(sample_idx=torch.tensor([3, 0]), ist=ist, cst=cst)
    hook.after_train_iter(runner, 0)
    hub = runner.message_hub
    assert hub.get_scalar('train/ist_pseudo_pos').current() == 3
    assert abs(hub.get_scalar('train/ist_precision').current() - 2 / 3) < 1e-12
    assert hub.get_scalar('train/cst_precision').current() == 1.0
    # batch 2: sample 4; IST turns (4,0) wrong -> running 2 of 4
    ist = torch.zeros(1, C, dtype=torch.bool)
    ist[0, 0] = True
    head.last_pseudo_labels = dict(sample_idx=torch.tensor([4]), ist=ist)
    hook.after_train_iter(runner, 1)
    assert hub.get_scalar('train/ist_pseudo_pos').current() == 1
    assert hub.get_scalar('train/ist_precision').current() == 0.5
    hook.after_train_epoch(runner)
    assert any('IST pseudo labels this epoch: 4 positives, precision 50.00%' in m
               for m in runner.logger.lines)
    assert any('CST pseudo labels this epoch: 1 positives, precision 100.00%' in m
               for m in runner.logger.lines)


def test_real_head_masks_and_no_hidden_labels_means_no_log():
    """The head's masks are the unknown entries it made positive; the hook
    scores them by sample_idx against the hidden labels."""
    torch.manual_seed(0)
    head = MODELS.build(dict(
        type='HSTHead', num_classes=C, in_channels=6, feat_channels=5,
        inter_channels=3, out_channels=7,
        class_embedding=dict(type='LearnableClassEmbedding', embed_dims=4),
        ist=dict(type='IntraSemanticTransfer', margin_init=0.2),
        cst=dict(type='CrossSemanticTransfer', num_prototypes=2, margin_init=-0.5)))
    head.cst.update_prototypes(torch.tensor([0, 0, 1, 2, 3]), torch.randn(5, 5), 5)
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 5)
    idx = [4, 1, 2]
    losses = head.loss((torch.randn(3, 6, 4, 4),), _samples(idx))
    pl = head.last_pseudo_labels
    assert pl['sample_idx'].tolist() == idx
    for name in ('ist', 'cst'):
        assert not (pl[name] & torch.from_numpy(PARTIAL[idx] != 0)).any()
        assert int(pl[name].sum()) == int(losses[f'{name}_new_pos'])
    assert int(pl['cst'].sum()) > 0
    runner = _runner(head, _Wrapper(), 'plp_head')
    hook = PseudoLabelPrecisionHook()
    hook.before_train_epoch(runner)
    hook.after_train_iter(runner, 0)
    full = torch.from_numpy(HIDDEN[idx])
    tp = int((pl['cst'] & (full == 1)).sum())
    assert runner.message_hub.get_scalar('train/cst_precision').current() == \
        tp / int(pl['cst'].sum())
    # no hidden labels (e.g. a fully labelled dataset): nothing logged
    runner2 = _runner(head, _Inner.__new__(type('NoHidden', (), {})), 'plp_none')
    hook2 = PseudoLabelPrecisionHook()
    hook2.before_train_epoch(runner2)
    hook2.after_train_iter(runner2, 0)
    hook2.after_train_epoch(runner2)
    assert 'train/cst_precision' not in runner2.message_hub.log_scalars
    assert not runner2.logger.lines
