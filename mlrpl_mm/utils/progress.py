"""Training progress (epoch / iteration) as seen by modules.

Epoch-dependent behaviour (warm-up ramps, phases that start at epoch 5) is
derived from the runner's state, which mmengine's default ``RuntimeInfoHook``
writes to the current :class:`~mmengine.logging.MessageHub` before every
epoch and iteration (``epoch``, ``iter``, ``max_epochs``, ``max_iters``).
Reading it from there (instead of counting calls inside the model) makes
``--resume`` land in the right phase.
"""
from dataclasses import dataclass

from mmengine.logging import MessageHub


@dataclass(frozen=True)
class TrainProgress:
    """Where training stands.

    Attributes:
        epoch (int): 0-based current epoch.
        inner_iter (int): 0-based iteration inside the current epoch.
        iters_per_epoch (int): Iterations per epoch (1 when unknown).
    """
    epoch: int = 0
    inner_iter: int = 0
    iters_per_epoch: int = 1

    @property
    def epoch_fraction(self) -> float:
        """Fraction of the current epoch already done, in [0, 1)."""
        return self.inner_iter / max(1, self.iters_per_epoch)


def get_train_progress() -> TrainProgress:
    """Read the current training progress from the message hub.

    Returns ``TrainProgress()`` (epoch 0, iteration 0) when no runner has
    written it, e.g. in unit tests. Tests can set it with
    ``MessageHub.get_current_instance().update_info('epoch', 5)``.
    """
    hub = MessageHub.get_current_instance()
    epoch = int(hub.get_info('epoch', 0) or 0)
    it = int(hub.get_info('iter', 0) or 0)
    max_iters = hub.get_info('max_iters', None)
    max_epochs = hub.get_info('max_epochs', None)
    iters_per_epoch = 1
    if max_iters and max_epochs:
        iters_per_epoch = max(1, int(max_iters) // int(max_epochs))
    inner = max(0, it - epoch * iters_per_epoch)
    return TrainProgress(epoch, min(inner, iters_per_epoch - 1) if iters_per_epoch > 1 else 0,
                         iters_per_epoch)


def linear_ramp(progress: TrainProgress, epochs: int) -> float:
    r"""Linear warm-up factor of a loss term.

    .. math::
        \rho = \begin{cases}
            (e + i / I) / E & e < E \\
            1 & e \ge E
        \end{cases}

    with e the 0-based epoch, i / I the fraction of it already done
    (:attr:`TrainProgress.epoch_fraction`) and E = ``epochs``; E <= 0 means
    no ramp (always 1). HST (``ramp_epochs``) and DSRB (its instance
    contrastive term) both use it with E = 1: :math:`\rho` grows from 0 to 1
    over epoch 0.

    Args:
        progress (TrainProgress): From :func:`get_train_progress`.
        epochs (int): E.

    Returns:
        float: :math:`\rho` in [0, 1].
    """
    if progress.epoch >= epochs:
        return 1.0
    return (progress.epoch + progress.epoch_fraction) / epochs
