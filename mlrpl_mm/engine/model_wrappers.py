"""Model wrapper that lets DDP run on CPU (gloo) for tests and CPU clusters."""
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class MLRPLDistributedDataParallel(MMDistributedDataParallel):
    """:class:`MMDistributedDataParallel` that drops ``device_ids`` on CPU.

    mmengine 0.10.7 always passes ``device_ids=[LOCAL_RANK]``, which torch's
    DDP rejects for a CPU module. ``tools/train.py`` selects this wrapper when
    a distributed launcher is used without CUDA.

    Args:
        sync_bn (bool): Convert the ``BatchNorm*d`` layers to
            :class:`~mlrpl_mm.engine.sync_batchnorm.CPUSyncBatchNorm` (batch
            statistics over all ranks, on CPU / gloo) before wrapping; set
            from a config's ``sync_bn='torch'`` by
            :func:`mlrpl_mm.apis.setup_cpu_distributed`. Defaults to False.
    """

    def __init__(self, module, device_ids=None, sync_bn: bool = False,
                 **kwargs):
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        if sync_bn:
            from mmengine.logging import MMLogger
            from .sync_batchnorm import convert_cpu_sync_batchnorm
            module = convert_cpu_sync_batchnorm(module)
            MMLogger.get_current_instance().info(
                'sync_bn: BatchNorm layers converted to CPUSyncBatchNorm '
                '(statistics over all ranks, gloo)')
        super().__init__(module=module, device_ids=device_ids, **kwargs)
