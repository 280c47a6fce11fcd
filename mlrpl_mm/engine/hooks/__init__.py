from .label_graph_hook import LabelGraphHook
from .blend_weight_clamp_hook import BlendWeightClampHook
from .pprb_prototype_hook import PPRBPrototypeHook
from .cst_prototype_hook import CSTPrototypeHook
from .pseudo_label_precision_hook import PseudoLabelPrecisionHook
from .apl_hook import APLHook
from .sigrl_label_set_hook import SigRLLabelSetHook
from .class_count_check_hook import ClassCountCheckHook
from .random_state_hook import RandomStateHook
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .required_hooks_check_hook import RequiredHooksCheckHook
from .supervision_check_hook import SupervisionCheckHook
from .prompt_class_names_hook import PromptClassNamesHook

__all__ = ['CSTPrototypeHook', 'PseudoLabelPrecisionHook', 'LabelGraphHook',
    'BlendWeightClampHook', 'PPRBPrototypeHook', 'APLHook', 'SigRLLabelSetHook',
    'ClassCountCheckHook', 'RandomStateHook', 'AtomicCheckpointHook',
    'RequiredHooksCheckHook', 'SupervisionCheckHook', 'PromptClassNamesHook'
]
