from .hooks import *  # noqa: F401,F403
from .model_wrappers import MLRPLDistributedDataParallel
from .optim_wrappers import CPUAutocastOptimWrapper
from .runner import MLRPLRunner

__all__ = ['MLRPLDistributedDataParallel', 'CPUAutocastOptimWrapper',
           'MLRPLRunner']
