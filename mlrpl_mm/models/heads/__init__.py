from .base_partial_head import BasePartialLabelHead
from .head_utils import build_module, last_feature
from .semantic_trunk_head import SemanticTrunkHead
from .partial_label_cls_head import PartialLabelClsHead
from .sigrl_head import SigRLHead
from .dsrb_head import DSRBHead
from .hst_head import HSTHead
from .ssgrl_head import SSGRLHead
from .dualcoop_head import DualCoOpHead, region_aggregation

__all__ = ['HSTHead', 'SSGRLHead', 'DualCoOpHead', 'region_aggregation',
           'BasePartialLabelHead', 'PartialLabelClsHead', 'SigRLHead', 'DSRBHead',
           'SemanticTrunkHead', 'build_module', 'last_feature']
