"""Silent wrong training -> a clear error before the first iteration
(issue 12.4, 12.5, 12.7): hooks that provide model state, pretrained weights
of protocol configs, and training labels without supervision."""
import logging
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import PartialLabelDataset, proportion_mask
from mlrpl_mm.engine.hooks import (APLHook, BlendWeightClampHook,
                                   CSTPrototypeHook, LabelGraphHook,
                                   PPRBPrototypeHook, SigRLLabelSetHook)
from mlrpl_mm.engine.hooks.required_hooks_check_hook import (
    format_missing, missing_hooks)
from mlrpl_mm.engine.hooks.supervision_check_hook import (check_supervision,
                                                          describe_dataset)

from .conftest import NUM_TRAIN, ROOT, run_tool, tiny_options

TINY_TRUNK = dict(in_channels=64, feat_channels=16, inter_channels=8,
                  out_channels=16,
                  class_embedding=dict(type='LearnableClassEmbedding',
                                       embed_dims=8))


def _model(head):
    model = torch.nn.Module()
    model.head = MODELS.build(head)
    return model


def _hst(**kw):
    return _model(dict(type='HSTHead', num_classes=5, **TINY_TRUNK, **kw))


def _dsrb(**kw):
    trunk = dict(type='SemanticTrunk', **{k: v for k, v in TINY_TRUNK.items()
                                          if k != 'in_channels'})
    return _model(dict(type='DSRBHead', num_classes=5, in_channels=64,
                       trunk=trunk, **kw))


def _names(missing):
    return sorted({m[2] for m in missing})


# ------------------------------------------------- 12.4: required hooks (unit)
def test_hst_needs_label_graph_and_cst_hooks():
    model = _hst()
    missing = missing_hooks(model, [], max_epochs=20)
    assert _names(missing) == ['CSTPrototypeHook', 'LabelGraphHook']
    assert ('head.trunk', 'SemanticTrunk', 'LabelGraphHook') in [
        m[:3] for m in missing]
    assert missing_hooks(model, [LabelGraphHook(), CSTPrototypeHook()], 20) \
        == []
    # the pseudo-label phase (epoch 5) is not reached in 5 epochs
    assert _names(missing_hooks(model, [], max_epochs=5)) == ['LabelGraphHook']
    assert _names(missing_hooks(_hst(cst=None), [], 20)) == ['LabelGraphHook']
    msg = format_missing(missing)
    assert "dict(type='LabelGraphHook')" in msg and 'custom_hooks' in msg
    assert 'model.head.trunk (SemanticTrunk)' in msg


def test_label_graph_restored_from_checkpoint_counts_as_present():
    """After --resume / load_from the graph is in the adj buffer."""
    src = _hst(cst=None)
    src.head.set_label_graph(torch.eye(5))
    model = _hst(cst=None)
    assert _names(missing_hooks(model, [], 20)) == ['LabelGraphHook']
    model.load_state_dict(src.state_dict())
    assert missing_hooks(model, [], 20) == []


def test_dsrb_needs_prototype_and_clamp_hooks():
    model = _dsrb()
    assert _names(missing_hooks(model, [], 20)) == [
        'BlendWeightClampHook', 'LabelGraphHook', 'PPRBPrototypeHook']
    assert missing_hooks(model, [LabelGraphHook(), PPRBPrototypeHook(),
                                 BlendWeightClampHook()], 20) == []
    # blending never starts within 5 epochs; fixed weights need no clamp
    assert _names(missing_hooks(model, [], 5)) == ['LabelGraphHook']
    fixed = _dsrb(iprb=dict(type='IPRB', learnable=False),
                  pprb=dict(type='PPRB', top_k=1, learnable=False))
    assert _names(missing_hooks(fixed, [LabelGraphHook()], 20)) == [
        'PPRBPrototypeHook']


def test_ssgrl_sigrl_and_emapl_requirements():
    ssgrl = _model(dict(type='SSGRLHead', num_classes=5, **TINY_TRUNK))
    assert _names(missing_hooks(ssgrl, [], None)) == ['LabelGraphHook']
    sigrl = _model(dict(type='SigRLHead', num_classes=3, embed_dims=32,
                        gmc=dict(type='GMC', in_channels=32,
                                 hidden_channels=16, num_heads=2),
                        svfr=dict(type='SVFR', embed_dims=32),
                        loss=dict(type='EMAPLLoss', warmup_epoch=2)))
    assert _names(missing_hooks(sigrl, [], 4)) == ['APLHook',
                                                   'SigRLLabelSetHook']
    assert missing_hooks(sigrl, [APLHook(), SigRLLabelSetHook()], 4) == []
    assert _names(missing_hooks(sigrl, [SigRLLabelSetHook()], 2)) == []


# ------------------------------------------- 12.4 / 12.7: real tools/train.py
def _user_config(tmp_path, base, hooks):
    path = str(tmp_path / f'user_{osp.basename(base)}')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{osp.join(ROOT, base)!r}]\n'
                f'custom_hooks = {hooks!r}\n')
    return path


def _train(cfg, rel_data, work, epochs, extra=()):
    proc = run_tool([sys.executable, 'tools/train.py', cfg] +
                    tiny_options(rel_data, work, epochs, list(extra)),
                    check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize('base,hooks,missing', [
    # HST without LabelGraphHook: today trains on an all-zero graph
    ('configs/hst_demo.py',
     [dict(type='CSTPrototypeHook', start_epoch=3, interval=2,
           pipeline='test')], ['LabelGraphHook']),
    # DSRB without its prototype and clamp hooks: today fails at epoch 3
    ('configs/dsrb_demo.py', [dict(type='LabelGraphHook')],
     ['BlendWeightClampHook', 'PPRBPrototypeHook']),
])
def test_train_refuses_missing_state_hook(rel_data, tmp_path, base, hooks,
                                          missing):
    cfg = _user_config(tmp_path, base, hooks)
    rc, log = _train(cfg, rel_data, str(tmp_path / 'w'), 4)
    assert rc != 0
    assert 'RequiredHooksCheckHook' in log, log[-3000:]
    for hook in missing:
        assert f"dict(type='{hook}')" in log
    assert 'to custom_hooks' in log
    assert 'Epoch(train)' not in log  # before the first iteration


def _write_labels(path, mat):
    with open(path, 'w') as f:
        f.write('\n'.join(','.join(str(int(v)) for v in row) for row in mat)
                + '\n')


def test_train_refuses_labels_without_known_label(rel_data, tmp_path):
    """pbce_demo on a label file without any known label: today it trains the
    whole run at loss 0.0000. (No known positive: the same check, unit test
    below.)"""
    path = str(tmp_path / 'unknown.txt')
    _write_labels(path, np.zeros((NUM_TRAIN, 10), np.int8))
    rc, log = _train('configs/pbce_demo.py', rel_data, str(tmp_path / 'w'), 1,
                     ['train_dataloader.dataset.mode=file',
                      f'train_dataloader.dataset.label_file={path}'])
    assert rc != 0
    assert 'has no known label' in log, log[-3000:]
    assert path in log and 'known proportion 0.0000' in log
    assert 'Epoch(train)' not in log


# --------------------------------------------------- 12.7: supervision (unit)
def _warnings(fn):
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        out = fn()
    finally:
        logger.removeHandler(handler)
    return out, [r for r in records if r.levelno == logging.WARNING]


def test_check_supervision_values_and_class_warning():
    y = np.array([[1, 0, -1], [0, 0, -1], [1, -1, 0]], np.int8)
    stats, warns = _warnings(lambda: check_supervision(
        y, 'labels.txt', ['cat', 'dog', 'cow']))
    assert stats['known'] == pytest.approx(5 / 9)
    assert stats['positive'] == pytest.approx(2 / 9)
    assert stats['classes_without_positive'] == [1, 2]
    assert len(warns) == 1
    msg = warns[0].getMessage()
    assert '2 of 3 classes have no known positive' in msg
    assert '1 (dog), 2 (cow)' in msg and 'labels.txt' in msg
    with pytest.raises(ValueError, match=r'labels.txt has no known label '
                       r'\(3 images x 3 classes, known proportion 0.0000'):
        check_supervision(np.zeros((3, 3), np.int8), 'labels.txt')
    with pytest.raises(ValueError, match=r'no known positive label .*known '
                       r'proportion 0.3333, known positives 0'):
        check_supervision(np.array([[-1, 0, 0]] * 3, np.int8), 'labels.txt')
    with pytest.raises(ValueError, match='has no image'):
        check_supervision(np.zeros((0, 3), np.int8), 'labels.txt')


def test_describe_dataset_names_files(rel_data, tmp_path):
    ds = PartialLabelDataset(
        dict(type='CocoMultiLabel', data_root=rel_data, split='train'),
        known_ratio=0.5)
    text = describe_dataset(ds)
    assert text.startswith("PartialLabelDataset(mode='proportion', "
                           'known_ratio=0.5')
    assert 'CocoMultiLabel(' in text and 'instances_train2014.json' in text


# ---------------------------------------------------- 12.7: known_ratio types
def test_known_ratio_numpy_floats_and_bools(rel_data):
    inner = dict(type='CocoMultiLabel', data_root=rel_data, split='train')
    ref = PartialLabelDataset(inner, known_ratio=0.3).partial_labels
    for value in (np.float32(0.3), np.float64(0.3)):
        ds = PartialLabelDataset(inner, known_ratio=value)
        assert type(ds.known_ratio) is float and ds.known_ratio == 0.3
        np.testing.assert_array_equal(ds.partial_labels, ref)
    for value in (True, np.bool_(True), False):
        with pytest.raises(ValueError, match='not a bool') as info:
            PartialLabelDataset(inner, known_ratio=value)
        assert repr(value) in str(info.value)
    with pytest.raises(ValueError, match='not a bool'):
        proportion_mask(np.ones((2, 2), np.int8), True)


# ------------------------------------------- 12.5: no random CLIP by default
# (every protocol config has the fallback off: tests/test_configs.py)
def test_unloadable_clip_weights_fail_naming_model_and_switch():
    """The tiny open_clip model has no 'openai' weights: as offline for
    ViT-B-16, open_clip raises; the error now names the model, the weights
    and the switches."""
    with pytest.raises(RuntimeError) as info:
        MODELS.build(dict(type='OpenCLIPBackbone', model_name='mlrpl-tiny-vit',
                          pretrained='openai'))
    msg = str(info.value)
    assert "'openai'" in msg and "'mlrpl-tiny-vit'" in msg
    assert 'model.backbone.fallback_to_random=True' in msg
    assert 'model.backbone.pretrained' in msg and 'HF_HUB_OFFLINE=1' in msg
    with pytest.raises(RuntimeError) as info:
        MODELS.build(dict(type='SigRLHead', class_names=['a', 'b'],
                          embed_dims=64,
                          text_encoder=dict(model_name='mlrpl-tiny-vit',
                                            pretrained='openai')))
    msg = str(info.value)
    assert 'SigRLHead text tower' in msg and "'mlrpl-tiny-vit'" in msg
    assert 'model.head.text_encoder.fallback_to_random=True' in msg
