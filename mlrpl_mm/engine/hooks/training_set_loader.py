"""The prototype hooks' own non-shuffled loader over the training set.

:class:`~mlrpl_mm.engine.hooks.CSTPrototypeHook` (HST) and
:class:`~mlrpl_mm.engine.hooks.PPRBPrototypeHook` (DSRB) run the model in eval
mode over every training image once, in dataset order, before a train epoch.
Both choose the images' pipeline with the same argument:

- ``'train'``: the training dataset as configured, i.e. the augmented
  training pipeline. This is what the references do
  (docs/equations/protocol.md, "faithful by default": "prototypes computed on
  augmented training images"), so it is the hooks' default. The random
  augmentation of image ``i`` is drawn from generators seeded with ``(runner
  seed, epoch, i)`` (:class:`SeededView`), so the prototypes do not depend on
  the number of processes, the sharding or the data-loader workers: 1 and N
  processes compute the same prototypes.
- ``'test'``: the training set's data infos passed through the val (else
  test) pipeline of the config, i.e. un-augmented training images: the
  documented improvement switch.
- a list of transforms (configs or callables): the data infos through those.

For ``'test'`` and a list, the dataset is wrapped by :class:`PipelineView`
(``dataset.get_data_info(i)`` then the transforms; the training dataset and its
pipeline are left untouched). A dataset without ``get_data_info`` but with a
``pipeline`` attribute (e.g. a plain torch dataset) is shallow-copied with the
pipeline replaced.

The loader is a ``DataLoader`` with mmengine's ``DefaultSampler(shuffle=False)``:
in a distributed run every rank reads its own shard (padded to equal length),
and the hooks all-gather rows by ``sample_idx``
(:func:`mlrpl_mm.utils.gather_by_index`), so every rank ends with the
single-process result.

Every error names the hook (``hook_name``) that asked for the loader.
"""
import copy
import random
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmpretrain.registry import TRANSFORMS
from torch.utils.data import DataLoader, Dataset

PIPELINE_CHOICES = ('train', 'test')

PipelineArg = Union[str, Sequence[Union[dict, Callable]]]


def check_pipeline_arg(pipeline: PipelineArg, hook_name: str) -> None:
    """Raise ``ValueError`` (naming ``hook_name``) for an invalid ``pipeline``.

    Valid: ``'train'``, ``'test'`` or a list / tuple of transforms.
    """
    if isinstance(pipeline, str):
        if pipeline not in PIPELINE_CHOICES:
            raise ValueError(f"{hook_name}: pipeline must be 'train', 'test' or "
                             f'a list of transforms, got {pipeline!r}')
    elif not isinstance(pipeline, (list, tuple)):
        raise ValueError(f"{hook_name}: pipeline must be 'train', 'test' or a "
                         f'list of transforms, got {type(pipeline).__name__} '
                         f'{pipeline!r}')


def find_pipeline(cfg) -> Optional[list]:
    """The first ``pipeline`` list of a (nested) dataloader/dataset config.

    Looks at ``cfg['pipeline']``, then depth-first into ``cfg['dataset']`` and
    every entry of ``cfg['datasets']`` (dataset wrappers, concatenations).
    None when there is none (or ``cfg`` is not a dict).
    """
    if not isinstance(cfg, dict):
        return None
    if cfg.get('pipeline') is not None:
        return list(cfg['pipeline'])
    for key in ('dataset', 'datasets'):
        sub = cfg.get(key)
        for s in (sub if isinstance(sub, (list, tuple)) else [sub]):
            found = find_pipeline(s)
            if found is not None:
                return found
    return None


def resolve_pipeline(runner, pipeline: PipelineArg,
                     hook_name: str) -> Union[str, list]:
    """``'train'``, or the list of transforms the pipeline argument stands for.

    ``'test'``: the pipeline of ``runner.cfg.val_dataloader``, else of
    ``runner.cfg.test_dataloader`` (``ValueError`` naming the hook when
    neither has one).
    """
    check_pipeline_arg(pipeline, hook_name)
    if pipeline == 'train':
        return 'train'
    if pipeline == 'test':
        cfg = getattr(runner, 'cfg', None) or {}
        found = find_pipeline(cfg.get('val_dataloader')) or \
            find_pipeline(cfg.get('test_dataloader'))
        if found is None:
            raise ValueError(
                f'{hook_name}: no val/test pipeline in the config '
                '(val_dataloader / test_dataloader ... pipeline); pass '
                "pipeline=[...] or pipeline='train'")
        return found
    return list(pipeline)


class ComposeOrFail:
    """Transforms applied in order; a transform returning None is an error.

    Dict transforms are built with mmpretrain's ``TRANSFORMS`` registry (which
    falls back to mmcv / mmengine transforms), callables are used as they are.
    Unlike a training dataset, which draws another sample when its pipeline
    returns None, the prototype pass must see every image once.
    """

    def __init__(self, transforms: Sequence[Union[dict, Callable]],
                 hook_name: str) -> None:
        self.hook_name = hook_name
        self.transforms = [TRANSFORMS.build(copy.deepcopy(t))
                           if isinstance(t, dict) else t for t in transforms]

    def __call__(self, data):
        for t in self.transforms:
            data = t(data)
            if data is None:
                raise RuntimeError(f'{self.hook_name}: transform {t} returned '
                                   'None')
        return data


class PipelineView(Dataset):
    """A dataset's data infos passed through another pipeline.

    ``view[i] = pipeline(dataset.get_data_info(i))`` with ``sample_idx = i``
    when the info has none (mmengine's ``BaseDataset`` sets it).
    """

    def __init__(self, dataset, pipeline: Callable) -> None:
        self.dataset = dataset
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        info = self.dataset.get_data_info(idx)
        info.setdefault('sample_idx', idx)
        return self.pipeline(info)


class SeededView(Dataset):
    """``view[i] = dataset[i]`` with the random draws of its pipeline made
    from ``random``, ``numpy.random`` and torch's CPU generator seeded with
    ``(seed, epoch, i)``; the generators' previous states are restored after
    each item, so the view does not disturb the training run's random stream.

    Every image's augmentation is then a function of its index alone: the same
    whichever process, shard or worker reads it (distributed runs give the
    single-process result) and the same when read twice in one epoch.
    """

    def __init__(self, dataset, seed: int = 0, epoch: int = 0) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def item_seed(self, idx: int) -> int:
        """The 32-bit seed of sample ``idx`` in this epoch."""
        seq = np.random.SeedSequence([self.seed % 2**32, self.epoch, int(idx)])
        return int(seq.generate_state(1)[0])

    def __getitem__(self, idx: int):
        s = self.item_seed(idx)
        py_state, np_state = random.getstate(), np.random.get_state()
        torch_state = torch.get_rng_state()
        try:
            random.seed(s)
            np.random.seed(s)
            torch.default_generator.manual_seed(s)
            return self.dataset[idx]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
            torch.set_rng_state(torch_state)


def training_set_view(dataset, pipeline: Union[str, list], hook_name: str,
                      seed: int = 0, epoch: int = 0):
    """The training ``dataset`` seen through a resolved ``pipeline``.

    ``'train'``: the dataset itself, as a :class:`SeededView` (seeded with
    ``seed`` and ``epoch``). A list: a :class:`PipelineView` when the
    dataset has ``get_data_info``, else a shallow copy with its ``pipeline``
    attribute replaced (``AttributeError`` naming the hook when it has
    neither).
    """
    if pipeline == 'train':
        return SeededView(dataset, seed=seed, epoch=epoch)
    compose = ComposeOrFail(pipeline, hook_name)
    if hasattr(dataset, 'get_data_info'):
        return PipelineView(dataset, compose)
    if hasattr(dataset, 'pipeline'):
        view = copy.copy(dataset)
        view.pipeline = compose
        return view
    raise AttributeError(
        f'{hook_name}: the training dataset ({type(dataset).__name__}) has '
        "neither get_data_info nor a pipeline attribute to replace; use "
        "pipeline='train'")


def build_training_set_loader(runner, pipeline: PipelineArg, hook_name: str,
                              batch_size: Optional[int] = None,
                              num_workers: Optional[int] = None,
                              collate_fn: Optional[Callable] = None
                              ) -> DataLoader:
    """A non-shuffled (distributed) loader over ``runner``'s training set.

    Args:
        runner: with ``train_dataloader`` (and ``cfg`` for ``'test'``;
            ``seed`` and ``epoch`` seed the ``'train'`` augmentation).
        pipeline (str | list): ``'train'``, ``'test'`` or transforms (module
            docstring).
        hook_name (str): Named in every error.
        batch_size (int, optional): Defaults to the training batch size.
        num_workers (int, optional): Defaults to the training loader's.
        collate_fn (callable, optional): Defaults to the training loader's.
    """
    train_loader = runner.train_dataloader
    view = training_set_view(train_loader.dataset,
                             resolve_pipeline(runner, pipeline, hook_name),
                             hook_name, seed=getattr(runner, 'seed', 0) or 0,
                             epoch=getattr(runner, 'epoch', 0) or 0)
    return DataLoader(
        view,
        batch_size=batch_size or train_loader.batch_size,
        sampler=DefaultSampler(view, shuffle=False),
        num_workers=train_loader.num_workers if num_workers is None
        else num_workers,
        collate_fn=train_loader.collate_fn if collate_fn is None
        else collate_fn)
