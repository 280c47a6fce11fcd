"""The prototype hooks' training-set loader (training_set_loader.py).

Both CSTPrototypeHook and PPRBPrototypeHook default to pipeline='train' (the
reference's augmented training images, docs/equations/protocol.md "faithful by
default"); 'test' applies the config's val (else test) pipeline to the training
set's data infos; errors name the hook."""
import inspect
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import BaseDataset, pseudo_collate
from mmpretrain.registry import HOOKS, TRANSFORMS
from torch.utils.data import DataLoader

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks import CSTPrototypeHook, PPRBPrototypeHook
from mlrpl_mm.engine.hooks.training_set_loader import (
    PipelineView, SeededView, build_training_set_loader, find_pipeline)

HOOK_NAMES = ['CSTPrototypeHook', 'PPRBPrototypeHook']
N = 7


def _tag(name):
    def mark(results):
        results = dict(results)
        results['tags'] = '+'.join(filter(None, [results.get('tags'), name]))
        return results
    mark.__name__ = f'mark_{name}'
    return mark


@TRANSFORMS.register_module(name='_TestMarkTransform', force=True)
class _Mark:
    """Appends ``tag`` to the string ``results['tags']`` (a config-built transform)."""

    def __init__(self, tag):
        self.tag = tag

    def __call__(self, results):
        return _tag(self.tag)(results)


class _InfoSet(BaseDataset):
    """mmengine BaseDataset of N infos (no files); the training pipeline
    marks every sample 'train' (it stands for the augmentations)."""

    def __init__(self, pipeline=(_tag('train'), )):
        super().__init__(ann_file='', pipeline=list(pipeline),
                         serialize_data=False)

    def load_data_list(self):
        return [dict(img_id=i) for i in range(N)]


def _runner(dataset, cfg=None, batch_size=3, num_workers=0):
    train = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                       collate_fn=pseudo_collate)
    return SimpleNamespace(train_dataloader=train, cfg=cfg if cfg is not None
                           else {})


def _items(loader):
    out = []
    for batch in loader:
        out += [dict(img_id=i, sample_idx=s, tags=t) for i, s, t in
                zip(batch['img_id'], batch['sample_idx'], batch['tags'])]
    return out


VAL_CFG = dict(val_dataloader=dict(dataset=dict(
    type='Whatever', pipeline=[dict(type='_TestMarkTransform', tag='val')])))


@pytest.mark.parametrize('name', HOOK_NAMES)
def test_default_pipeline_is_train(name):
    cls = {'CSTPrototypeHook': CSTPrototypeHook,
           'PPRBPrototypeHook': PPRBPrototypeHook}[name]
    assert inspect.signature(cls).parameters['pipeline'].default == 'train'
    assert HOOKS.build(dict(type=name)).pipeline == 'train'


@pytest.mark.parametrize('name', HOOK_NAMES)
def test_default_loader_applies_the_training_pipeline(name):
    ds = _InfoSet()
    hook = HOOKS.build(dict(type=name))
    # a val pipeline in the config must not be used by the default
    loader = hook.build_loader(_runner(ds, VAL_CFG))
    # the training dataset as configured, with seeded augmentation
    assert isinstance(loader.dataset, SeededView) and loader.dataset.dataset is ds
    items = _items(loader)
    assert [it['sample_idx'] for it in items] == list(range(N))  # not shuffled
    assert [it['img_id'] for it in items] == list(range(N))
    assert all(it['tags'] == 'train' for it in items)
    assert loader.batch_size == 3  # the training batch size


@pytest.mark.parametrize('name', HOOK_NAMES)
def test_test_switch_applies_the_val_pipeline(name):
    ds = _InfoSet()
    pipeline_before = ds.pipeline
    hook = HOOKS.build(dict(type=name, pipeline='test', batch_size=2))
    loader = hook.build_loader(_runner(ds, VAL_CFG))
    assert isinstance(loader.dataset, PipelineView)
    items = _items(loader)
    assert [it['sample_idx'] for it in items] == list(range(N))
    assert all(it['tags'] == 'val' for it in items)  # not the train one
    assert loader.batch_size == 2
    # the training dataset is untouched
    assert ds.pipeline is pipeline_before and ds[0]['tags'] == 'train'


@pytest.mark.parametrize('name', HOOK_NAMES)
def test_test_switch_falls_back_to_test_dataloader_and_explicit_list(name):
    ds = _InfoSet()
    cfg = dict(val_dataloader=None, test_dataloader=dict(dataset=dict(
        type='ClassBalancedDataset', dataset=dict(
            pipeline=[dict(type='_TestMarkTransform', tag='test')]))))
    loader = HOOKS.build(dict(type=name, pipeline='test')).build_loader(
        _runner(ds, cfg))
    assert all(it['tags'] == 'test' for it in _items(loader))
    hook = HOOKS.build(dict(type=name, pipeline=[_tag('a'), dict(
        type='_TestMarkTransform', tag='b')]))
    assert all(it['tags'] == 'a+b' for it in _items(
        hook.build_loader(_runner(ds, VAL_CFG))))


@pytest.mark.parametrize('name', HOOK_NAMES)
def test_errors_name_the_hook(name):
    with pytest.raises(ValueError, match=f"{name}: pipeline must be 'train'"):
        HOOKS.build(dict(type=name, pipeline='val'))
    with pytest.raises(ValueError, match=f'{name}: pipeline must be'):
        HOOKS.build(dict(type=name, pipeline=dict(type='Resize')))
    ds = _InfoSet()
    with pytest.raises(ValueError, match=f'{name}: no val/test pipeline'):
        HOOKS.build(dict(type=name, pipeline='test')).build_loader(
            _runner(ds, dict(val_dataloader=dict(dataset=dict(type='X')))))
    hook = HOOKS.build(dict(type=name, pipeline=[lambda d: None]))
    with pytest.raises(RuntimeError, match=f'{name}: transform .* returned None'):
        _items(hook.build_loader(_runner(ds)))

    class NoPipeline(list):
        pass
    hook = HOOKS.build(dict(type=name, pipeline='test'))
    with pytest.raises(AttributeError, match=f'{name}: the training dataset '
                       r'\(NoPipeline\) has neither'):
        hook.build_loader(_runner(NoPipeline(range(3)), VAL_CFG))


def test_dataset_without_data_infos_gets_a_copy_with_the_pipeline_replaced():
    class Plain:
        def __init__(self):
            self.pipeline = _tag('train')

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.pipeline(dict(img_id=i, sample_idx=i))
    ds = Plain()
    loader = build_training_set_loader(_runner(ds), [_tag('x')], 'SomeHook')
    assert loader.dataset is not ds and ds.pipeline.__name__ == 'mark_train'
    assert [it['tags'] for it in _items(loader)] == ['x'] * 4


def test_hooks_keep_their_loader_defaults():
    """CST: 0 workers and pseudo_collate; PPRB: the training loader's."""
    ds = _InfoSet()
    runner = _runner(ds, num_workers=1)
    runner.train_dataloader.collate_fn = lambda batch: batch
    cst = CSTPrototypeHook().build_loader(runner)
    assert cst.num_workers == 0 and cst.collate_fn is pseudo_collate
    pprb = PPRBPrototypeHook().build_loader(runner)
    assert pprb.num_workers == 1
    assert pprb.collate_fn is runner.train_dataloader.collate_fn
    assert PPRBPrototypeHook(num_workers=0).build_loader(runner).num_workers == 0


def test_find_pipeline_nested():
    p = [dict(type='A')]
    assert find_pipeline(None) is None and find_pipeline([p]) is None
    assert find_pipeline(dict(dataset=dict(pipeline=p))) == p
    assert find_pipeline(dict(dataset=dict(type='ConcatDataset', datasets=[
        dict(type='X'), dict(dataset=dict(pipeline=p))]))) == p
    assert find_pipeline(dict(pipeline=None, dataset=dict(type='X'))) is None


class _RandomAug(torch.utils.data.Dataset):
    """Each item draws from the three global generators (as transforms do)."""

    def __len__(self):
        return 7

    def __getitem__(self, idx):
        import random

        import numpy as np
        return (idx, random.random(), float(np.random.rand()),
                float(torch.rand(1)))


def _read(view, order, num_workers=0):
    loader = DataLoader(view, batch_size=None, num_workers=num_workers,
                        sampler=list(order))
    return {int(it[0]): tuple(float(x) for x in it[1:]) for it in loader}


def test_seeded_view_augmentation_depends_on_the_index_only():
    """The same draws whatever the order, the sharding or the workers (so N
    processes see the single-process images); new draws in another epoch or
    with another seed; the caller's random streams are left as they were."""
    import random

    import numpy as np
    view = SeededView(_RandomAug(), seed=3, epoch=5)
    ref = _read(view, range(7))
    assert _read(view, reversed(range(7))) == ref
    # two 'ranks' reading interleaved shards, each with a worker process
    shards = {**_read(view, range(0, 7, 2), num_workers=1),
              **_read(view, range(1, 7, 2), num_workers=1)}
    assert shards == ref
    assert len({v for v in ref.values()}) == 7  # images differ from each other
    other_epoch = _read(SeededView(_RandomAug(), seed=3, epoch=6), range(7))
    other_seed = _read(SeededView(_RandomAug(), seed=4, epoch=5), range(7))
    assert all(other_epoch[i] != ref[i] and other_seed[i] != ref[i]
               for i in range(7))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    view[2]
    assert (random.random(), float(np.random.rand()),
            float(torch.rand(1))) == expected


def test_train_loader_is_seeded_with_runner_seed_and_epoch():
    ds = _InfoSet()
    runner = _runner(ds, VAL_CFG)
    runner.seed, runner.epoch = 11, 4
    view = HOOKS.build(dict(type='CSTPrototypeHook')).build_loader(
        runner).dataset
    assert (view.seed, view.epoch) == (11, 4)
