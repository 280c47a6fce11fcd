"""CSTPrototypeHook gathers the features by chunks of classes (bounded memory
per rank): the prototypes equal the one-piece gather's, in 1 and 2 processes,
and no chunk exceeds its row budget (or one class)."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks import CSTPrototypeHook
from mlrpl_mm.utils import gather_by_index, gather_by_index_in_groups

# 9 images x 5 classes (odd: the 2-rank sampler pads one duplicate); class
# 0 has 7 known positives (a chunk alone at budget 3), class 4 none
LABELS = np.array([[1, -1, 1, 0, -1], [1, 1, 0, 1, 0], [1, -1, -1, 1, 0],
                   [1, 0, 1, -1, -1], [0, 1, -1, 1, -1], [1, 1, -1, 0, 0],
                   [1, -1, 1, 1, -1], [-1, 1, 0, 0, 0], [1, 0, 1, -1, 0]],
                  np.int8)


class _Set(Dataset):

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (len(LABELS), 3, 32, 32),
                                    generator=g, dtype=torch.uint8)
        self.partial_labels = LABELS

    def __len__(self):
        return len(LABELS)

    def __getitem__(self, i):
        ds = DataSample()
        ds.set_metainfo(dict(sample_idx=i))
        ds.set_field(self.partial_labels[i], 'partial_label')
        return dict(inputs=self.images[i], data_samples=ds)


def _prototypes(max_rows):
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=5),
        backbone=dict(type='ResNet', depth=18, base_channels=4,
                      stem_channels=4, strides=(1, 2, 2, 1),
                      out_indices=(3, )),
        head=dict(type='HSTHead', num_classes=5, in_channels=32,
                  feat_channels=8, inter_channels=4, out_channels=8,
                  avg_pool=False,
                  class_embedding=dict(type='LearnableClassEmbedding',
                                       embed_dims=4),
                  cst=dict(type='CrossSemanticTransfer', num_prototypes=3))))
    ds = _Set()
    loader = DataLoader(ds, batch_size=2,
                        sampler=DefaultSampler(ds, shuffle=False),
                        collate_fn=pseudo_collate)
    hook = CSTPrototypeHook(max_gather_rows=max_rows)
    hook.compute(model, loader, ds.partial_labels, epoch=5)
    cst = model.head.cst
    return dict(prototypes=cst.prototypes.clone(),
                count=cst.prototype_count.clone(), rows=hook._last_rows)


def _grouped(rank, world):
    """Chunks of a synthetic (key, group, value) set sharded over ranks,
    with one padded duplicate, vs one gather."""
    g = torch.Generator().manual_seed(1)
    n = 23
    key = torch.randperm(100, generator=g)[:n]
    grp = torch.randint(0, 6, (n, ), generator=g)
    val = torch.randn(n, 3, generator=g)
    mine = torch.arange(n) % world == rank
    if rank == world - 1:  # sampler padding: a row of rank 0 again
        mine[0] = True
    k, gp, v = key[mine], grp[mine], val[mine]
    full = gather_by_index(k, gp, v)
    chunks = list(gather_by_index_in_groups(k, gp, 6, gp, v, max_rows=5))
    return dict(full=full, chunks=chunks)


def _check_grouped(res):
    fk, fg, fv = res['full']
    seen = []
    for ck, cg, cv in res['chunks']:
        groups = torch.unique(cg).tolist()
        # budget: 5 rows (+ the padded duplicate counted once more), or one
        # group alone
        assert len(ck) <= 6 or len(groups) == 1
        assert not set(groups) & set(seen)
        assert groups == sorted(groups) and (not seen or groups[0] > seen[-1])
        seen += groups
        for gid in groups:
            m, fm = cg == gid, fg == gid
            assert torch.equal(ck[m], fk[fm])
            assert torch.equal(cv[m], fv[fm])
    assert sorted(seen) == torch.unique(fg).tolist()


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        torch.save(dict(chunked=_prototypes(3), grouped=_grouped(rank, world)),
                   os.path.join(out, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_chunked_gather_single_process_equals_one_piece():
    one = _prototypes(None)
    assert one['count'].tolist() == [3, 3, 3, 3, 0]
    for budget in (1, 3, 1000):
        res = _prototypes(budget)
        assert res['rows'] == one['rows'] == int((LABELS == 1).sum())
        assert torch.equal(res['count'], one['count'])
        assert torch.equal(res['prototypes'], one['prototypes'])
    _check_grouped(_grouped(0, 1))


def test_chunked_gather_two_processes_equal_one(tmp_path):
    single = _prototypes(None)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
             join=True)
    r = [torch.load(tmp_path / f'rank{i}.pt') for i in range(2)]
    for res in r:
        assert res['chunked']['rows'] == single['rows']
        assert torch.equal(res['chunked']['count'], single['count'])
        torch.testing.assert_close(res['chunked']['prototypes'],
                                   single['prototypes'], atol=1e-5, rtol=1e-5)
        _check_grouped(res['grouped'])
    assert torch.equal(r[0]['chunked']['prototypes'],
                       r[1]['chunked']['prototypes'])


def test_max_gather_rows_is_checked():
    with pytest.raises(ValueError, match='max_gather_rows'):
        CSTPrototypeHook(max_gather_rows=0)
    with pytest.raises(ValueError, match='max_rows'):
        next(gather_by_index_in_groups(torch.zeros(1).long(),
                                       torch.zeros(1).long(), 1,
                                       max_rows=0))
