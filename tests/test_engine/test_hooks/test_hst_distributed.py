"""2 CPU processes (gloo) compute the same CST prototypes and label graph as 1."""
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks import CSTPrototypeHook, LabelGraphHook
from mmpretrain.registry import MODELS

LABELS = np.array([[1, -1, 0, -1], [1, 1, 0, 0], [1, -1, -1, 0], [1, 0, 1, -1],
                   [0, 1, -1, -1], [1, 1, -1, 0], [1, -1, 0, -1]], np.int8)


class _TinySet(Dataset):
    """7 random 32 px images with partial labels (odd size: sampler pads)."""

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


def _compute():
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='ImageClassifier',
        data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=4),
        backbone=dict(type='ResNet', depth=18, base_channels=4, stem_channels=4,
                      strides=(1, 2, 2, 1), out_indices=(3, )),
        head=dict(type='HSTHead', num_classes=4, in_channels=32, feat_channels=8,
                  inter_channels=4, out_channels=8, avg_pool=False,
                  class_embedding=dict(type='LearnableClassEmbedding', embed_dims=4),
                  cst=dict(type='CrossSemanticTransfer', num_prototypes=3))))
    ds = _TinySet()
    loader = DataLoader(ds, batch_size=2, sampler=DefaultSampler(ds, shuffle=False),
                        collate_fn=pseudo_collate)
    CSTPrototypeHook().compute(model, loader, ds.partial_labels, epoch=5)
    graph = LabelGraphHook().compute(ds)
    cst = model.head.cst
    return dict(prototypes=cst.prototypes.clone(), count=cst.prototype_count.clone(),
                epoch=cst.prototype_epoch.clone(), graph=torch.from_numpy(graph))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        torch.save(_compute(), os.path.join(out, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one(tmp_path):
    single = _compute()
    assert single['count'].tolist() == [3, 3, 1, 0]  # 6, 3, 1, 0 positives
    assert int(single['epoch']) == 5
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        res = torch.load(tmp_path / f'rank{rank}.pt')
        assert torch.equal(res['count'], single['count'])
        assert torch.equal(res['graph'], single['graph'])
        assert int(res['epoch']) == 5
        torch.testing.assert_close(res['prototypes'], single['prototypes'],
                                   atol=1e-5, rtol=1e-5)
    r0 = torch.load(tmp_path / 'rank0.pt')
    r1 = torch.load(tmp_path / 'rank1.pt')
    assert torch.equal(r0['prototypes'], r1['prototypes'])  # bit-identical ranks
