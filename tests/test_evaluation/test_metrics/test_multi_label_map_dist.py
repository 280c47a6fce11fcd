"""MultiLabelMAP in a 2-process (gloo) evaluation equals the single-process
result: every image once, the sampler's padding duplicate dropped."""
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _data(n=7, c=4):
    rng = np.random.RandomState(0)
    scores = rng.rand(n, c).astype(np.float32)
    targets = np.where(rng.rand(n, c) < 0.4, 1, -1).astype(np.int8)
    targets[0] = 1
    targets[rng.rand(n, c) < 0.15] = 0
    return scores, targets


def _samples(scores, targets, idx):
    from mmpretrain.structures import DataSample
    out = []
    for i in idx:
        ds = DataSample().set_pred_score(torch.from_numpy(scores[i]))
        ds.set_field(targets[i], 'full_label')
        ds.set_metainfo(dict(sample_idx=int(i)))
        out.append(ds.to_dict())
    return out


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    from mmpretrain.registry import METRICS

    import mlrpl_mm  # noqa: F401
    scores, targets = _data()
    # mmengine's DefaultSampler: 7 images on 2 ranks -> 8 slots, rank 1 ends
    # with a padding duplicate of image 0
    idx = list(range(7)) + [0]
    shard = idx[rank::world]
    metric = METRICS.build(dict(type='MultiLabelMAP', ap_style='sklearn'))
    metric.process(None, _samples(scores, targets, shard[:2]))
    metric.process(None, _samples(scores, targets, shard[2:]))
    out[rank] = metric.evaluate(7)
    dist.destroy_process_group()


def test_distributed_equals_single_process():
    from mmpretrain.registry import METRICS

    import mlrpl_mm  # noqa: F401
    scores, targets = _data()
    single = METRICS.build(dict(type='MultiLabelMAP', ap_style='sklearn'))
    single.process(None, _samples(scores, targets, range(7)))
    expected = single.evaluate(7)
    out = mp.Manager().dict()
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    for rank in range(2):
        assert out[rank].keys() == expected.keys()
        for k, v in expected.items():
            assert abs(out[rank][k] - v) < 1e-9, k
