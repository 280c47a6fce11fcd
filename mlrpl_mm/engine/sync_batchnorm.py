"""Synchronised batch normalisation that runs on CPU (gloo).

``torch.nn.SyncBatchNorm`` refuses CPU tensors ("SyncBatchNorm expected input
tensor to be on GPU ..."), so mmengine's ``sync_bn='torch'`` cannot be used in
a CPU (gloo) distributed run. :class:`CPUSyncBatchNorm` computes the same
thing with ``all_reduce``: in training, the batch statistics of each channel
are those of the union of all ranks' batches,

    mean = sum_r S1_r / n,  var = sum_r S2_r / n - mean^2,  n = sum_r n_r

(``S1_r``, ``S2_r``: per-channel sum and sum of squares over the N, H, W of
rank r), ``y = (x - mean) / sqrt(var + eps) * weight + bias``, and the running
statistics are updated with the unbiased ``var * n / (n - 1)``. The backward
pass all-reduces ``sum(dy)`` and ``sum(dy * x_hat)`` so that

    dx = weight / sqrt(var + eps) * (dy - sum(dy) / n - x_hat * sum(dy x_hat) / n)

is the gradient through the global statistics (as torch's CUDA kernel). With
the same images per step, N processes then see the batch statistics of one
process with the N-times larger batch. Outside training, or with one process,
it is ``F.batch_norm``.

:class:`~mlrpl_mm.engine.MLRPLDistributedDataParallel` converts the model's
``BatchNorm*d`` layers when ``sync_bn=True`` (set by
:func:`mlrpl_mm.apis.setup_cpu_distributed` for a config with
``sync_bn='torch'``).
"""
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

__all__ = ['CPUSyncBatchNorm', 'convert_cpu_sync_batchnorm']


class _SyncBNFunction(Function):

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps,
                momentum, group):
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        local = torch.cat([xf.sum(dims), (xf * xf).sum(dims),
                           xf.new_tensor([x.numel() / c])])
        dist.all_reduce(local, group=group)
        n = local[-1]
        mean = local[:c] / n
        var = (local[c:2 * c] / n - mean * mean).clamp(min=0)
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            unbiased = var * n / (n - 1).clamp(min=1)
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * unbiased)
        shape = [1, c] + [1] * (x.dim() - 2)
        x_hat = (xf - mean.view(shape)) * invstd.view(shape)
        w = weight.float() if weight is not None else torch.ones_like(mean)
        b = bias.float() if bias is not None else torch.zeros_like(mean)
        ctx.save_for_backward(x_hat, invstd, w)
        ctx.n, ctx.group, ctx.has_affine = n, group, weight is not None
        return (x_hat * w.view(shape) + b.view(shape)).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x_hat, invstd, w = ctx.saved_tensors
        c = x_hat.shape[1]
        dims = [0] + list(range(2, x_hat.dim()))
        shape = [1, c] + [1] * (x_hat.dim() - 2)
        dyf = dy.float()
        sum_dy = dyf.sum(dims)
        sum_dy_xhat = (dyf * x_hat).sum(dims)
        glob = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(glob, group=ctx.group)
        g_dy, g_dy_xhat = glob[:c] / ctx.n, glob[c:] / ctx.n
        dx = (w * invstd).view(shape) * (
            dyf - g_dy.view(shape) - x_hat * g_dy_xhat.view(shape))
        dw = sum_dy_xhat if ctx.has_affine else None
        db = sum_dy if ctx.has_affine else None
        return dx.to(dy.dtype), dw, db, None, None, None, None, None


class CPUSyncBatchNorm(nn.SyncBatchNorm):
    """``nn.SyncBatchNorm`` whose synchronised training forward also runs on
    CPU (gloo, module docstring); same parameters, buffers and state_dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, ...) -> same shape."""
        self._check_input_dim(x)
        sync = (self.training and dist.is_available()
                and dist.is_initialized()
                and dist.get_world_size(self.process_group) > 1)
        if not sync:
            return super().forward(x) if x.is_cuda else self._local(x)
        if self.momentum is None:
            raise ValueError('CPUSyncBatchNorm: momentum=None (cumulative '
                             'average) is not supported')
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        track = self.track_running_stats
        return _SyncBNFunction.apply(
            x, self.weight, self.bias,
            self.running_mean if track else None,
            self.running_var if track else None, self.eps, self.momentum,
            self.process_group or dist.group.WORLD)

    def _local(self, x: torch.Tensor) -> torch.Tensor:
        bn_training = self.training or self.running_mean is None
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x, self.running_mean if not self.training or
            self.track_running_stats else None,
            self.running_var if not self.training or
            self.track_running_stats else None,
            self.weight, self.bias, bn_training, momentum, self.eps)


def convert_cpu_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm*d`` (and ``nn.SyncBatchNorm``) of
    ``module`` by a :class:`CPUSyncBatchNorm` holding the same parameters and
    buffers; returns the (possibly new) module."""
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, CPUSyncBatchNorm):
        out = CPUSyncBatchNorm(module.num_features, module.eps,
                               module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, convert_cpu_sync_batchnorm(child))
    return out
