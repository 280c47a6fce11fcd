"""The generic training-set pass of the prototype hooks (training_set_pass.py):
eval mode, progress, per-step gather with cross-step dedupe and read prefix,
chunked gather by slot, schedule and errors naming the subclass."""
import logging

import pytest
import torch
from torch import nn

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks import CSTPrototypeHook, PPRBPrototypeHook
from mlrpl_mm.engine.hooks.training_set_pass import (StepGather,
                                                     TrainingSetPassHook,
                                                     eval_mode,
                                                     gather_in_slot_chunks,
                                                     training_set_batches)
from mlrpl_mm.utils import gather_by_index, unwrap_model


def test_step_gather_drops_samples_of_earlier_steps_and_tracks_prefix():
    g = StepGather(num_samples=5, slots=3)
    # step 1: samples 0 and 1 (rows keyed sample * 3 + class)
    s, c, v = g.rows(torch.tensor([4, 0, 3]), torch.tensor([40., 0., 30.]))
    assert s.tolist() == [0, 1, 1] and c.tolist() == [0, 0, 1]
    assert v.tolist() == [0., 30., 40.]  # sorted by key
    assert g.read(torch.tensor([1, 0]))  # [0, 2) read: a prefix
    # step 2: sample 4, and sample 0 again (sampler padding)
    s, c, v = g.rows(torch.tensor([12, 2]), torch.tensor([1., 2.]))
    assert s.tolist() == [4] and c.tolist() == [0] and v.tolist() == [1.]
    assert not g.read(torch.tensor([4, 0]))  # 2, 3 missing
    assert g.images_read == 3 and g.prefix == 2
    assert g.read(torch.tensor([2, 3])) and g.prefix == 5
    with pytest.raises(ValueError, match='sample_idx 5 >= dataset size 5'):
        g.rows(torch.tensor([15]), torch.tensor([0.]))


def test_gather_in_slot_chunks_single_process_equals_one_gather():
    g = torch.Generator().manual_seed(0)
    key = torch.randperm(60, generator=g)[:30]
    val = torch.randn(30, 2, generator=g)
    k, v = gather_by_index(key, val)
    for max_rows in (None, 1, 4, 100):
        chunks = list(gather_in_slot_chunks(key, 4, val, max_rows=max_rows))
        if max_rows is None:
            assert len(chunks) == 1
        last = -1
        for slot, _ in chunks:  # disjoint, ascending slots per chunk
            assert int(slot.min()) > last
            last = int(slot.max())
        slot = torch.cat([c[0] for c in chunks])
        val_c = torch.cat([c[1] for c in chunks])
        for s in range(4):  # rows of a slot: those of one gather, in order
            assert torch.equal(val_c[slot == s], v[k % 4 == s])


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(1, 1)

    def data_preprocessor(self, data, training=False):
        assert not training and not self.training
        return dict(inputs=data * 2)


def test_batches_in_eval_mode_with_progress(caplog):
    model = _Model()
    logger = logging.getLogger('pass_test')
    with caplog.at_level(logging.INFO, logger='pass_test'):
        with eval_mode(model):
            out = [d['inputs'] for d in training_set_batches(
                model, [1, 2, 3], 'SomeHook', logger, num_logs=10)]
    assert out == [2, 4, 6] and model.training
    assert [r.getMessage() for r in caplog.records] == [
        'SomeHook: batch 1/3', 'SomeHook: batch 2/3', 'SomeHook: batch 3/3']
    model.eval()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            raise RuntimeError
    assert not model.training  # previous mode restored


def test_base_schedule_and_errors_name_the_subclass():
    for cls in (CSTPrototypeHook, PPRBPrototypeHook):
        assert issubclass(cls, TrainingSetPassHook)
        hook = cls(start_epoch=2, interval=3)
        assert [hook.scheduled_epoch(e) for e in range(9)] == \
            [None, None, 2, 2, 2, 5, 5, 5, 8]
        with pytest.raises(ValueError, match=f'{cls.__name__}: start_epoch'):
            cls(interval=0)
        with pytest.raises(ValueError, match=f'{cls.__name__}: start_epoch'):
            cls(start_epoch=-1)
    cst = CSTPrototypeHook()
    assert not cst.needs_update(4, -1) and cst.needs_update(5, -1)
    assert not cst.needs_update(7, 5) and cst.needs_update(10, 5)
    assert not cst.needs_update(7, 9)  # CST keeps later prototypes


def test_unwrap_model():
    inner = nn.Linear(1, 1)
    assert unwrap_model(inner) is inner
    assert unwrap_model(nn.DataParallel(inner)) is inner
