"""Small helpers shared by the heads: sub-module building, input picking."""
import copy
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS


def build_module(cfg: Union[dict, nn.Module, None],
                 **defaults) -> Optional[nn.Module]:
    """Build a sub-module from a config, filling in missing ``defaults``.

    Args:
        cfg (dict | nn.Module | None): A ``dict(type=...)`` config (copied,
            never modified), an already built module (returned as is) or
            None (returned as is: the part is disabled).
        **defaults: Keys set only where ``cfg`` lacks them (e.g.
            ``num_classes``, ``in_channels``).

    Returns:
        nn.Module | None
    """
    if cfg is None or isinstance(cfg, nn.Module):
        return cfg
    cfg = copy.deepcopy(dict(cfg))
    for k, v in defaults.items():
        cfg.setdefault(k, v)
    return MODELS.build(cfg)


def last_feature(feats: Union[torch.Tensor, Sequence[torch.Tensor]]
                 ) -> torch.Tensor:
    """The last element of a backbone / neck output tuple (a tensor is
    returned as is): the feature map or pooled feature a head reads."""
    return feats[-1] if isinstance(feats, (tuple, list)) else feats
