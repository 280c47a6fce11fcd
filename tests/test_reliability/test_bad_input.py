"""Bad input -> a clear error naming the file, field or value, raised before
training where possible (dataset build or ClassCountCheckHook.before_train).
"""
import json
import logging
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets import (CocoMultiLabel, PartialLabelDataset,
                               VOCMultiLabel)
from mlrpl_mm.engine.hooks import ClassCountCheckHook
from tests.fixtures import make_voc_fixture

from .conftest import run_tool, tiny_options

TEST_PIPELINE = [dict(type='LoadImageFromFileOrSkip'),
                 dict(type='Resize', scale=(64, 64)),
                 dict(type='PackInputs',
                      algorithm_keys=['partial_label', 'full_label'])]


@pytest.fixture
def coco_copy(rel_data, tmp_path):
    """A private copy of the demo data that a test may damage."""
    root = str(tmp_path / 'data')
    shutil.copytree(rel_data, root)
    return root


# ------------------------------------------------------------------ images
def test_missing_image_named_at_build_with_check_images(coco_copy):
    ds = CocoMultiLabel(data_root=coco_copy, split='train')
    victim = ds.get_data_info(3)['img_path']
    os.remove(victim)
    with pytest.raises(FileNotFoundError, match=osp.basename(victim)):
        CocoMultiLabel(data_root=coco_copy, split='train', check_images=True)


@pytest.mark.parametrize('damage', ['missing', 'truncated', 'empty'])
def test_unreadable_image_named_by_loader(coco_copy, damage):
    ds = CocoMultiLabel(data_root=coco_copy, split='val', test_mode=True,
                        pipeline=TEST_PIPELINE)
    victim = ds.get_data_info(2)['img_path']
    if damage == 'missing':
        os.remove(victim)
    else:
        with open(victim, 'rb') as f:
            data = f.read()
        with open(victim, 'wb') as f:
            f.write(data[:len(data) // 3] if damage == 'truncated' else b'')
    ds[1]  # others still load
    with pytest.raises(OSError) as info:
        ds[2]
    msg = str(info.value)
    assert victim in msg and 'img_path' in msg and 'sample 2' in msg
    assert 'skip_unreadable=True' in msg


def test_unreadable_image_skipped_on_request_with_logged_count(coco_copy):
    inner = CocoMultiLabel(data_root=coco_copy, split='train')
    victims = [inner.get_data_info(i)['img_path'] for i in (0, 1)]
    for v in victims:
        os.remove(v)
    pipeline = [dict(TEST_PIPELINE[0], skip_unreadable=True)] + TEST_PIPELINE[1:]
    ds = PartialLabelDataset(
        dict(type='CocoMultiLabel', data_root=coco_copy, split='train'),
        known_ratio=0.5, pipeline=pipeline)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        np.random.seed(0)
        out0 = ds[0]
        out1 = ds[1]
    finally:
        logger.removeHandler(handler)
    # another sample came back instead of the unreadable ones
    for out in (out0, out1):
        assert out['data_samples'].sample_idx not in (0, 1)
    msgs = [r.getMessage() for r in records]
    assert any(victims[0] in m and '1 image(s) skipped' in m for m in msgs)
    assert any(victims[1] in m and '2 image(s) skipped' in m for m in msgs)
    assert ds.pipeline.transforms[0].num_skipped == 2


# ----------------------------------------------------------- annotations
def test_truncated_coco_json_names_file(coco_copy):
    ann = osp.join(coco_copy, 'annotations', 'instances_train2014.json')
    with open(ann) as f:
        text = f.read()
    with open(ann, 'w') as f:
        f.write(text[:len(text) // 2])
    with pytest.raises(ValueError, match='instances_train2014.json'):
        CocoMultiLabel(data_root=coco_copy, split='train')
    # valid json without the COCO fields
    with open(ann, 'w') as f:
        json.dump({'images': []}, f)
    with pytest.raises(ValueError, match='instances_train2014.json'):
        CocoMultiLabel(data_root=coco_copy, split='train')


def test_truncated_voc_xml_names_file(tmp_path):
    voc = make_voc_fixture(str(tmp_path), split_sizes={'trainval': 3})
    xml = osp.join(voc['data_root'], 'Annotations', voc['ids']['trainval'][1]
                   + '.xml')
    with open(xml) as f:
        text = f.read()
    with open(xml, 'w') as f:
        f.write(text[:len(text) // 2])
    with pytest.raises(ValueError, match=voc['ids']['trainval'][1] + '.xml'):
        VOCMultiLabel(data_root=voc['data_root'], split='trainval')


# ------------------------------------------------------ partial-label file
@pytest.mark.parametrize('content,pattern', [
    ('shape', r'columns, but the dataset has 10 classes'),
    ('rows', r'rows, but the dataset has 16 images'),
    ('value', r'value 2 at row 3, column 4'),
    ('ragged', r'row 5 has 9 entries'),
    ('text', r'line 2: cannot parse'),
])
def test_bad_partial_label_file(rel_data, tmp_path, content, pattern):
    rng = np.random.RandomState(0)
    mat = rng.choice([-1, 0, 1], size=(16, 10))
    path = str(tmp_path / f'{content}.txt')
    lines = [','.join(str(v) for v in row) for row in mat]
    if content == 'shape':
        lines = [','.join(str(v) for v in row[:9]) for row in mat]
    elif content == 'rows':
        lines = lines[:15]
    elif content == 'value':
        mat[3, 4] = 2
        lines = [','.join(str(v) for v in row) for row in mat]
    elif content == 'ragged':
        lines[5] = ','.join(str(v) for v in mat[5][:9])
    elif content == 'text':
        lines[1] = 'one,two'
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=pattern) as info:
        PartialLabelDataset(
            dict(type='CocoMultiLabel', data_root=rel_data, split='train'),
            mode='file', label_file=path)
    assert path in str(info.value)


@pytest.mark.parametrize('ratio', [0, -0.1, 1.5, float('nan'), '0.3'])
def test_known_ratio_outside_unit_interval(rel_data, ratio):
    with pytest.raises(ValueError, match='known_ratio must be in') as info:
        PartialLabelDataset(
            dict(type='CocoMultiLabel', data_root=rel_data, split='train'),
            known_ratio=ratio)
    assert repr(ratio) in str(info.value)


# ------------------------------------------- class counts, embeddings, fit
def _pbce_model(**head):
    cfg = Config.fromfile('configs/pbce_demo.py')
    cfg.model.backbone.update(base_channels=8, stem_channels=8)
    cfg.model.head.in_channels = 64
    cfg.model.head.update(head)
    return MODELS.build(cfg.model)


def _train_set(root):
    return CocoMultiLabel(data_root=root, split='train',
                          pipeline=TEST_PIPELINE)


def test_class_count_mismatch_dataset_vs_head(rel_data):
    hook = ClassCountCheckHook()
    ds = _train_set(rel_data)
    assert hook.check_class_counts(_pbce_model(), ds) == 10
    with pytest.raises(ValueError, match=r'has 10 classes .* num_classes=9; '
                       r'set model.head.num_classes=10'):
        hook.check_class_counts(_pbce_model(num_classes=9), ds)
    val = CocoMultiLabel(data_root=rel_data, split='val',
                         metainfo=dict(classes=[str(i) for i in range(10)]))
    hook.check_class_counts(_pbce_model(), ds, val)


def test_class_count_mismatch_embedding_rows(rel_data):
    """A head whose class-embedding module has another row count."""
    head = MODELS.build(dict(
        type='HSTHead', num_classes=10, in_channels=64, feat_channels=16,
        inter_channels=8, out_channels=16,
        class_embedding=dict(type='LearnableClassEmbedding', embed_dims=8)))
    model = torch.nn.Module()
    model.head = head
    hook = ClassCountCheckHook()
    assert hook.check_class_counts(model, _train_set(rel_data)) == 10
    head.trunk.class_embedding.embedding = torch.nn.Parameter(
        torch.zeros(9, 8))
    head.num_classes = 10
    with pytest.raises(ValueError, match=r'head.trunk.class_embedding holds 9 '
                       r'class embedding rows .* 10 classes'):
        hook.check_class_counts(model, _train_set(rel_data))


@pytest.mark.parametrize('shape', [(9, 8), (10, ), (10, 8, 1)])
def test_class_embedding_file_of_wrong_shape(tmp_path, shape):
    path = str(tmp_path / 'emb.npy')
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(ValueError) as info:
        MODELS.build(dict(
            type='HSTHead', num_classes=10, in_channels=64, feat_channels=16,
            inter_channels=8, out_channels=16,
            class_embedding=dict(type='NpyClassEmbedding', path=path)))
    assert path in str(info.value)


def test_embedding_file_nan_refused(tmp_path):
    path = str(tmp_path / 'emb.npy')
    arr = np.zeros((10, 8), np.float32)
    arr[2, 3] = np.nan
    np.save(path, arr)
    with pytest.raises(ValueError, match='NaN'):
        MODELS.build(dict(type='NpyClassEmbedding', path=path,
                          num_classes=10))


def test_backbone_head_channel_mismatch_named(rel_data):
    hook = ClassCountCheckHook()
    ds = _train_set(rel_data)
    hook.check_feature_fit(_pbce_model(), ds)  # the fitting pair passes
    model = _pbce_model(in_channels=512)  # ResNet-18 with 8 base ch. gives 64
    with pytest.raises(ValueError, match=r'feature mismatch \(backbone ResNet, '
                       r'neck GlobalAveragePooling, head PartialLabelClsHead\)'
                       r'.*\(1, 64\) \(64 channels\) but '
                       r'model.head.in_channels=512'):
        hook.check_feature_fit(model, ds)
    assert model.training  # mode restored


@pytest.mark.parametrize('config', ['configs/hst_demo.py',
                                    'configs/dsrb_demo.py'])
def test_spatial_head_channel_mismatch_names_value(rel_data, config):
    """Issue 18/3: a wrong in_channels of a spatial head is reported as a
    channel mismatch naming model.head.in_channels=<actual>, by the
    before-train check and by the head itself (not as a '4-D map' error)."""
    cfg = Config.fromfile(config)
    cfg.model.backbone.update(base_channels=16, stem_channels=16)  # 128 ch.
    model = MODELS.build(cfg.model)  # head keeps in_channels=512
    with pytest.raises(ValueError, match=r'feature mismatch \(backbone ResNet'
                       r'.*\(1, 128, 4, 4\) \(128 channels\) but '
                       r'model.head.in_channels=512; set '
                       r'model.head.in_channels=128'):
        ClassCountCheckHook().check_feature_fit(model, _train_set(rel_data))
    feats = model.extract_feat(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r'channel mismatch: .*\(1, 128, 4, '
                       r'4\) has 128 channels .* set model.head.in_channels=128'):
        model.head(feats)


def test_spatial_head_on_pooled_features_named(rel_data):
    """HSTHead needs a (B, C, H, W) map; a pooling neck gives (B, C)."""
    cfg = Config.fromfile('configs/hst_demo.py')
    cfg.model.backbone.update(base_channels=8, stem_channels=8)
    cfg.model.head.in_channels = 64
    cfg.model.head.trunk.update(feat_channels=16, inter_channels=8,
                                out_channels=16)
    cfg.model.head.trunk.class_embedding.embed_dims = 8
    cfg.model.neck = dict(type='GlobalAveragePooling')
    model = MODELS.build(cfg.model)
    torch.manual_seed(3)
    state = torch.get_rng_state()
    with pytest.raises(ValueError, match=r'feature mismatch \(backbone '
                       r'ResNet, neck GlobalAveragePooling, head HSTHead\).*'
                       r'\[\(1, 64\)\].*\(B, C, H, W\)'):
        ClassCountCheckHook().check_feature_fit(model, _train_set(rel_data))
    assert torch.equal(torch.get_rng_state(), state)  # probe left no trace


def test_train_tool_refuses_class_mismatch_before_training(rel_data, tmp_path):
    proc = run_tool([sys.executable, 'tools/train.py', 'configs/pbce_demo.py']
                    + tiny_options(rel_data, str(tmp_path / 'w'), 1,
                                   ['model.head.num_classes=12']), check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'set model.head.num_classes=10' in log
    assert 'Epoch(train)' not in log  # refused before the first iteration
