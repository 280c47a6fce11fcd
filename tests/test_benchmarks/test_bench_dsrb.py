"""benchmarks/bench_dsrb.py: its literal baseline (the reference's
formulation: repeat-based SD from bench_hst.py, (B, N, C, D) maps, the
reference's gated GNN) gives the pooled head's loss and input gradient, so
the benchmark compares equal computations."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(autouse=True)
def keep_progress():
    """The benchmark writes epoch 5 to the message hub; restore it."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    keys = ('epoch', 'iter', 'max_iters', 'max_epochs')
    saved = {k: hub.get_info(k) for k in keys}
    threads = torch.get_num_threads()
    yield
    for k, v in saved.items():
        hub.update_info(k, v)
    torch.set_num_threads(threads)


def _bench():
    spec = importlib.util.spec_from_file_location(
        'bench_dsrb', osp.join(ROOT, 'benchmarks', 'bench_dsrb.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize('H,labels', [(3, 'uniform'), (4, 'uniform'),
                                      (3, 'coco30')])
def test_literal_baseline_equals_pooled(H, labels):
    bench = _bench()
    bench.labels = labels
    torch.set_num_threads(1)
    res = bench.check_equal(C=6, H=H, B=4, D=16)
    assert res['equal'], res
    for v in ('literal', 'literal_bcast'):
        assert res[f'grad_rel_diff_{v}'] < 1e-5
        assert res[f'loss_{v}'] == pytest.approx(res['loss_pooled'], rel=1e-6)


def test_literal_gnn_is_the_trunk_gnn():
    """The reference-style gated GNN of the baseline equals the trunk's."""
    bench = _bench()
    from mlrpl_mm.models.layers import GatedGNN
    torch.manual_seed(0)
    gnn = GatedGNN(8, 3)
    h, adj = torch.randn(3, 5, 8), torch.rand(5, 5)
    torch.testing.assert_close(bench.literal_gnn(gnn)(h, adj), gnn(h, adj))


def test_literal_baseline_uses_bench_hst_literal_sd():
    bench = _bench()
    import sys
    sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
    import bench_hst
    assert bench._bench_hst_literal_sd() is bench_hst.literal_sd
    gnn = torch.nn.Module()  # any object: literal_gnn only wraps it
    assert bench.literal_gnn(gnn).__qualname__ == \
        bench_hst.literal_gnn(gnn).__qualname__
