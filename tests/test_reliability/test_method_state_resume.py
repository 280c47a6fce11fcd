"""Interrupt HST / DSRB training mid-epoch (SIGTERM, SIGKILL) and resume: the
method state (label graph, prototypes, learnable margins / alpha / beta,
prototype epoch) is restored from the checkpoint, not recomputed or lost, and
the resumed run is in the same phase with the same losses as the run that
was interrupted.

Schedule (2 iterations per epoch): phases and prototypes start at epoch 1
(0-based) and prototypes are not due again before epoch 6, so at the resumed
epoch 2 a hook that recomputed them (from the epoch-2 weights) or lost them
would give different prototypes and losses than the uninterrupted run."""
import os.path as osp
import signal
import sys

import pytest
import torch

import mlrpl_mm  # noqa: F401  (safe checkpoint loading)
from mlrpl_mm.utils import safe_torch_load

from .conftest import (DET_PIPELINE, method_options, read_scalars, run_tool,
                       write_user_config)

CASES = {
    'hst': dict(
        config='configs/hst_demo.py', sig='SIGTERM',
        options=[
            'model.head.trunk.feat_channels=16', 'model.head.trunk.inter_channels=8',
            'model.head.trunk.out_channels=16',
            'model.head.trunk.class_embedding.embed_dims=8',
            'model.head.cst.num_prototypes=2',
            'model.head.pseudo_label_epoch=1',
            # custom_hooks.1 is CSTPrototypeHook in configs/hst_demo.py
            'custom_hooks.1.start_epoch=1', 'custom_hooks.1.interval=5',
            'custom_hooks.1.batch_size=8'],
        state=['trunk.adj', 'ist.margin', 'cst.margin', 'cst.prototypes',
               'cst.prototype_count', 'cst.prototype_epoch'],
        prototypes='cst.prototypes', proto_epoch='cst.prototype_epoch',
        phase_losses=['loss_prototype']),
    'dsrb': dict(
        config='configs/dsrb_demo.py', sig='SIGKILL',
        options=[
            'model.head.trunk.feat_channels=16',
            'model.head.trunk.inter_channels=8',
            'model.head.trunk.out_channels=16',
            'model.head.trunk.class_embedding.embed_dims=8',
            'model.head.blend_start_epoch=1',
            # custom_hooks.1 is PPRBPrototypeHook in configs/dsrb_demo.py
            'custom_hooks.1.start_epoch=1', 'custom_hooks.1.interval=5',
            'custom_hooks.1.batch_size=8'],
        state=['trunk.adj', 'iprb.alpha', 'pprb.beta', 'pprb.prototypes',
               'pprb.prototype_valid', 'pprb.prototype_epoch'],
        prototypes='pprb.prototypes', proto_epoch='pprb.prototype_epoch',
        phase_losses=[]),
}


# SigRL + EM/APL on a VOC 2012 fixture (tiny random-init open_clip): the
# per-sample APL pseudo labels (updated after every epoch from the first) live
# in the head's loss module and must survive the kill. The
# random flip of its training pipeline stays: RandomStateHook restores the
# generators, so even augmented runs continue identically.
_SIGRL_TINY = [
    'model.backbone.model_name=mlrpl-tiny-vit',
    'model.backbone.pretrained=None',
    'model.head.text_encoder.model_name=mlrpl-tiny-vit',
    'model.head.text_encoder.pretrained=None',
    'model.head.embed_dims=64', 'model.head.topk=4',
    'model.head.gmc.in_channels=64', 'model.head.gmc.hidden_channels=32',
    'model.head.svfr.embed_dims=64', 'model.head.svfr.class_chunk=4',
    'model.head.loss.warmup_epoch=1',
]


def _sigrl_options(root, work, max_epochs):
    scale = [f'train_dataloader.dataset.pipeline.{i}.scale=(64,64)'
             for i in (1, 3)] + \
        [f'{dl}.dataset.pipeline.{i}.scale=(64,64)'
         for dl in ('val_dataloader', 'test_dataloader') for i in (1, 2)]
    return ['--work-dir', work, '--cfg-options',
            f'train_dataloader.dataset.dataset.data_root={root}',
            f'val_dataloader.dataset.dataset.data_root={root}',
            f'test_dataloader.dataset.data_root={root}',
            'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0',
            f'train_cfg.max_epochs={max_epochs}',
            'train_cfg.val_interval=100', 'default_hooks.logger.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=3',
            ] + _SIGRL_TINY + scale


CASES['sigrl'] = dict(
    config='configs/sigrl_voc_spml_emapl.py', sig='SIGTERM', data='voc',
    state=['adjacency', 'loss_module.pseudo_mask', 'loss_module.pseudo_soft'],
    phase_losses=['loss_cls'])


@pytest.fixture(scope='module')
def voc_data(tmp_path_factory):
    from tests.fixtures import make_voc_fixture
    fx = make_voc_fixture(str(tmp_path_factory.mktemp('voc')), year='2012',
                          split_sizes=dict(train=10, val=6), img_size=48)
    return fx['data_root']


@pytest.mark.parametrize('name', sorted(CASES))
def test_interrupt_and_resume_restores_method_state(name, rel_data, tmp_path,
                                                    request):
    case = CASES[name]
    work = str(tmp_path / 'w')
    if case.get('data') == 'voc':
        opts = _sigrl_options(request.getfixturevalue('voc_data'), work, 3)
        body = ''
    else:
        opts = method_options(rel_data, work, 3, case['options'])
        body = DET_PIPELINE
    kill = dict(type='KillAtHook', epoch=3, inner_iter=1, sig=case['sig'])
    cfg_a = write_user_config(str(tmp_path / 'a.py'), case['config'], [
        kill, dict(type='DumpHeadStateHook', epoch=2, tag='a')], body)
    cfg_b = write_user_config(str(tmp_path / 'b.py'), case['config'], [
        kill, dict(type='DumpHeadStateHook', epoch=2, tag='b')], body)

    proc = run_tool([sys.executable, 'tools/train.py', cfg_a] + opts,
                    check=False)
    assert proc.returncode == -getattr(signal, case['sig']), \
        proc.stderr[-3000:]
    assert not osp.exists(osp.join(work, 'epoch_3.pth'))
    run_tool([sys.executable, 'tools/train.py', cfg_b, '--resume'] + opts)

    ckpt = safe_torch_load(osp.join(work, 'epoch_2.pth'), map_location='cpu')
    saved = {k[len('head.'):]: v for k, v in ckpt['state_dict'].items()
             if k.startswith('head.')}
    a = torch.load(osp.join(work, 'head_state_2_a.pth'))
    b = torch.load(osp.join(work, 'head_state_2_b.pth'))
    # phase: epoch read from the runner / message hub after resuming
    assert a['epoch'] == b['epoch'] == a['hub_epoch'] == b['hub_epoch'] == 2
    # the method state is really there (computed at epoch 1, not reset)
    for key in case['state']:
        assert key in saved, key
    if 'prototypes' in case:
        assert int(saved[case['proto_epoch']]) == 1
        assert saved[case['prototypes']].abs().sum() > 0
        assert saved['trunk.adj'].abs().sum() > 0
    else:  # SigRL: APL soft negatives (updated after epochs 1 and 2)
        assert saved['loss_module.pseudo_mask'].any()
    # at the first iteration of the resumed epoch, after every hook ran, the
    # whole head state (buffers + parameters) equals the checkpoint and the
    # state the interrupted run had at the same point
    assert a['state'].keys() == b['state'].keys() == saved.keys()
    for k in saved:
        torch.testing.assert_close(b['state'][k], saved[k], rtol=0, atol=0,
                                   msg=f'{name}: {k} resumed != checkpoint')
        torch.testing.assert_close(a['state'][k], saved[k], rtol=0, atol=0,
                                   msg=f'{name}: {k} straight != checkpoint')
    # same phase and numbers: the losses of iteration 5 ([3][1/2]) logged by
    # the interrupted run and by the resumed run
    rows = [r for r in read_scalars(work) if r.get('iter') == 5]
    assert len(rows) == 2, rows
    losses = [k for k in rows[0] if k.startswith('loss')]
    for k in case['phase_losses']:
        assert k in losses, (k, losses)
    for k in losses:
        assert rows[1][k] == pytest.approx(rows[0][k], rel=1e-5, abs=1e-6), k
