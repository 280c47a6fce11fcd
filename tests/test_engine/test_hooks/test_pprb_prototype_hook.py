"""PPRB prototypes: accumulator rule, hook schedule/resume, 2 processes == 1."""
import logging
import os
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks.pprb_prototype_hook import compute_pprb_prototypes
from mlrpl_mm.models.layers import (QuadrantPrototypeAccumulator,
                                    energy_quadrants)

C, CIN, D, N_SAMPLES = 3, 4, 6, 23


def build_head():
    torch.manual_seed(0)
    return MODELS.build(dict(
        type='DSRBHead', num_classes=C, in_channels=CIN,
        trunk=dict(type='SemanticTrunk', feat_channels=D, inter_channels=4,
                   out_channels=5, avg_pool=False,
                   class_embedding=dict(type='LearnableClassEmbedding',
                                        embed_dims=3))))


class Preprocessor(nn.Module):
    def forward(self, data, training=False):
        return dict(inputs=torch.stack(data['inputs']),
                    data_samples=data['data_samples'])


class TinyModel(nn.Module):
    """data_preprocessor + extract_feat + head, like an ImageClassifier."""

    def __init__(self):
        super().__init__()
        self.data_preprocessor = Preprocessor()
        self.head = build_head()

    def extract_feat(self, x):
        return (x, )


class TinyDataset(torch.utils.data.Dataset):
    """Random 4x4 maps with partial labels (many positives); has a pipeline."""

    def __init__(self, n=N_SAMPLES):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, CIN, 4, 4, generator=g)
        self.y = torch.randint(-1, 2, (n, C), generator=g)
        self.y[torch.rand(n, C, generator=g) < 0.5] = 1
        self.y[3] = 0
        self.pipeline = lambda d: d

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        ds = DataSample(metainfo=dict(sample_idx=i))
        ds.set_field(self.y[i].numpy().astype('int8'), 'partial_label')
        return self.pipeline(dict(inputs=self.x[i].clone(), data_samples=ds))


def loader(dataset, batch_size=4):
    return DataLoader(dataset, batch_size=batch_size, collate_fn=pseudo_collate,
                      sampler=DefaultSampler(dataset, shuffle=False))


@torch.no_grad()
def naive_prototypes(model, dataset, cap, mean='reference'):
    """Spec rule with plain loops: first `cap` images per (c, q) in order.

    ``mean='reference'``: the reference's form, a list per (c, q) that starts
    with an all-zero placeholder row, appended while it has <= cap rows, and
    averaged with the placeholder; the class-mean fill of an empty cell
    concatenates the lists without their placeholders. ``'exact'``: the
    plain mean of the members."""
    model.eval()
    head = model.head
    members = {(c, q): [] for c in range(C) for q in range(4)}
    for i in range(len(dataset)):
        item = dataset[i]
        f, _, energy, hw = head.class_features((item['inputs'][None], ))
        quad = energy_quadrants(energy, hw)[0]
        y = item['data_samples'].partial_label
        for c in range(C):
            if y[c] == 1:
                lst = members[(c, int(quad[c]))]
                if cap is None or len(lst) < cap:
                    lst.append(f[0, c].double())
    protos = torch.zeros(C, 4, D, dtype=torch.float64)
    valid = torch.zeros(C, dtype=torch.bool)
    counts = torch.zeros(C, 4, dtype=torch.long)
    for c in range(C):
        filled = []
        for q in range(4):
            if members[(c, q)]:
                rows = members[(c, q)]
                if mean == 'reference':
                    rows = [torch.zeros(D, dtype=torch.float64)] + rows
                protos[c, q] = torch.stack(rows).mean(0)
                counts[c, q] = len(members[(c, q)])
                filled += members[(c, q)]
        if filled:
            valid[c] = True
            # the reference: kept features of the filled quadrants
            # concatenated, then averaged
            class_mean = torch.stack(filled).mean(0)
            for q in range(4):
                if not members[(c, q)]:
                    protos[c, q] = class_mean
    model.train()
    return protos.float(), valid, counts


@pytest.mark.parametrize('mean', ['reference', 'exact'])
@pytest.mark.parametrize('cap', [2, None])
def test_hook_computation_matches_naive_loop(cap, mean):
    model, ds = TinyModel(), TinyDataset()
    protos, valid, counts = compute_pprb_prototypes(model, loader(ds), 'head',
                                                    cap, mean=mean)
    p_ref, v_ref, c_ref = naive_prototypes(model, ds, cap, mean)
    assert torch.equal(counts, c_ref)
    assert torch.equal(valid, v_ref)
    torch.testing.assert_close(protos, p_ref, rtol=1e-5, atol=1e-6)
    if cap is not None:
        assert int(counts.max()) == cap  # the cap was hit
    assert model.training  # mode restored


class CountingDataset(TinyDataset):
    """TinyDataset that counts the images read."""

    def __init__(self, n=N_SAMPLES):
        super().__init__(n)
        self.reads = 0

    def __getitem__(self, i):
        self.reads += 1
        return super().__getitem__(i)


@pytest.mark.parametrize('mean', ['reference', 'exact'])
def test_early_stop_equals_full_pass_and_reads_fewer_images(mean):
    """Issue 15.4: once every (class, quadrant) holds its first cap images
    of a dataset prefix, the pass stops; the result equals the full pass."""
    n = 120
    model = TinyModel()
    full_ds, early_ds = CountingDataset(n), CountingDataset(n)
    stats_full, stats = {}, {}
    full = compute_pprb_prototypes(model, loader(full_ds, 4), 'head', 2,
                                   mean=mean, early_stop=False,
                                   stats=stats_full)
    early = compute_pprb_prototypes(model, loader(early_ds, 4), 'head', 2,
                                    mean=mean, stats=stats)
    for a, b in zip(early, full):
        assert torch.equal(a, b)
    assert (full[2] == 2).all()  # every cell full
    assert full_ds.reads == n and not stats_full['stopped_early']
    assert stats['stopped_early'] and stats['images_read'] < n
    assert early_ds.reads == stats['images_read'] == 4 * stats['steps']
    # the naive loop over every image agrees
    torch.testing.assert_close(early[0], naive_prototypes(model, full_ds, 2,
                                                          mean)[0],
                               rtol=1e-5, atol=1e-6)


def test_no_early_stop_while_a_cell_can_still_change():
    """A cell short of the cap (here: class 2 only ever in few images, or no
    cap at all) keeps the pass running to the last image."""
    model, ds = TinyModel(), CountingDataset(40)
    ds.y[5:, 2] = -1  # class 2: positives only among the first 5 images
    stats = {}
    compute_pprb_prototypes(model, loader(ds, 4), 'head', 2, stats=stats)
    assert ds.reads == 40 and not stats['stopped_early']
    ds.reads = 0
    compute_pprb_prototypes(model, loader(CountingDataset(40), 4), 'head',
                            None, stats=stats)
    assert stats['images_read'] == 40 and not stats['stopped_early']


def test_prototypes_one_pass_no_python_loop_over_classes(monkeypatch):
    """One forward per batch of the loader, and the accumulator is fed once
    per batch (vectorised rows, no per-sample / per-class Python loop)."""
    model, ds = TinyModel(), TinyDataset()
    calls = dict(feat=0, add=0)
    extract = model.extract_feat

    def counting_extract(x):
        calls['feat'] += 1
        return extract(x)
    model.extract_feat = counting_extract
    add = QuadrantPrototypeAccumulator.add

    def counting_add(self, *args):
        calls['add'] += 1
        return add(self, *args)
    monkeypatch.setattr(QuadrantPrototypeAccumulator, 'add', counting_add)
    ld = loader(ds, batch_size=5)
    compute_pprb_prototypes(model, ld, 'head', 100)
    assert calls == dict(feat=len(ld), add=len(ld))


def test_accumulator_is_order_independent_and_fills_empty():
    g = torch.Generator().manual_seed(0)
    R, Cc, Dd = 200, 4, 3
    sample = torch.randperm(1000, generator=g)[:R]
    cls = torch.randint(0, Cc - 1, (R, ), generator=g)  # class 3 never seen
    quad = torch.randint(0, 4, (R, ), generator=g)
    quad[cls == 2] = 1  # class 2 has one filled quadrant only
    feat = torch.randn(R, Dd, generator=g)
    ref = QuadrantPrototypeAccumulator(Cc, Dd, max_per_group=5, mean='exact')
    order = torch.argsort(sample)
    ref.add(sample[order], cls[order], quad[order], feat[order])
    p_ref, v_ref, c_ref = ref.result()
    acc = QuadrantPrototypeAccumulator(Cc, Dd, max_per_group=5, compact_every=7,
                                       mean='exact')
    perm = torch.randperm(R, generator=g)
    for chunk in perm.split(9):
        acc.add(sample[chunk], cls[chunk], quad[chunk], feat[chunk])
    p, v, c = acc.result()
    torch.testing.assert_close(p, p_ref)
    assert torch.equal(v, v_ref) and torch.equal(c, c_ref)
    assert v.tolist() == [True, True, True, False]
    assert (p[3] == 0).all()
    # class 2: quadrant 1 = mean of its 5 smallest sample indices, others = it
    sel = (cls == 2) & (quad == 1)
    first5 = torch.argsort(sample[sel])[:5]
    expected = feat[sel][first5].mean(0)
    for q in range(4):
        torch.testing.assert_close(p[2, q], expected)


def test_empty_quadrant_gets_count_weighted_class_mean():
    """Reference rule: mean over all kept images of the filled quadrants
    (not the mean of the quadrant means); the cap applies first."""
    feat = torch.tensor([[0.0], [0.0], [0.0], [9.0], [3.0]])
    sample = torch.tensor([0, 1, 2, 3, 4])
    cls = torch.zeros(5, dtype=torch.long)
    quad = torch.tensor([0, 0, 0, 2, 0])  # q0: 4 images (cap 3), q2: 1
    acc = QuadrantPrototypeAccumulator(1, 1, max_per_group=3, mean='exact')
    acc.add(sample, cls, quad, feat)
    p, v, c = acc.result()
    assert c.tolist() == [[3, 0, 1, 0]] and v.tolist() == [True]
    assert p[0, 0].item() == 0.0 and p[0, 2].item() == 9.0
    # (0 + 0 + 0 + 9) / 4 = 2.25; the mean of the quadrant means would be 4.5
    assert p[0, 1].item() == pytest.approx(2.25)
    assert p[0, 3].item() == pytest.approx(2.25)
    acc = QuadrantPrototypeAccumulator(1, 1, max_per_group=None, mean='exact')
    acc.add(sample, cls, quad, feat)
    p, _, _ = acc.result()
    assert p[0, 0].item() == pytest.approx(0.75)
    assert p[0, 1].item() == pytest.approx(12.0 / 5)
    # the default 'reference' mean: the placeholder row counts in a filled
    # cell (sum / (n + 1)), not in the class-mean fill of an empty one
    acc = QuadrantPrototypeAccumulator(1, 1, max_per_group=3)
    acc.add(sample, cls, quad, feat)
    p, _, _ = acc.result()
    assert p[0, 2].item() == pytest.approx(9.0 / 2)
    assert p[0, 0].item() == 0.0
    assert p[0, 1].item() == pytest.approx(2.25)


def test_schedule_and_resume():
    hook = HOOKS.build(dict(type='PPRBPrototypeHook'))
    assert [hook.scheduled_epoch(e) for e in (0, 4, 5, 9, 10, 19)] == \
        [None, None, 5, 5, 10, 15]
    assert not hook.needs_update(4, -1)
    assert hook.needs_update(5, -1)
    assert not hook.needs_update(7, 5)  # restored after --resume: keep
    assert hook.needs_update(7, -1)  # restored without prototypes: compute
    assert hook.needs_update(10, 5)
    assert not hook.needs_update(12, 11)
    with pytest.raises(ValueError):
        HOOKS.build(dict(type='PPRBPrototypeHook', interval=0))
    with pytest.raises(ValueError, match='pipeline'):
        HOOKS.build(dict(type='PPRBPrototypeHook', pipeline='val'))


def test_hook_before_train_epoch_on_fake_runner():
    model, ds = TinyModel(), TinyDataset()
    runner = SimpleNamespace(model=model, epoch=4, train_dataloader=loader(ds),
                             logger=logging.getLogger('test'))
    hook = HOOKS.build(dict(type='PPRBPrototypeHook', max_per_quadrant=3,
                            pipeline='train'))
    pprb = model.head.pprb
    hook.before_train_epoch(runner)
    assert int(pprb.prototype_epoch) == -1
    runner.epoch = 5
    hook.before_train_epoch(runner)
    assert int(pprb.prototype_epoch) == 5
    expected = naive_prototypes(model, ds, 3)[0]
    torch.testing.assert_close(pprb.prototypes, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        pprb.prototypes.fill_(7.0)
    runner.epoch = 6
    hook.before_train_epoch(runner)
    assert (pprb.prototypes == 7.0).all()  # not recomputed mid-interval
    runner.epoch = 10
    hook.before_train_epoch(runner)
    assert int(pprb.prototype_epoch) == 10
    torch.testing.assert_close(pprb.prototypes, expected, rtol=1e-5, atol=1e-6)


def test_hook_pipeline_switch_uses_a_copy():
    model, ds = TinyModel(), TinyDataset()

    def zero_some(d):
        d['inputs'] = d['inputs'] * 0.5
        return d
    runner = SimpleNamespace(
        model=model, epoch=5, train_dataloader=loader(ds),
        logger=logging.getLogger('test'),
        cfg=dict(val_dataloader=dict(dataset=dict(pipeline=[zero_some]))))
    hook = HOOKS.build(dict(type='PPRBPrototypeHook', pipeline='test'))
    hook.before_train_epoch(runner)
    assert hook._loader.dataset is not ds and ds.pipeline is not zero_some
    ds_half = TinyDataset()
    ds_half.x = ds_half.x * 0.5
    expected = naive_prototypes(model, ds_half, 100)[0]
    torch.testing.assert_close(model.head.pprb.prototypes, expected,
                               rtol=1e-5, atol=1e-6)


def test_hook_default_uses_the_training_pipeline():
    """Default pipeline='train' (reference: augmented training images): the
    prototypes come from the training dataset's own pipeline, not from the
    config's val pipeline."""
    model, ds = TinyModel(), TinyDataset()

    def double(d):
        d['inputs'] = d['inputs'] * 2.0
        return d
    ds.pipeline = double  # stands for the training augmentations
    runner = SimpleNamespace(
        model=model, epoch=5, train_dataloader=loader(ds),
        logger=logging.getLogger('test'),
        cfg=dict(val_dataloader=dict(dataset=dict(pipeline=[lambda d: d]))))
    hook = HOOKS.build(dict(type='PPRBPrototypeHook'))
    assert hook.pipeline == 'train'
    hook.before_train_epoch(runner)
    assert hook._loader.dataset.dataset is ds  # SeededView of the train set
    expected = naive_prototypes(model, ds, 100)[0]  # ds[i] applies `double`
    torch.testing.assert_close(model.head.pprb.prototypes, expected,
                               rtol=1e-5, atol=1e-6)
    plain = naive_prototypes(model, TinyDataset(), 100)[0]
    assert not torch.allclose(model.head.pprb.prototypes, plain, atol=1e-3)


def test_hook_requires_pprb():
    model = TinyModel()
    model.head.pprb = None
    runner = SimpleNamespace(model=model, epoch=5)
    with pytest.raises(AttributeError, match='no PPRB'):
        HOOKS.build(dict(type='PPRBPrototypeHook')).before_train_epoch(runner)


# ----------------------------------------------------------------------------
# distributed: 2 gloo processes give the single-process prototypes
# ----------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        model, ds = TinyModel(), TinyDataset()
        # odd split: 23 samples, batch 4, 2 ranks -> padding duplicates
        for cap in (2, None):
            res = compute_pprb_prototypes(model, loader(ds, 4), 'head', cap)
            torch.save(res, os.path.join(out_dir, f'rank{rank}_{cap}.pt'))
        # early stop: every rank stops at the same step with the
        # single-process prototypes (cap 2, 120 images)
        stats = {}
        res = compute_pprb_prototypes(model, loader(TinyDataset(120), 4),
                                      'head', 2, stats=stats)
        torch.save((res, stats), os.path.join(out_dir, f'rank{rank}_early.pt'))
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
             join=True)
    for rank, cap in [(0, 2), (1, 2), (0, None), (1, None)]:
        single = compute_pprb_prototypes(TinyModel(), loader(TinyDataset(), 4),
                                         'head', cap)
        res = torch.load(tmp_path / f'rank{rank}_{cap}.pt')
        assert torch.equal(res[2], single[2])  # same members per (c, q)
        assert torch.equal(res[1], single[1])
        torch.testing.assert_close(res[0], single[0], rtol=1e-6, atol=1e-7)
    full = compute_pprb_prototypes(TinyModel(), loader(TinyDataset(120), 4),
                                   'head', 2, early_stop=False)
    (r0, s0), (r1, s1) = [torch.load(tmp_path / f'rank{r}_early.pt')
                          for r in (0, 1)]
    assert s0 == s1 and s0['stopped_early'] and s0['images_read'] < 120
    for a, b, c in zip(r0, r1, full):
        assert torch.equal(a, b)  # identical on the ranks
        torch.testing.assert_close(a, c, rtol=1e-6, atol=1e-7)
