"""``sync_bn='torch'`` on CPU: CPUSyncBatchNorm in 2 gloo processes, each
with half of a batch, gives the outputs, input and parameter gradients and
running statistics of plain BatchNorm in 1 process on the whole batch (torch's
own SyncBatchNorm refuses CPU tensors); without it the 2 processes normalise
with their own half-batch statistics and differ."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from torch import nn

from mlrpl_mm.apis import setup_cpu_distributed
from mlrpl_mm.engine.sync_batchnorm import (CPUSyncBatchNorm,
                                            convert_cpu_sync_batchnorm)


def _model():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                      nn.Conv2d(4, 5, 3), nn.BatchNorm2d(5), nn.Flatten(),
                      nn.Linear(5 * 4 * 4, 3), nn.BatchNorm1d(3))
    with torch.no_grad():  # non-trivial affine parameters
        for mod in m:
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
    return m


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 8, 8, generator=g) * 2 + 1, \
        torch.randn(8, 3, generator=g)


def _step(model, x, w):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out * w).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    buffers = [b.clone() for n, b in model.named_buffers()
               if 'num_batches' not in n]
    return out.detach(), x.grad, grads, buffers


def _worker(rank, port, path):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.set_num_threads(1)
    for sync in (True, False):
        model = _model()
        if sync:
            model = convert_cpu_sync_batchnorm(model)
        x, w = _data()
        out, gx, grads, buffers = _step(model.train(), x[rank::2],
                                        w[rank::2])
        for g in grads:  # gradient of the summed loss of both ranks
            dist.all_reduce(g)
        torch.save(dict(out=out, gx=gx, grads=grads, buffers=buffers),
                   f'{path}{int(sync)}_{rank}.pth')
    dist.destroy_process_group()


def _run_two_processes(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path / 'sync')), nprocs=2,
             join=True)


def _two_processes(tmp_path, sync):
    path = str(tmp_path / f'sync{int(sync)}')
    r = [torch.load(f'{path}_{i}.pth') for i in (0, 1)]
    out = torch.empty(8, 3)
    gx = torch.empty(8, 3, 8, 8)
    for i in (0, 1):
        out[i::2], gx[i::2] = r[i]['out'], r[i]['gx']
    return out, gx, r[0]['grads'], r[0]['buffers'], r[1]['buffers']


def test_two_process_sync_bn_equals_one_process(tmp_path):
    x, w = _data()
    ref_out, ref_gx, ref_grads, ref_buf = _step(_model().train(), x, w)
    _run_two_processes(tmp_path)

    out, gx, grads, buf0, buf1 = _two_processes(tmp_path, sync=True)
    tol = dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(gx, ref_gx, **tol)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, **tol)
    for b0, b1, r in zip(buf0, buf1, ref_buf):
        torch.testing.assert_close(b0, r, **tol)
        torch.testing.assert_close(b1, b0, rtol=0, atol=0)

    # per-process BatchNorm: other statistics, other numbers
    out_n, _, _, nbuf0, nbuf1 = _two_processes(tmp_path, sync=False)
    assert (out_n - ref_out).abs().max() > 1e-2
    assert not torch.allclose(nbuf0[0], nbuf1[0])


def test_sync_bn_converts_layers_and_config_switch(monkeypatch):
    m = convert_cpu_sync_batchnorm(_model())
    bns = [mod for mod in m.modules()
           if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 3 and all(isinstance(b, CPUSyncBatchNorm) for b in bns)
    assert set(m.state_dict()) == set(_model().state_dict())
    # one process (no process group): plain batch norm, train and eval
    x, _ = _data()
    ref = _model().train()
    torch.testing.assert_close(m.train()(x), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(m.eval()(x), ref.eval()(x), rtol=0, atol=0)
    # the config switch: mmengine's sync_bn='torch' (CUDA-only
    # torch.nn.SyncBatchNorm) becomes the CPU wrapper's conversion
    if torch.cuda.is_available():
        pytest.skip('CPU launch path only')
    # setup_cpu_distributed would initialise gloo: pretend it is
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    cfg = Config(dict(sync_bn='torch'))
    setup_cpu_distributed(cfg, 'pytorch')
    assert cfg.model_wrapper_cfg['sync_bn'] is True
    assert cfg.model_wrapper_cfg['type'] == 'MLRPLDistributedDataParallel'
    assert cfg.get('sync_bn') is None
    with pytest.raises(ValueError, match="sync_bn='mmcv'"):
        setup_cpu_distributed(Config(dict(sync_bn='mmcv')), 'pytorch')
