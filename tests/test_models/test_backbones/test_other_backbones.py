"""Every backbone row of docs/other_backbones.md trains a step with HSTHead.

The documented backbone dict (real arch, random init, no download) replaces
the ResNet of configs/hst_demo.py with the documented ``in_channels``; the
head is shrunk (D = 16) and the input is tiny (the doc's small-input
options: ``avg_pool=False``, Swin's ``pad_small_map=True``). One SGD step must
give a finite loss and change the backbone's weights; the map of the real
448 px input is asserted for the cheap backbones (the doc's "map at 448 px").
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mlrpl_mm  # noqa: F401

# name: (backbone dict as in the doc, in_channels, test input px)
BACKBONES = {
    'resnet18_demo_strides': (dict(type='ResNet', depth=18, num_stages=4,
                                   out_indices=(3, ), strides=(1, 2, 2, 1)),
                              512, 32),
    'convnext_atto': (dict(type='ConvNeXt', arch='atto', out_indices=(3, ),
                           gap_before_final_norm=False), 320, 64),
    'efficientnet_b0': (dict(type='EfficientNet', arch='b0'), 1280, 64),
    'mobilenetv3_small': (dict(type='MobileNetV3', arch='small'), 576, 64),
    'mobilenetv3_large': (dict(type='MobileNetV3', arch='large'), 960, 64),
    'timm_resnet18': (dict(type='TIMMBackbone', model_name='resnet18',
                           features_only=True, out_indices=(4, ),
                           pretrained=False), 512, 64),
    'vit_b16': (dict(type='VisionTransformer', arch='b', patch_size=16,
                     img_size=448, out_type='featmap', out_indices=-1),
                768, 32),
    'swin_tiny_small_input': (dict(type='SwinTransformer', arch='tiny',
                                   img_size=448, out_indices=(3, ),
                                   pad_small_map=True), 768, 64),
}
#: (B, C, H, W) at 448 px, as the doc's table states
MAP_448 = {'efficientnet_b0': (1, 1280, 14, 14),
           'mobilenetv3_small': (1, 576, 14, 14),
           'timm_resnet18': (1, 512, 14, 14)}


def _model(backbone, in_channels):
    cfg = Config.fromfile('configs/hst_demo.py')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone = backbone
    model_cfg.head.in_channels = in_channels
    model_cfg.head.trunk.update(feat_channels=16, inter_channels=8,
                                out_channels=16, avg_pool=False)
    model_cfg.head.trunk.class_embedding.embed_dims = 8
    model_cfg.data_preprocessor = cfg.data_preprocessor
    model_cfg.data_preprocessor.type = 'ClsDataPreprocessor'
    return MODELS.build(model_cfg)


def _batch(px, num_classes=10):
    g = torch.Generator().manual_seed(0)
    samples = []
    for i in range(2):
        ds = DataSample()
        label = torch.zeros(num_classes)
        label[torch.randperm(num_classes, generator=g)[:4]] = 1
        label[torch.randperm(num_classes, generator=g)[:4]] = -1
        ds.set_field(label, 'partial_label')
        ds.set_field(i, 'sample_idx', field_type='metainfo')
        samples.append(ds)
    inputs = [torch.randint(0, 256, (3, px, px), generator=g,
                            dtype=torch.uint8) for _ in range(2)]
    return dict(inputs=inputs, data_samples=samples)


def _epoch_zero():
    # the step runs in epoch 0, whatever an earlier test of this process
    # left in the message hub (pytest-xdist runs several files per process)
    hub = MessageHub.get_current_instance()
    for key, value in (('epoch', 0), ('iter', 0), ('max_epochs', 1),
                       ('max_iters', 1)):
        hub.update_info(key, value)


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_backbone_row_trains_one_step(name):
    _epoch_zero()
    init_default_scope('mmpretrain')
    backbone, in_channels, px = BACKBONES[name]
    torch.manual_seed(0)
    model = _model(copy.deepcopy(backbone), in_channels)
    model.train()
    feats = model.extract_feat(torch.zeros(1, 3, px, px))
    assert feats[-1].dim() == 4 and feats[-1].shape[1] == in_channels
    before = [p.detach().clone() for p in model.backbone.parameters()
              if p.requires_grad]
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log = model.train_step(_batch(px), wrapper)
    assert torch.isfinite(log['loss']), log
    after = [p for p in model.backbone.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
    if name in MAP_448:
        model.eval()
        with torch.no_grad():
            out = model.backbone(torch.zeros(1, 3, 448, 448))
        assert tuple(out[-1].shape) == MAP_448[name]


def test_swin_small_input_needs_pad_small_map():
    """The doc's note: without pad_small_map a 64 px input is refused."""
    init_default_scope('mmpretrain')
    backbone = dict(BACKBONES['swin_tiny_small_input'][0], pad_small_map=False)
    model = MODELS.build(backbone)
    with pytest.raises(AssertionError, match='pad_small_map=True'):
        model(torch.zeros(1, 3, 64, 64))
