"""MLRPLRunner gives the training loader resume-exact worker seeding, also
when it is built without tools/train.py (mmpretrain's tools, mim, scripts:
``RUNNERS.build(cfg)``), so a resumed run's augmentation continues the
interrupted run's instead of replaying mmengine's per-epoch seeds."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import RUNNERS

import mlrpl_mm  # noqa: F401
from mlrpl_mm.datasets.worker_seed import (resumable_train_loader,
                                           resumable_worker_init_fn)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_resumable_train_loader_defaults_and_keeps_explicit_values():
    dl = dict(num_workers=2)
    resumable_train_loader(dl)
    assert dl == dict(num_workers=2, persistent_workers=False,
                      worker_init_fn=dict(type='resumable_worker_init_fn'))
    own = dict(num_workers=2, persistent_workers=True,
               worker_init_fn=dict(type='my_fn'))
    resumable_train_loader(own)
    assert own == dict(num_workers=2, persistent_workers=True,
                       worker_init_fn=dict(type='my_fn'))
    none = dict(num_workers=0)
    resumable_train_loader(none)
    assert none == dict(num_workers=0)   # no workers: nothing to seed


@pytest.mark.parametrize('cfg_name', ['pbce_demo_lite.py'])
def test_runner_built_from_registry_seeds_training_workers(cfg_name,
                                                           tmp_path,
                                                           demo_data):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', cfg_name))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.dataset.data_root = demo_data
    cfg.train_dataloader.num_workers = 2
    cfg.train_dataloader.pop('worker_init_fn', None)
    cfg.train_dataloader.pop('persistent_workers', None)
    runner = RUNNERS.build(cfg)   # runner_type='MLRPLRunner' of the config
    loader_cfg = runner._train_dataloader
    assert loader_cfg['persistent_workers'] is False
    assert loader_cfg['worker_init_fn'] == dict(
        type='resumable_worker_init_fn')
    # the caller's config is not changed
    assert 'worker_init_fn' not in cfg.train_dataloader
    # and mmengine builds the loader with our init function
    loader = runner.build_dataloader(loader_cfg, seed=0)
    assert loader.worker_init_fn.func is resumable_worker_init_fn


def test_build_runner_refuses_an_upstream_resume_without_trust(monkeypatch,
                                                               tmp_path):
    """A config that selects mmengine's plain Runner would resume through
    Runner.resume, which executes the checkpoint's config text: the tools'
    build_runner refuses that before anything is loaded."""
    from mlrpl_mm.apis import build_runner
    from mlrpl_mm.utils.checkpoint import TRUST_ENV
    monkeypatch.delenv(TRUST_ENV, raising=False)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'pbce_demo_lite.py'))
    cfg.work_dir = str(tmp_path)
    cfg.runner_type = 'Runner'
    cfg.resume = True
    with pytest.raises(ValueError, match="runner_type='Runner'.*executes "
                       r'the config text.*--trust-checkpoint'):
        build_runner(cfg)
