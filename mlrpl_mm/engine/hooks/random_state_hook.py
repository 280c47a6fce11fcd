"""Save the random generators in checkpoints and restore them on resume."""
import random
from typing import Any, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

#: checkpoint key of the saved generator states
RNG_KEY = 'rng_state'


def get_rng_state() -> Dict[str, Any]:
    """States of torch's, numpy's and Python's global generators as plain
    types (tensors, lists, numbers, strings): loadable with
    ``weights_only=True`` and no allow-list entry."""
    key, mt, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = dict(
        torch=torch.get_rng_state(),
        numpy=dict(key=str(key), mt=torch.from_numpy(mt.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss), gauss=float(gauss)),
        python=dict(version=int(version), state=list(py_state),
                    gauss=py_gauss))
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`get_rng_state`.

    Raises:
        ValueError: the state misses one of the generators.
    """
    for k in ('torch', 'numpy', 'python'):
        if k not in state:
            raise ValueError(f'{RNG_KEY} of the checkpoint has no {k!r} entry')
    torch.set_rng_state(state['torch'].cpu())
    n = state['numpy']
    np.random.set_state((n['key'], n['mt'].numpy().astype(np.uint32),
                         int(n['pos']), int(n['has_gauss']),
                         float(n['gauss'])))
    p = state['python']
    random.setstate((int(p['version']), tuple(int(v) for v in p['state']),
                     p['gauss']))
    if 'cuda' in state and torch.cuda.is_available() and \
            len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make ``--resume`` continue the random streams of the interrupted run.

    mmengine checkpoints hold the model, optimizer, schedulers and message
    hub, but not the global random generators, so a resumed run re-seeds at
    start-up and every later random draw (random augmentation in the main
    process, the random negatives of ``InstanceContrastiveLoss``, PPRB's
    random quadrant picks, the dataloader's worker seeds) differs from the
    run it continues. This hook stores the states of torch's (and CUDA's),
    numpy's and Python's global generators under ``checkpoint['rng_state']``
    (``before_save_checkpoint``) and restores them when the run was resumed,
    at the end of ``before_train`` (LOWEST priority: after ``--resume`` and
    after the other hooks' ``before_train``, just before the first epoch),
    i.e. at the point where the interrupted run was when it saved.

    Validation does not touch the training stream: the states are saved at
    ``before_val`` and restored at ``after_val``, and a checkpoint written
    during validation (mmengine's ``CheckpointHook`` re-saves the epoch
    checkpoint after a new best score, ``save_best``) holds the states of
    before validation. Without this the val loader's iterator (one draw
    from torch's generator for its workers' base seed) and whatever else
    validation draws advance the stream of the uninterrupted run, while the
    checkpoint holds the states from before validation, or from after it
    only when the epoch was a new best: the resumed run then draws different
    random negatives / quadrants / worker seeds (HST, DSRB). A side effect:
    ``val_interval`` no longer changes the training itself.

    Checkpoints loaded with ``load_from`` (fine-tuning, testing) leave the
    generators alone, as do checkpoints without the key (older files).
    Under distributed training the checkpoint holds rank 0's states, which
    every rank restores (the ranks share one seed unless
    ``randomness.diff_rank_seed=True``).
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._pending: Optional[Dict[str, Any]] = None
        # training-stream states held while a validation loop runs
        self._outside_val: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[RNG_KEY] = self._outside_val \
            if self._outside_val is not None else get_rng_state()

    def before_val(self, runner) -> None:
        self._outside_val = get_rng_state()

    def after_val(self, runner) -> None:
        state, self._outside_val = self._outside_val, None
        if state is not None:
            set_rng_state(state)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get(RNG_KEY)

    def before_train(self, runner) -> None:
        state, self._pending = self._pending, None
        if state is not None and getattr(runner, '_resume', False):
            set_rng_state(state)
            runner.logger.info('RandomStateHook: random generators restored '
                               'from the checkpoint')
