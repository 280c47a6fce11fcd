"""The SigRL / SPML configs: protocol values and buildable models."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def cfg(name):
    return Config.fromfile(osp.join(ROOT, 'configs', name))


def test_sigrl_spml_configs_follow_the_reference():
    for name, alpha in (('sigrl_voc_spml.py', 0.2),
                        ('sigrl_coco_spml.py', 0.1)):
        c = cfg(name)
        assert c.model.backbone.model_name == 'ViT-B-16-quickgelu'
        assert c.model.backbone.pretrained == 'openai'
        assert c.model.head.loss == dict(type='SPMLEMLoss', alpha=alpha)
        assert c.model.head.text_encoder.template == \
            'There is a {} in the scene'
        assert c.optim_wrapper.optimizer == dict(type='Adam', lr=1e-5,
                                                 weight_decay=0.0)
        assert c.train_cfg.max_epochs == 10 and c.param_scheduler == []
        assert c.train_dataloader.batch_size == 1
        assert c.model.backbone.trainable == 'all'   # whole tower trained
        # resize 448 + flip, then 224; ImageNet mean / std
        steps = [(t.type, t.get('scale')) for t in
                 c.train_dataloader.dataset.pipeline]
        assert steps[1:4] == [('Resize', (448, 448)), ('RandomFlip', None),
                              ('Resize', (224, 224))]
        assert c.data_preprocessor.mean == [123.675, 116.28, 103.53]
        assert c.train_dataloader.dataset.mode == 'single_positive'
        assert c.val_dataloader.dataset.subset == 'val'
        assert c.val_evaluator.ap_style == 'sklearn'
        assert c.default_hooks.checkpoint.save_best == \
            'multi-label/mAP_sklearn'
        # every SPML training image has its one positive: nothing to drop
        assert not c.model.head.get('drop_no_positive', False)
    assert len(cfg('sigrl_voc_spml.py').model.head.class_names) == 20


def test_sigrl_zero_shot_config():
    c = cfg('sigrl_nus_zsl.py')
    assert c.model.backbone.trainable == 2 and c.model.backbone.with_teacher
    assert c.model.head.loss == dict(type='SPMLRankingLoss', margin=1.0)
    assert c.model.head.distill_loss.type == 'SigRLL1DistillLoss'
    assert c.model.head.num_classes == 925
    assert c.train_dataloader.dataset.label_set == 'seen'
    assert c.test_dataloader.dataset.label_set == 'all'
    assert c.optim_wrapper.optimizer == dict(type='AdamW', lr=1e-4,
                                             weight_decay=0.05)
    assert c.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.65
    assert c.param_scheduler[1].eta_min == 1e-7
    # 2-epoch linear warm-up, then cosine over epochs 2..20
    warm, cos = c.param_scheduler
    assert warm.type == 'LinearLR' and (warm.begin, warm.end) == (0, 2)
    assert cos.type == 'CosineAnnealingLR' and (cos.begin, cos.end) == (2, 20)
    # weight decay on >= 2-D parameters only, layer-wise decay constructor
    assert c.optim_wrapper.constructor == \
        'LearningRateDecayOptimWrapperConstructor'
    assert c.optim_wrapper.paramwise_cfg.flat_decay_mult == 0.0
    ra = [t for t in c.train_dataloader.dataset.pipeline
          if t.type == 'RandAugment']
    assert len(ra) == 1 and ra[0].magnitude_level == 9
    assert c.train_cfg.max_epochs == 20 and c.train_dataloader.batch_size == 32
    assert c.test_evaluator.topks == (3, 5)
    # faithful defaults (issue 13.4 / 13.5): training images without a
    # positive dropped; a test class without positive counts with AP 0
    assert c.model.head.drop_no_positive is True
    assert c.test_evaluator.no_positive == 'zero'
    assert c.val_evaluator.no_positive == 'zero'
    from mmpretrain.registry import METRICS
    assert METRICS.build(dict(type='ZeroShotMultiLabelMetric')).no_positive \
        == 'zero'


def test_known_proportion_configs():
    files = sorted(glob.glob(osp.join(ROOT, 'configs', 'sigrl_coco_p*.py')))
    assert len(files) == 9
    for f in files:
        c = Config.fromfile(f)
        p = int(osp.basename(f)[len('sigrl_coco_p'):-3])
        assert c.train_dataloader.dataset.known_ratio == pytest.approx(p / 100)
        assert c.model.head.loss == dict(type='PartialBCELoss')
        assert c.val_evaluator.ap_style == 'voc'


@pytest.mark.parametrize('name,loss', [
    ('spml_an_voc.py', 'AssumeNegativeLoss'),
    ('spml_em_coco.py', 'SPMLEMLoss'),
    ('spml_llr_voc.py', 'LargeLossRejectionLoss')])
def test_spml_baseline_models_build_and_train_step(name, loss):
    c = cfg(name)
    assert c.model.backbone.depth == 50 and c.model.head.loss.type == loss
    m = c.model.copy()
    # a tiny random-init ResNet keeps the test fast and offline
    m.backbone.update(depth=18, init_cfg=None, base_channels=8,
                      stem_channels=8)
    m.head.in_channels = 64
    model = MODELS.build(m)
    n = c.model.head.num_classes
    samples = []
    for i in range(2):
        ds = DataSample(metainfo=dict(sample_idx=i))
        lab = np.zeros(n, np.int8)
        lab[i] = 1
        ds.set_field(lab, 'partial_label')
        samples.append(ds)
    losses = model.loss(torch.randn(2, 3, 32, 32), samples)
    assert torch.isfinite(losses['loss'])
