"""RandomStateHook: generator states survive a (weights_only) checkpoint round
trip and are restored on --resume only."""
import random
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.logging import MMLogger

import mlrpl_mm  # noqa: F401
from mlrpl_mm.engine.hooks import RandomStateHook
from mlrpl_mm.engine.hooks.random_state_hook import RNG_KEY


def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(),
            [random.random() for _ in range(3)], float(np.random.randn()))


def _runner(resume):
    return SimpleNamespace(_resume=resume,
                           logger=MMLogger.get_current_instance())


def test_round_trip_through_safe_checkpoint(tmp_path):
    hook = RandomStateHook()
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    np.random.randn()  # numpy caches a Gaussian: part of the state
    ckpt = {}
    hook.before_save_checkpoint(None, ckpt)
    expected = _draws()
    path = str(tmp_path / 'c.pth')
    torch.save(ckpt, path)
    loaded = torch.load(path, weights_only=True)  # plain types only
    # scramble, then resume
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    hook.after_load_checkpoint(None, loaded)
    hook.before_train(_runner(resume=True))
    assert _draws() == expected


def test_load_from_does_not_restore():
    hook = RandomStateHook()
    ckpt = {}
    hook.before_save_checkpoint(None, ckpt)
    assert RNG_KEY in ckpt
    torch.manual_seed(5)
    after_seed = torch.get_rng_state()
    hook.after_load_checkpoint(None, ckpt)
    hook.before_train(_runner(resume=False))  # fine-tuning / load_from
    assert torch.equal(torch.get_rng_state(), after_seed)
    # a checkpoint without the key (older file) is accepted
    hook.after_load_checkpoint(None, {})
    hook.before_train(_runner(resume=True))
    assert torch.equal(torch.get_rng_state(), after_seed)


def test_validation_does_not_advance_the_training_stream():
    """A validation loop between two training draws leaves the stream as if
    it had not run, and a checkpoint saved during validation (save_best
    re-save) holds the pre-validation states."""
    hook = RandomStateHook()
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    expected = _draws()

    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    hook.before_val(None)
    iter(torch.utils.data.DataLoader(range(4)))  # draws a base seed
    _draws()  # anything validation draws
    ckpt = {}
    hook.before_save_checkpoint(None, ckpt)
    hook.after_val(None)
    assert _draws() == expected
    # the checkpoint written during validation resumes the same stream
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    hook.after_load_checkpoint(None, ckpt)
    hook.before_train(_runner(resume=True))
    assert _draws() == expected


def test_training_loader_defaults_are_resumable():
    from mmengine.config import Config

    from mlrpl_mm.apis import set_dataloader_defaults
    from mlrpl_mm.datasets.worker_seed import worker_seed
    cfg = Config(dict(train_dataloader=dict(num_workers=2),
                      val_dataloader=dict(num_workers=2),
                      test_dataloader=dict(num_workers=0)))
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.train_dataloader.worker_init_fn == dict(
        type='resumable_worker_init_fn')
    assert cfg.val_dataloader.persistent_workers is True
    assert 'worker_init_fn' not in cfg.val_dataloader
    assert cfg.test_dataloader.persistent_workers is False
    # an explicit choice is kept
    cfg = Config(dict(train_dataloader=dict(num_workers=2,
                                            persistent_workers=True)))
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.persistent_workers is True
    # worker seeds: a function of (torch seed of the worker, rank)
    assert worker_seed(5, 0) == worker_seed(5, 0)
    assert len({worker_seed(5, 0), worker_seed(6, 0), worker_seed(5, 1)}) == 3
