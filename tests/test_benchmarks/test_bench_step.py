"""benchmarks/bench_step.py in CI size (--tiny): every case builds from the
project's configs, takes a full training step (loss finite, parameters
updated by the optimizer), reports img/s, peak memory and its ratio to the
plain baseline, and the profile attributes forward and backward time to the
head's parts."""
import importlib.util
import math
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load(name):
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'benchmarks', f'{name}.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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


def test_configs_are_the_projects():
    bench = _load('bench_step')
    cfg = bench.build_cfg('hst', 200)
    assert cfg.model.head.type == 'HSTHead' and cfg.model.head.num_classes == 200
    assert cfg.model.backbone.depth == 101 and cfg.model.backbone.init_cfg is None
    assert cfg.model.head.cst.num_prototypes == 10  # hst_vg_p30.py's
    assert bench.build_cfg('dsrb', 80).model.head.type == 'DSRBHead'
    plain = bench.build_cfg('plain_r101', 80).model
    assert plain.head.type == 'MultiLabelLinearClsHead'
    assert plain.backbone.frozen_stages == 3  # the protocol's backbone
    vit = bench.build_cfg('sigrl', 200).model
    assert vit.backbone.model_name == 'ViT-B-16-quickgelu'
    assert vit.backbone.pretrained is None and vit.head.num_classes == 200


def test_tiny_steps_ratios_and_profile():
    bench = _load('bench_step')
    args = bench.parse_args(['--tiny', '--steps', '1', '--warmup', '1',
                             '--batch', '2', '--in-process'])
    torch.set_num_threads(1)
    results = []
    for case in ('plain_r101', 'hst', 'dsrb', 'plain_vit', 'sigrl'):
        args.profile = case == 'dsrb'
        results.append(bench._in_process(args, case, 80))
    bench.ratios(results)
    for r in results:
        assert 'error' not in r, r
        assert math.isfinite(r['loss']) and r['img_s'] > 0
        assert r['peak_mib'] > 0 and r['C'] == 80 and r['batch'] == 2
    by = {r['case']: r for r in results}
    assert by['hst']['size'] == 448 and by['sigrl']['size'] == 64
    for case, base in (('hst', 'plain_r101'), ('dsrb', 'plain_r101'),
                       ('sigrl', 'plain_vit')):
        assert by[case]['time_ratio'] == pytest.approx(
            by[case]['time_s'] / by[base]['time_s'])
        assert by[case]['peak_ratio'] > 0
    assert 'time_ratio' not in by['plain_r101']
    prof = by['dsrb']['profile']
    assert {'backbone', 'head', 'head.trunk.sd', 'head.trunk.gnn',
            'optimizer'} <= set(prof)
    # backward time is attributed to the parts that ran the forward
    assert prof['head.trunk.sd']['bwd_ms'] > 0
    assert prof['head.trunk.gnn']['bwd_ms'] > 0
    assert prof['optimizer']['bwd_ms'] == 0
    text = bench.table(results)
    assert text.count('\n') == len(results) + 1
    assert '| hst | 80 | 2 | 448 |' in text
    assert 'head.trunk.gnn' in bench.profile_table(by['dsrb'])


def test_train_step_updates_the_weights():
    """A step is forward + backward + optimizer step: a trained weight moves,
    a frozen one (ResNet stage 1) does not."""
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import MODELS
    bench = _load('bench_step')
    torch.manual_seed(0)
    cfg = bench.build_cfg('ssgrl', 80, tiny=True)
    model = MODELS.build(cfg.model)
    model.train()
    bench.prepare_state(model, 'ssgrl', 80)
    optim = build_optim_wrapper(model, dict(cfg.optim_wrapper))
    data = bench.make_batch('ssgrl', 80, 2, 64, torch.device('cpu'))
    w4 = model.backbone.layer4[0].conv1.weight.detach().clone()
    w1 = model.backbone.layer1[0].conv1.weight.detach().clone()
    model.train_step(data, optim)
    assert not torch.equal(model.backbone.layer4[0].conv1.weight, w4)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, w1)
