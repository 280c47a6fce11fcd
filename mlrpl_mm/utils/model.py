"""The model inside a wrapper."""
from torch import nn


def unwrap_model(model) -> nn.Module:
    """The module inside a model wrapper, else ``model`` itself.

    A wrapper is anything with a ``module`` attribute: torch's and mmengine's
    (Distributed)DataParallel, ``MLRPLDistributedDataParallel``, FSDP (every
    wrapper of mmengine's ``MODEL_WRAPPERS`` has one) and duck-typed wrappers
    in tests. Hooks use it to reach the head and the layers that hold the
    method state (label graph, prototypes, pseudo labels).
    """
    return model.module if hasattr(model, 'module') else model
