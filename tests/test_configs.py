"""Every config under configs/ (not _base_) loads, names registered
components only, and builds its model offline."""
import contextlib
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mlrpl_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(ROOT, 'configs', '**', '*.py'), recursive=True) if '_base_'
    not in osp.relpath(p, osp.join(ROOT, 'configs')).split(osp.sep))


def _registries():
    from mmpretrain import registry as r
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    names = [
        'MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'OPTIMIZERS',
        'OPTIM_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
        'VISBACKENDS', 'VISUALIZERS', 'DATA_SAMPLERS', 'LOOPS', 'FUNCTIONS',
        'LOG_PROCESSORS', 'WEIGHT_INITIALIZERS', 'EVALUATOR', 'RUNNERS',
        'BATCH_AUGMENTS', 'MODEL_WRAPPERS', 'TASK_UTILS', 'RUNNER_CONSTRUCTORS'
    ]
    return [getattr(r, n) for n in names if hasattr(r, n)]


def _types(obj, path=''):
    """Yield (path, type name) of every dict with a string ``type``."""
    if isinstance(obj, dict):
        t = obj.get('type')
        if isinstance(t, str):
            yield path, t
        for k, v in obj.items():
            yield from _types(v, f'{path}.{k}' if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _types(v, f'{path}[{i}]')


def _offline(obj):
    """Drop pretrained checkpoints: init_cfg of type Pretrained -> None,
    ``pretrained=<str>`` -> None."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == 'init_cfg' and _is_pretrained(v):
                out[k] = None
            elif k == 'pretrained' and isinstance(v, str):
                out[k] = None
            else:
                out[k] = _offline(v)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_offline(v) for v in obj)
    return obj


def _stand_in_data_files(obj, num_classes, tmp_dir):
    """Replace a missing derived class-embedding file (``NpyClassEmbedding``,
    produced by a data-prep script, e.g. (C, 300) GloVe vectors) by a random
    stand-in of that shape, so the model builds offline."""
    if isinstance(obj, dict):
        if obj.get('type') == 'NpyClassEmbedding' and \
                not osp.isfile(obj.get('path', '')):
            c = obj.get('num_classes') or num_classes
            path = osp.join(tmp_dir, f'stand_in_{c}x300.npy')
            np.save(path,
                    np.random.RandomState(0).randn(c, 300).astype(np.float32))
            obj['path'] = path
        for v in obj.values():
            _stand_in_data_files(v, num_classes, tmp_dir)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _stand_in_data_files(v, num_classes, tmp_dir)


@contextlib.contextmanager
def _skip_weight_init():
    """Build modules without filling their weights (``torch.nn.init`` fills
    become no-ops): the structural check does not need random values and the
    build of ~30 ResNet-101 / ViT models takes half the time."""
    names = [
        'uniform_', 'normal_', 'trunc_normal_', 'kaiming_uniform_',
        'kaiming_normal_', 'xavier_uniform_', 'xavier_normal_', 'constant_',
        'zeros_', 'ones_', 'orthogonal_'
    ]
    saved = {n: getattr(torch.nn.init, n) for n in names}
    for n in names:
        setattr(torch.nn.init, n, lambda t, *args, **kwargs: t)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def _is_pretrained(v):
    if isinstance(v, dict):
        return v.get('type') == 'Pretrained'
    if isinstance(v, (list, tuple)):
        return any(_is_pretrained(x) for x in v)
    return False


def test_configs_exist():
    assert CONFIGS, 'no config found under configs/'
    for ds in ('coco', 'voc', 'vg'):
        for p in range(10, 100, 10):
            assert osp.join(ROOT, 'configs', f'pbce_{ds}_p{p}.py') in CONFIGS


@pytest.fixture(scope='module')
def registries():
    return _registries()


_built = {}


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_loads_and_builds(path, registries, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.get('default_scope') == 'mmpretrain', path
    assert 'mlrpl_mm' in cfg.get('custom_imports', {}).get('imports', []), \
        f'{path}: custom_imports must import mlrpl_mm'
    for key in ('model', 'train_dataloader', 'val_dataloader', 'val_evaluator',
                'optim_wrapper', 'train_cfg'):
        assert key in cfg, f'{path}: no {key}'
    for where, t in _types(cfg._cfg_dict.to_dict()):
        assert any(r.get(t) is not None for r in registries), \
            f'{path}: {where}.type={t!r} is not registered'
    # evaluation keeps every test image (no drop_last)
    for dl in ('val_dataloader', 'test_dataloader'):
        if dl in cfg and cfg[dl] is not None:
            assert not cfg[dl].get('drop_last', False), f'{path}: {dl}'
    model_cfg = _offline(copy.deepcopy(cfg.model.to_dict()))
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor.to_dict()
    head = model_cfg.get('head') or {}
    dp = model_cfg.get('data_preprocessor') or {}
    if 'num_classes' in head and 'num_classes' in dp:
        assert head['num_classes'] == dp['num_classes'], \
            f'{path}: head and data_preprocessor disagree on num_classes'
    max_epochs = cfg.train_cfg.get('max_epochs')
    key = repr(model_cfg) + repr(max_epochs)
    _stand_in_data_files(model_cfg, head.get('num_classes'), str(tmp_path))
    if key not in _built:
        from mmpretrain.registry import MODELS

        from mlrpl_mm.engine.hooks.required_hooks_check_hook import \
            collect_requirements
        with DefaultScope.overwrite_default_scope('mmpretrain'), \
                _skip_weight_init():
            model = MODELS.build(model_cfg)
        assert isinstance(model, torch.nn.Module)
        assert sum(p.numel() for p in model.parameters()) > 0
        _built[key] = {r[2] for r in collect_requirements(model, max_epochs)}
    # every hook the model needs (label graph, prototypes, clamp, ...) is
    # registered: RequiredHooksCheckHook would refuse the config otherwise
    from mmpretrain.registry import HOOKS
    have = set()
    for h in cfg.get('custom_hooks', []):
        cls = HOOKS.get(h['type'])
        have.update(c.__name__ for c in cls.__mro__)
    assert _built[key] <= have, \
        f'{path}: custom_hooks lack {sorted(_built[key] - have)}'
    for name in ('required_hooks', 'supervision_check', 'class_count_check'):
        assert cfg.default_hooks.get(name), f'{path}: default_hooks.{name}'
    # protocol configs never train from random weights when the pretrained
    # ones cannot be loaded (demo / test configs may, explicitly)
    if '_demo' not in osp.basename(path):
        flags = dict(_fallback_flags(cfg._cfg_dict.to_dict()))
        assert not any(flags.values()), f'{path}: {flags}'
        if osp.basename(path).startswith('sigrl_'):
            assert len(flags) == 2, f'{path}: {flags}'  # both towers, False


def _fallback_flags(obj, path=''):
    """Yield (path, value) of every ``fallback_to_random`` key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'fallback_to_random':
                yield f'{path}.{k}', v
            yield from _fallback_flags(v, f'{path}.{k}')
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _fallback_flags(v, f'{path}[{i}]')


def test_import_registers_into_mmpretrain_registries():
    """``python -c "import mlrpl_mm"`` alone (fresh interpreter, no
    register_all_modules, no config) fills mmpretrain's registries."""
    import json
    import subprocess
    import sys
    code = (
        'import json, mlrpl_mm\n'
        'from mmpretrain import registry as r\n'
        'print(json.dumps({n: sorted(k for k, v in getattr(r, n).module_dict'
        '.items() if v.__module__.startswith("mlrpl_mm")) for n in '
        '("MODELS", "DATASETS", "METRICS", "HOOKS", "TRANSFORMS")}))\n')
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    expected = dict(
        MODELS={'PartialLabelClsHead', 'PartialBCELoss',
                'PartialAsymmetricLoss', 'HSTHead', 'DSRBHead', 'SigRLHead'},
        DATASETS={'CocoMultiLabel', 'VOCMultiLabel', 'VGMultiLabel',
                  'NUSWideMultiLabel', 'PartialLabelDataset'},
        METRICS={'MultiLabelMAP'},
        HOOKS={'LabelGraphHook', 'ClassCountCheckHook', 'RandomStateHook'},
        TRANSFORMS={'RandomSideCrop', 'LoadImageFromFileOrSkip'})
    for registry, names in expected.items():
        missing = names - set(got[registry])
        assert not missing, f'{registry} lacks {sorted(missing)}'
