from .checks import check_choice, choices_text
from .checkpoint import (CheckpointError, checkpoint_safe_globals,
                         safe_torch_load, trust_checkpoints_enabled)
from .data_samples import sample_indices, stack_field
from .dist import (gather_by_index, gather_by_index_in_groups,
                   shutdown_distributed, stuck_rank_errors)
from .generator import seeded_generator
from .model import unwrap_model
from .progress import TrainProgress, get_train_progress, linear_ramp
from .registry import register_alias
from .safe_pickle import UnsafePickleError, safe_pickle_load

__all__ = [
    'check_choice', 'choices_text', 'CheckpointError',
    'checkpoint_safe_globals', 'safe_torch_load',
    'trust_checkpoints_enabled', 'safe_pickle_load', 'UnsafePickleError',
    'sample_indices', 'stack_field', 'gather_by_index',
    'gather_by_index_in_groups', 'shutdown_distributed', 'stuck_rank_errors',
    'TrainProgress',
    'get_train_progress', 'linear_ramp', 'register_alias',
    'seeded_generator', 'unwrap_model'
]
