"""Per-class linear classifier (one weight vector and bias per class)."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from mlrpl_mm.utils.registry import register_alias


@MODELS.register_module()
class SSGRLElementWiseLinear(BaseModule):
    r"""Element-wise linear layer: :math:`y_c = \langle u_c, x_c \rangle + e_c`.

    Registered as ``SSGRLElementWiseLinear`` (the old name
    ``ElementWiseLinear`` stays an alias in the registry and in Python).

    Args:
        num_classes (int): C (or any number of independent rows).
        in_channels (int): K, size of each row's input.
        bias (bool): Learn :math:`e_c`. Defaults to True.
        init_cfg (dict, optional): Initialisation config. By default the
            weights and bias are uniform in :math:`\pm 1/\sqrt{K}`.

    Shapes:
        forward(x (B, C, K)) -> (B, C).
    """

    def __init__(self, num_classes: int, in_channels: int, bias: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.weight = nn.Parameter(torch.empty(num_classes, in_channels))
        self.bias = nn.Parameter(torch.empty(num_classes)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, K) -> (B, C)."""
        if x.shape[-2:] != self.weight.shape:
            raise ValueError(
                f'ElementWiseLinear expects (..., {self.num_classes}, '
                f'{self.in_channels}) input, got {tuple(x.shape)}')
        out = (x * self.weight).sum(-1)
        if self.bias is not None:
            out = out + self.bias
        return out


#: the old name (Python import and registry alias)
ElementWiseLinear = SSGRLElementWiseLinear
register_alias(MODELS, 'ElementWiseLinear', SSGRLElementWiseLinear)
