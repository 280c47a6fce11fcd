#!/usr/bin/env python
"""SVFR forward + backward: class-chunked (exact) vs the naive (B, L, C, D) form.

Every case runs in a fresh subprocess so that its peak memory is its own.
Time: wall clock of one forward + backward (the minimum over ``--repeat``)
and the process CPU time of that same step (all threads; on a shared
machine the wall time depends on the load, the CPU time much less).
Memory:
CUDA: ``torch.cuda.max_memory_allocated``; CPU: the process's peak resident
set size (``ru_maxrss``) minus the one measured after the inputs and module
were built (so the Python / torch baseline is excluded). On CPU the
subprocess runs with ``MALLOC_MMAP_THRESHOLD_=131072`` (``--cpu-malloc-env``):
with glibc's default dynamic threshold, freed multi-MB blocks stay in the
heap between small live tensors and the RSS grows with the number of chunks
although the live tensors do not (measured: 2.0 GiB instead of ~0.2 GiB at
C = 925); the fixed threshold makes the RSS follow the live tensors.

Reference sizes (issue 6): B = 32, L = 196, D = 512, C = 80 and 925. On a CPU
the naive form at B = 32, C = 925 needs ~12 GB per (B, L, C, D) tensor and
several of them are kept for backward, so ``--cpu-batch`` (default 2) is used
there instead, and the command line says so in the output.

Examples::

    python benchmarks/bench_sigrl.py                      # default cases
    python benchmarks/bench_sigrl.py --batch 32 --classes 80 925 --device cuda
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_case(args) -> dict:
    import torch
    sys.path.insert(0, ROOT)
    from mlrpl_mm.models.layers.svfr import SVFR
    torch.manual_seed(0)
    dev = torch.device(args.device)
    naive = args.mode == 'naive'
    m = SVFR(embed_dims=args.dim,
             class_chunk=args.classes if naive else args.chunk,
             use_checkpoint=not naive).to(dev)
    P = torch.randn(args.batch, args.length, args.dim, device=dev,
                    requires_grad=True)
    E = torch.nn.functional.normalize(
        torch.randn(args.classes, args.dim, device=dev), dim=-1)
    H = torch.randn(args.classes, args.dim, device=dev)
    if dev.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times, cpu_times = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = m(P, E, H)
        out.square().mean().backward()
        if dev.type == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        P.grad = None
        m.zero_grad(set_to_none=True)
        del out
    if dev.type == 'cuda':
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return dict(mode=args.mode, B=args.batch, L=args.length, D=args.dim,
                C=args.classes, chunk=None if naive else args.chunk,
                device=args.device, time_s=min(times),
                cpu_time_s=cpu_times[times.index(min(times))],
                peak_mem_mib=peak / 2**20,
                threads=torch.get_num_threads())


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--cpu-batch', type=int, default=2,
                   help='batch used on CPU (the naive form does not fit at 32)')
    p.add_argument('--length', type=int, default=196)
    p.add_argument('--dim', type=int, default=512)
    p.add_argument('--classes', type=int, nargs='+', default=[80, 925])
    p.add_argument('--chunk', type=int, default=16)
    p.add_argument('--modes', nargs='+', default=['chunked', 'naive'])
    p.add_argument('--device', default=None)
    p.add_argument('--repeat', type=int, default=1)
    p.add_argument('--out', default=None, help='write the results as JSON')
    p.add_argument('--no-cpu-malloc-env', action='store_true',
                   help='keep glibc\'s dynamic mmap threshold on CPU')
    p.add_argument('--case', action='store_true', help=argparse.SUPPRESS)
    p.add_argument('--mode', default='chunked', help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        args.classes = args.classes[0]
        print(json.dumps(run_case(args)))
        return
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    batch = args.batch
    if device == 'cpu' and args.cpu_batch and args.cpu_batch < batch:
        print(f'CPU run: B reduced from {batch} to {args.cpu_batch} (the '
              f'naive (B, L, C, D) tensors at B={batch}, C={max(args.classes)}'
              f' would need {batch * args.length * max(args.classes) * args.dim * 4 / 2**30:.1f}'
              ' GiB each)')
        batch = args.cpu_batch
    results = []
    for c in args.classes:
        for mode in args.modes:
            cmd = [sys.executable, osp.abspath(__file__), '--case', '--mode',
                   mode, '--batch', str(batch), '--length', str(args.length),
                   '--dim', str(args.dim), '--classes', str(c), '--chunk',
                   str(args.chunk), '--device', device, '--repeat',
                   str(args.repeat)]
            env = dict(os.environ)
            if device == 'cpu' and not args.no_cpu_malloc_env:
                env['MALLOC_MMAP_THRESHOLD_'] = '131072'
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  env=env)
            if proc.returncode != 0:
                res = dict(mode=mode, B=batch, C=c, error=(
                    proc.stderr.strip().splitlines() or ['killed'])[-1][:200],
                    returncode=proc.returncode)
            else:
                res = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(res)
            if 'error' in res:
                print(f"C={c:5d} {mode:8s} B={batch}: FAILED "
                      f"({res['returncode']}): {res['error']}", flush=True)
            else:
                print(f"C={c:5d} {mode:8s} B={batch} L={args.length} "
                      f"D={args.dim} chunk={res['chunk']}: "
                      f"{res['time_s']:.2f} s fwd+bwd (CPU time "
                      f"{res['cpu_time_s']:.2f} s, {res['threads']} "
                      f"threads), peak "
                      f"{res['peak_mem_mib']:.0f} MiB", flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
