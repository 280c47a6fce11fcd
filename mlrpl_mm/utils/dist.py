"""Distributed helpers for whole-training-set statistics.

Anything computed from the whole training set (prototypes, label graphs)
must be identical on every rank and equal to the single-process result.
The recipe: every rank computes rows for its shard together with their
``sample_idx``; :func:`gather_by_index` all-gathers them, drops the
duplicates that the distributed sampler adds as padding, and sorts by
``sample_idx``, so every rank ends with the same rows in dataset order.
"""
import re
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size, is_distributed
from mmengine.logging import MMLogger


def _all_gather_var(t: torch.Tensor) -> List[torch.Tensor]:
    """All-gather tensors whose first dimension differs across ranks."""
    world = get_world_size()
    n = torch.tensor([t.shape[0]], device=t.device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    torch_dist.all_gather(sizes, n)
    max_n = int(max(s.item() for s in sizes))
    pad = t.new_zeros((max_n - t.shape[0],) + tuple(t.shape[1:]))
    padded = torch.cat([t, pad], 0).contiguous()
    out = [torch.empty_like(padded) for _ in range(world)]
    torch_dist.all_gather(out, padded)
    return [o[:int(s.item())] for o, s in zip(out, sizes)]


def gather_by_index(index: torch.Tensor, *tensors: torch.Tensor
                    ) -> Tuple[torch.Tensor, ...]:
    """Gather per-sample rows from all ranks, dedupe and sort by index.

    Args:
        index: (n,) long, the ``sample_idx`` of each local row.
        *tensors: tensors with first dimension n (any trailing shape).

    Returns:
        ``(index, *tensors)`` with the rows of all ranks, unique in ``index``
        and sorted by it. Single process: the same, without communication.
    """
    if is_distributed() and get_world_size() > 1:
        index = torch.cat(_all_gather_var(index), 0)
        tensors = tuple(torch.cat(_all_gather_var(t), 0) for t in tensors)
    order = torch.argsort(index, stable=True)
    index = index[order]
    keep = torch.ones_like(index, dtype=torch.bool)
    keep[1:] = index[1:] != index[:-1]
    return (index[keep],) + tuple(t[order][keep] for t in tensors)


def gather_by_index_in_groups(index: torch.Tensor, group: torch.Tensor,
                              num_groups: int, *tensors: torch.Tensor,
                              max_rows: Optional[int] = None
                              ) -> Iterator[Tuple[torch.Tensor, ...]]:
    """:func:`gather_by_index` one chunk of groups at a time (bounded memory).

    The local rows carry a group id in ``[0, num_groups)`` (e.g. the class of
    a (sample, class) row). Consecutive groups are packed into chunks of at
    most ``max_rows`` rows in total over all ranks (a group larger than that
    forms a chunk alone), and each chunk is gathered and yielded on its own,
    in ascending group order, so a rank never holds more than one chunk of
    the other ranks' rows (plus its own shard). The chunk boundaries come
    from the all-reduced row count of every group (the sampler's padding
    duplicates included), so every rank makes the same chunks.

    Within a chunk the rows are, as with :func:`gather_by_index`, unique in
    ``index`` and sorted by it: restricted to one group, the rows (and their
    order) are exactly those of one :func:`gather_by_index` of everything,
    for any number of processes.

    Args:
        index: (n,) long, unique key of each local row (duplicates across
            ranks are the sampler's padding and are dropped).
        group: (n,) long group id of each local row.
        num_groups: G.
        *tensors: tensors with first dimension n.
        max_rows: Rows per chunk; None: one chunk with every group (the same
            as one :func:`gather_by_index`).

    Yields:
        ``(index, *tensors)`` of one chunk of groups (chunks without any row
        are skipped).
    """
    if max_rows is not None and max_rows < 1:
        raise ValueError(f'max_rows must be >= 1 or None, got {max_rows}')
    group = group.to(index.device).long()
    if max_rows is None:
        yield gather_by_index(index, *tensors)
        return
    counts = torch.bincount(group, minlength=num_groups)[:num_groups]
    if is_distributed() and get_world_size() > 1:
        torch_dist.all_reduce(counts)
    counts = counts.cpu().tolist()
    bounds, lo, rows = [], 0, 0
    for g, n in enumerate(counts):
        if rows and rows + n > max_rows:
            bounds.append((lo, g))
            lo, rows = g, 0
        rows += n
    bounds.append((lo, num_groups))
    for lo, hi in bounds:
        if sum(counts[lo:hi]) == 0:
            continue
        sel = (group >= lo) & (group < hi)
        yield gather_by_index(index[sel], *(t[sel] for t in tensors))


def shutdown_distributed() -> None:
    """Wait for every rank, then tear the process group down (end of the
    tools' ``main``): without it a gloo rank can abort at interpreter exit
    ("terminate called without an active exception") while its peer is
    already gone, failing a run that has finished its work. No-op without
    an initialised process group."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


#: gloo / NCCL / c10d messages of a collective that a stuck or dead rank
#: never completed
_STUCK_PEER = re.compile(r'timed out waiting|collective operation timeout'
                         r'|connection (closed|reset) by peer', re.IGNORECASE)


@contextmanager
def stuck_rank_errors(cfg: Optional[dict] = None):
    """Turn a collective that timed out (or lost its peer) into a clear error.

    Around ``runner.train()`` of the tools: when an exception from a
    collective (gradient all-reduce, prototype all-gather, barrier) says it
    timed out after ``env_cfg.dist_cfg.timeout`` seconds or lost its peer,
    log an ERROR that names the rank, the timeout and the config key, and
    raise ``RuntimeError`` with the same text from the backend's error. Other
    exceptions, and everything without an initialised process group, pass
    unchanged.

    Args:
        cfg: the run's config, for ``env_cfg.dist_cfg.timeout`` in the
            message.
    """
    dist_cfg = ((cfg or {}).get('env_cfg', None) or {}).get('dist_cfg', None)
    timeout_s = (dist_cfg or {}).get('timeout', None)
    try:
        yield
    except RuntimeError as e:
        if not (torch_dist.is_available() and torch_dist.is_initialized()
                and _STUCK_PEER.search(str(e))):
            raise
        rank = torch_dist.get_rank()
        first = str(e).strip().splitlines()[0][:300]
        msg = (f'rank {rank}: a distributed collective did not complete '
               f'within env_cfg.dist_cfg.timeout = {timeout_s} s ({first}). '
               'Another rank is stuck (stopped, deadlocked, swapping, '
               'waiting on a slow filesystem) or died: see its log and '
               'process. This rank exits; raise the timeout '
               '(--cfg-options env_cfg.dist_cfg.timeout=SECONDS) only if a '
               'rank legitimately works alone for longer.')
        MMLogger.get_current_instance().error(msg)
        raise RuntimeError(msg) from e
