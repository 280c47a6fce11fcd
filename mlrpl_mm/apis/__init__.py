from .inference import (MultiLabelInferencer, inference_multi_label,
                        list_images)
from .launch import (apply_data_root, apply_trust_flag, build_runner,
                     set_dataloader_defaults, setup_cpu_distributed)

__all__ = ['apply_data_root', 'apply_trust_flag', 'build_runner',
           'set_dataloader_defaults', 'setup_cpu_distributed',
           'MultiLabelInferencer', 'inference_multi_label', 'list_images']
