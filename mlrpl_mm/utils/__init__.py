from .checkpoint import install as install_checkpoint_safety
from .checkpoint import safe_torch_load, trust_checkpoints_enabled
from .data_samples import sample_indices, stack_field
from .dist import (gather_by_index, gather_by_index_in_groups,
                   shutdown_distributed)
from .progress import TrainProgress, get_train_progress

__all__ = [
    'install_checkpoint_safety', 'safe_torch_load', 'trust_checkpoints_enabled',
    'sample_indices', 'stack_field', 'gather_by_index', 'gather_by_index_in_groups',
    'shutdown_distributed',
    'TrainProgress',
    'get_train_progress'
]
