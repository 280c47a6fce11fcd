import numpy as np
import pytest
from mmengine.config import Config
from mmpretrain.registry import TRANSFORMS

import mlrpl_mm  # noqa: F401
from tests.fixtures import make_coco_fixture


def test_random_side_crop_sides_and_position():
    t = TRANSFORMS.build(dict(type='RandomSideCrop', sides=(8, 6, 4)))
    img = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    np.random.seed(0)
    seen = set()
    for _ in range(60):
        out = t(dict(img=img.copy()))
        h, w = out['img'].shape[:2]
        assert h == w and h in (8, 6, 4)
        x1, y1, x2, y2 = out['crop_bbox']
        np.testing.assert_array_equal(out['img'], img[y1:y2, x1:x2])
        assert out['img_shape'] == (h, w)
        seen.add(h)
    assert seen == {8, 6, 4}
    # distorted crops and sides larger than the image
    t = TRANSFORMS.build(dict(type='RandomSideCrop', sides=(20, 6),
                              max_distort=1))
    shapes = {t(dict(img=img.copy()))['img'].shape[:2] for _ in range(60)}
    assert shapes == {(10, 12), (10, 6), (6, 12), (6, 6)}
    with pytest.raises(ValueError, match='sides'):
        TRANSFORMS.build(dict(type='RandomSideCrop', sides=(0, 4)))


def test_protocol_pipelines_from_base_config(tmp_path):
    cfg = Config.fromfile('configs/_base_/datasets/coco_partial.py')
    fx = make_coco_fixture(str(tmp_path), num_train=2, num_val=2,
                           num_classes=80, img_size=40)
    from mmpretrain.registry import DATASETS
    train = cfg.train_dataloader.dataset
    train.dataset.data_root = fx['data_root']
    ds = DATASETS.build(train)
    out = ds[0]
    assert out['inputs'].shape == (3, 448, 448)
    assert out['data_samples'].partial_label.shape == (80, )
    assert 'full_label' not in out['data_samples']
    val = cfg.val_dataloader.dataset
    val.data_root = fx['data_root']
    vds = DATASETS.build(val)
    out = vds[1]
    assert out['inputs'].shape == (3, 448, 448)
    np.testing.assert_array_equal(out['data_samples'].full_label,
                                  fx['labels']['val'][1])


PROTOCOL_BASES = ['configs/_base_/datasets/coco_partial.py',
                  'configs/_base_/datasets/voc_partial.py',
                  'configs/_base_/datasets/vg_partial.py']


@pytest.mark.parametrize('base', PROTOCOL_BASES)
def test_protocol_pipeline_steps(base):
    """docs/equations/protocol.md: resize 512 x 512 (bicubic) -> random square
    crop with a side in {512, 448, 384, 320, 256} -> resize 448 -> horizontal
    flip, ImageNet mean/std; test: resize 448 x 448. Checked step by step on a
    non-square image (the end shape alone cannot tell a missing step)."""
    from PIL import Image
    cfg = Config.fromfile(base)
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.std == [58.395, 57.12, 57.375]
    assert cfg.data_preprocessor.to_rgb
    train = cfg.train_dataloader.dataset.dataset.pipeline
    assert [t['type'] for t in train] == [
        'LoadImageFromFile', 'Resize', 'RandomSideCrop', 'Resize',
        'RandomFlip', 'PackInputs']
    assert train[2].get('max_distort', 0) == 0  # square crops
    assert train[4]['prob'] == 0.5 and train[4]['direction'] == 'horizontal'
    assert 'partial_label' in train[5]['algorithm_keys']
    steps = [TRANSFORMS.build(t) for t in train[1:5]]
    rng = np.random.RandomState(0)
    img = rng.randint(0, 256, (300, 600, 3), dtype=np.uint8)
    np.random.seed(0)
    sides = set()
    for _ in range(40):
        r = dict(img=img.copy(), img_shape=img.shape[:2],
                 ori_shape=img.shape[:2])
        r = steps[0](r)
        assert r['img'].shape == (512, 512, 3)
        # bicubic (PIL), not the default bilinear
        ref = np.asarray(Image.fromarray(img).resize((512, 512),
                                                     Image.BICUBIC))
        np.testing.assert_array_equal(r['img'], ref)
        r = steps[1](r)
        h, w = r['img'].shape[:2]
        assert h == w and h in (512, 448, 384, 320, 256)
        sides.add(h)
        r = steps[3](steps[2](r))
        assert r['img'].shape == (448, 448, 3)
    assert sides == {512, 448, 384, 320, 256}
    test = cfg.val_dataloader.dataset.pipeline
    assert [t['type'] for t in test] == ['LoadImageFromFile', 'Resize',
                                         'PackInputs']
    r = TRANSFORMS.build(test[1])(dict(img=img.copy(),
                                       img_shape=img.shape[:2]))
    assert r['img'].shape == (448, 448, 3)
    assert not cfg.val_dataloader.get('drop_last', False)
