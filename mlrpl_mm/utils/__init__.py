from .checkpoint import install as install_checkpoint_safety
from .checkpoint import safe_torch_load, trust_checkpoints_enabled
from .data_samples import sample_indices, stack_field
from .dist import gather_by_index, shutdown_distributed, stuck_rank_errors
from .progress import TrainProgress, get_train_progress

__all__ = [
    'install_checkpoint_safety', 'safe_torch_load', 'trust_checkpoints_enabled',
    'sample_indices', 'stack_field', 'gather_by_index', 'shutdown_distributed',
    'stuck_rank_errors',
    'TrainProgress',
    'get_train_progress'
]
