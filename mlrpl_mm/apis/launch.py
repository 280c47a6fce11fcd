"""Launch helpers shared by ``tools/train.py`` and ``tools/test.py``."""
import datetime
import numbers
import os
import os.path as osp
import sys

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from mlrpl_mm.datasets.worker_seed import resumable_train_loader


#: seconds a collective may wait for the other ranks (torch's default)
DEFAULT_DIST_TIMEOUT = 1800


def collective_timeout(cfg: Config) -> datetime.timedelta:
    """``env_cfg.dist_cfg.timeout`` (seconds, default
    :data:`DEFAULT_DIST_TIMEOUT`) as a ``timedelta``: how long a collective
    (gradient all-reduce, prototype all-gather, barrier) waits for a stuck
    or dead rank before it fails. ``ValueError`` naming the key for a value
    that is not a positive number of seconds."""
    dist_cfg = (cfg.get('env_cfg', None) or {}).get('dist_cfg', None) or {}
    value = dist_cfg.get('timeout', DEFAULT_DIST_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not value > 0:
        raise ValueError(
            f'env_cfg.dist_cfg.timeout must be a positive number of seconds '
            f'(e.g. {DEFAULT_DIST_TIMEOUT}), got {value!r}')
    return datetime.timedelta(seconds=float(value))


def setup_cpu_distributed(cfg: Config, launcher: str) -> None:
    """Make ``--launcher pytorch`` work without CUDA (gloo on CPU).

    mmengine 0.10.7's pytorch launcher calls ``torch.cuda.set_device`` and
    its DDP wrapper passes ``device_ids``. Without CUDA we initialise the
    process group with gloo from the torchrun environment before the Runner
    is built (the Runner then skips its own ``init_dist``) and select
    :class:`~mlrpl_mm.engine.MLRPLDistributedDataParallel`.
    Does nothing for ``launcher='none'`` or when CUDA is available.
    """
    if launcher != 'none':
        collective_timeout(cfg)  # a clear error for a bad value
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs CUDA; on CPU only the pytorch '
            'launcher (torchrun / tools/dist_train.sh) is supported.')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo', timeout=collective_timeout(cfg))
    wrapper = dict(cfg.get('model_wrapper_cfg', None) or {})
    wrapper['type'] = 'MLRPLDistributedDataParallel'
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters',
                       cfg.get('find_unused_parameters', False))
    sync_bn = cfg.get('sync_bn', None)
    if sync_bn is not None:
        # torch.nn.SyncBatchNorm is CUDA-only: the wrapper converts to the
        # gloo-capable CPUSyncBatchNorm instead (mmengine's conversion off)
        if sync_bn != 'torch':
            raise ValueError(f"sync_bn={sync_bn!r}: on CPU only 'torch' "
                             '(CPUSyncBatchNorm) is supported')
        wrapper['sync_bn'] = True
        cfg.sync_bn = None
    cfg.model_wrapper_cfg = wrapper
    env_cfg = cfg.get('env_cfg', {}) or {}
    env_cfg.setdefault('dist_cfg', {})
    env_cfg['dist_cfg']['backend'] = 'gloo'
    cfg.env_cfg = env_cfg


def apply_trust_flag(trust: bool) -> None:
    """``--trust-checkpoint``: allow code-executing (weights_only=False)
    checkpoint loading for this process (see mlrpl_mm.utils.checkpoint)."""
    if trust:
        from mlrpl_mm.utils.checkpoint import TRUST_ENV
        os.environ[TRUST_ENV] = '1'


def build_runner(cfg: Config):
    """The runner of ``cfg`` through mmengine's ``RUNNERS`` registry, as
    mmpretrain's tools build it: ``cfg.runner_type``, by default
    :class:`~mlrpl_mm.engine.MLRPLRunner` (safe checkpoint loading, a resume
    that executes nothing from the checkpoint, atomic saving)."""
    import mlrpl_mm.engine  # noqa: F401  (registers MLRPLRunner)
    from mmengine.registry import RUNNERS

    from mlrpl_mm.engine import MLRPLRunner
    from mlrpl_mm.utils import trust_checkpoints_enabled
    if cfg.get('runner_type', None) is None:
        cfg.runner_type = 'MLRPLRunner'
    runner_cls = cfg.runner_type if isinstance(cfg.runner_type, type) \
        else RUNNERS.get(cfg.runner_type)
    if cfg.get('resume', False) and not trust_checkpoints_enabled() and \
            not (isinstance(runner_cls, type)
                 and issubclass(runner_cls, MLRPLRunner)):
        # upstream's Runner.resume executes the config text stored in the
        # checkpoint (Config.fromstring): refuse unless the user trusts it
        raise ValueError(
            f'runner_type={cfg.runner_type!r} resumes through mmengine\'s '
            'Runner.resume, which executes the config text stored in the '
            'checkpoint: use runner_type=\'MLRPLRunner\' (the default of '
            'configs/_base_/default_runtime.py), or --trust-checkpoint for a '
            'checkpoint you made yourself')
    return RUNNERS.build(cfg)


def set_dataloader_defaults(cfg: Config, pin_memory: bool = True,
                            persistent_workers: bool = True) -> None:
    """mmpretrain's dataloader defaults, valid for ``num_workers=0`` too.

    The training loader defaults to non-persistent workers seeded by
    :func:`~mlrpl_mm.datasets.worker_seed.resumable_worker_init_fn`, so that
    ``--resume`` continues the random augmentation of the interrupted run
    (persistent workers keep generator states no checkpoint holds; see
    docs/failure_modes.md, "Exact resume"). A config that sets
    ``train_dataloader.persistent_workers=True`` or its own
    ``worker_init_fn`` keeps it.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg.get(field, None)
        if dl is None:
            continue
        dl.setdefault('pin_memory', pin_memory and torch.cuda.is_available())
        dl.setdefault('collate_fn', dict(type='default_collate'))
        workers = dl.get('num_workers', 0)
        train = field == 'train_dataloader'
        if train:
            resumable_train_loader(dl)
        dl['persistent_workers'] = bool(
            persistent_workers and workers > 0
            and dl.get('persistent_workers', not train))


def set_dataset_data_root(node, data_root: str) -> int:
    """Set ``data_root`` of every dataset dict below ``node``; count them."""
    n = 0
    if isinstance(node, dict):
        if 'data_root' in node and 'type' in node:
            node['data_root'] = data_root
            n += 1
        for v in node.values():
            n += set_dataset_data_root(v, data_root)
    elif isinstance(node, (list, tuple)):
        for v in node:
            n += set_dataset_data_root(v, data_root)
    return n


def apply_data_root(cfg: Config, data_root, cfg_options=None) -> None:
    """``--data-root DIR`` (or ``--cfg-options data_root=DIR``): set the
    ``data_root`` of every dataset of the train / val / test dataloaders
    (wrappers included) and the config's top-level ``data_root``.

    A top-level ``data_root=`` in ``cfg_options`` is taken out of it (a
    config's ``data_root`` variable has already been copied into its
    dataset dicts, so merging it would change nothing): the datasets get it.

    Raises:
        ValueError: both given with different values, or no dataset of the
            config has a ``data_root``.
    """
    option = cfg_options.pop('data_root', None) if cfg_options else None
    if option is not None and data_root is not None and \
            str(option) != str(data_root):
        raise ValueError(f'--data-root {data_root} and --cfg-options '
                         f'data_root={option} disagree: give one')
    data_root = data_root if data_root is not None else option
    if data_root is None:
        return
    data_root = str(data_root)
    n = sum(set_dataset_data_root(cfg.get(k, None), data_root)
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    if n == 0:
        raise ValueError(f'{cfg.filename}: --data-root {data_root} given but '
                         'no dataset of the config has a data_root to set')
    cfg.data_root = data_root
