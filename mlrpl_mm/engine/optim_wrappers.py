"""Mixed precision on CPU: mmengine's AmpOptimWrapper is CUDA/NPU-only."""
from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from mlrpl_mm.utils.checks import check_choice


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """:class:`OptimWrapper` that runs forward passes under CPU autocast.

    ``tools/train.py --amp`` selects it when CUDA is unavailable. bfloat16
    has float32's exponent range, so no loss scaling is needed.

    Args:
        dtype (str): ``'bfloat16'`` (default) or ``'float16'``.
        **kwargs: :class:`OptimWrapper` arguments.
    """

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_choice('dtype', dtype, ('bfloat16', 'float16'))
        self.cast_dtype = getattr(torch, dtype)
        from mmengine.logging import print_log
        short = 'bf16' if dtype == 'bfloat16' else 'fp16'
        print_log(f'CPUAutocastOptimWrapper: {short} autocast on CPU '
                  f'(forward passes in {dtype}; weights, gradients and the '
                  'optimizer state stay float32)', logger='current')

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), \
                torch.autocast(device_type='cpu', dtype=self.cast_dtype):
            yield
