#!/usr/bin/env python
"""HST head forward + backward: optimised vs literal formulation.

Measures one training step of :class:`mlrpl_mm.models.heads.HSTHead` in the
epoch >= 5 phase (every loss term: BCE, BCE with IST / CST pseudo labels, both
margin losses, co-occurrence ASL, instance and prototype contrastive losses)
at the reference shapes: B = 32, D = 1024, I = 512, O = 1024, the backbone map
(B, 2048, 2S, 2S) pooled 2x2 to S x S (S = 7, and 14), C = 80 (COCO) and
C = 200 (VG-200, 19,900 pairs).

``literal`` swaps in the formulation of the reference code, written from
docs/equations/hst.md: the repeat-based semantic decoupling (W1 x_n repeated
over classes, W2 w_c repeated over locations, W3 then W4 on the (B N C, I)
block, pooling through a (B, N, C, D) tensor), the unchunked pair branch (the
(B, P, 2I) concatenation through W_i2 and W_i3 for every pair) and the per-gate
gated GNN (six linear layers, the graph repeated over the batch, two bmm per
step). ``ours`` is the collapsed / factorised / chunked / fused implementation.
Both share the same weights. Times are the median wall time and the median CPU
time (process time, all threads) of a step; the machine may be shared, so
the load average at the start and end of each case is reported too.

Every case runs in its own subprocess; peak memory is the increase of the
process's peak RSS (``ru_maxrss``) over its value after building the model
and inputs. Example::

    python benchmarks/bench_hst.py                     # the full table
    python benchmarks/bench_hst.py --quick             # small shapes
    python benchmarks/bench_hst.py --worker --impl ours --classes 200 --size 7 \
        --max-chunk-mb 64
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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def literal_sd(sd):
    """Repeat-based semantic decoupling (reference formulation)."""
    import torch

    def forward(x, emb):
        B, D, H, W = x.shape
        N, C, I = H * W, emb.shape[0], sd.inter_channels
        xf = x.permute(0, 2, 3, 1).reshape(B * N, D)
        a = sd.fc1(xf).view(B * N, 1, I).repeat(1, C, 1)
        b = sd.fc2(emb).view(1, C, I).repeat(B * N, 1, 1)
        t = torch.tanh(a * b).view(-1, I)
        s = sd.fc4(sd.fc3(t)).view(B, N, C)
        alpha = torch.softmax(s, dim=1)
        xr = x.permute(0, 2, 3, 1).reshape(B, N, 1, D).repeat(1, 1, C, 1)
        f = (alpha.view(B, N, C, 1) * xr).sum(1)
        return f, alpha
    return forward


def literal_pairs(ist):
    """Unchunked pair branch on the (B, P, 2I) concatenation."""
    import torch

    def forward(f):
        g = ist.fc_g(f)
        pair = torch.cat([g[:, ist.pair_i], g[:, ist.pair_j]], dim=-1)
        p = ist.fc_pair2(torch.relu(ist.fc_pair1(pair)))
        return ist.pair_classifier(p)
    return forward


def literal_gnn(gnn):
    """The reference's gated GNN: one linear layer per gate, the graph
    repeated over the batch, two bmm for [A h ; A^T h]."""
    import torch
    import torch.nn.functional as F

    def forward(h, adj):
        B, C, D = h.shape
        a_in = adj.to(h.dtype).repeat(B, 1).view(B, C, C)
        a_out = adj.t().to(h.dtype).repeat(B, 1).view(B, C, C)
        lin = {k: gnn.gate(k) for k in ('w_z', 'w_r', 'w_h', 'u_z', 'u_r', 'u_h')}
        x = h
        for _ in range(gnn.num_steps):
            m = torch.cat([torch.bmm(a_in, x), torch.bmm(a_out, x)], 2).view(B * C, -1)
            xf = x.reshape(B * C, D)
            z = torch.sigmoid(F.linear(m, *lin['w_z']) + F.linear(xf, *lin['u_z']))
            r = torch.sigmoid(F.linear(m, *lin['w_r']) + F.linear(xf, *lin['u_r']))
            ht = torch.tanh(F.linear(m, *lin['w_h']) + F.linear(r * xf, *lin['u_h']))
            x = ((1 - z) * xf + z * ht).view(B, C, D)
        return x
    return forward


def worker(args) -> dict:
    import numpy as np
    import torch
    from mmengine.logging import MessageHub
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import mlrpl_mm  # noqa: F401
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    C, B, S = args.classes, args.batch, args.size
    head = MODELS.build(dict(
        type='HSTHead', num_classes=C, in_channels=2048, feat_channels=1024,
        inter_channels=512, out_channels=1024, avg_pool=True,
        class_embedding=dict(type='LearnableClassEmbedding', embed_dims=300),
        sd_chunk_size=args.sd_chunk,
        ist=dict(type='IntraSemanticTransfer', max_chunk_mb=args.max_chunk_mb),
        cst=dict(type='CrossSemanticTransfer', num_prototypes=10)))
    if args.impl == 'literal':
        head.trunk.sd.forward = literal_sd(head.trunk.sd)
        head.ist.forward = literal_pairs(head.ist)
        head.trunk.gnn.forward = literal_gnn(head.trunk.gnn)
    head.set_label_graph(torch.rand(C, C))
    with torch.no_grad():
        head.cst.prototypes.normal_()
        head.cst.prototype_count.fill_(10)
        head.cst.prototype_epoch.fill_(5)
        head.cst.margin.fill_(-0.5)  # some CST pseudo labels
        head.ist.margin.fill_(0.3)
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 5)
    rng = np.random.RandomState(0)
    samples = []
    for i in range(B):
        y = rng.choice([-1, 0, 1], size=C, p=[0.6, 0.3, 0.1]).astype(np.int8)
        ds = DataSample()
        ds.set_field(y, 'partial_label')
        ds.set_metainfo(dict(sample_idx=i))
        samples.append(ds)
    x = torch.randn(B, 2048, 2 * S, 2 * S)

    def step():
        head.zero_grad(set_to_none=True)
        losses = head.loss((x, ), samples)
        total = sum(v for k, v in losses.items() if 'loss' in k)
        total.backward()
        return float(total)

    base = _rss_mb()
    load0 = os.getloadavg()[0]
    times, cpu, loss = [], [], None
    for i in range(args.warmup + args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return dict(impl=args.impl, classes=C, batch=B, size=S,
                pairs=C * (C - 1) // 2, max_chunk_mb=args.max_chunk_mb,
                time_s=float(np.median(times)), times=times,
                cpu_s=float(np.median(cpu)), cpu_times=cpu,
                peak_mb=_rss_mb() - base, base_mb=base, loss=loss,
                threads=args.threads,
                load=[load0, os.getloadavg()[0]])


def run_case(args, **kw) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), '--worker',
           '--threads', str(args.threads), '--batch', str(kw.get('batch', args.batch)),
           '--repeats', str(args.repeats), '--warmup', str(args.warmup)]
    for k in ('impl', 'classes', 'size', 'max_chunk_mb'):
        cmd += [f'--{k.replace("_", "-")}', str(kw[k])]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return dict(kw, error=proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--worker', action='store_true')
    p.add_argument('--impl', default='ours', choices=['ours', 'literal'])
    p.add_argument('--classes', type=int, default=80)
    p.add_argument('--size', type=int, default=7)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--max-chunk-mb', type=float, default=256.0)
    p.add_argument('--sd-chunk', type=int, default=None)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--quick', action='store_true',
                   help='batch 4 (a smoke run of the table)')
    p.add_argument('--skip-literal-vg', action='store_true', default=True,
                   help='do not run the literal VG-200 case (about 13 GB at '
                   'batch 32)')
    p.add_argument('--run-literal-vg', dest='skip_literal_vg', action='store_false')
    p.add_argument('--out', default=None, help='write the results as JSON')
    p.add_argument('--cases', default=None,
                   help='comma-separated indices of the cases to run '
                   '(0: C=80 7x7, 1: C=80 14x14, 2: C=200 7x7 256 MB, '
                   '3: C=200 7x7 64 MB)')
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.quick:
        args.batch = 4
    cases = [
        dict(classes=80, size=7, max_chunk_mb=256.0),
        dict(classes=80, size=14, max_chunk_mb=256.0),
        dict(classes=200, size=7, max_chunk_mb=256.0),
        dict(classes=200, size=7, max_chunk_mb=64.0),
    ]
    if args.cases:
        cases = [cases[int(i)] for i in args.cases.split(',')]
    rows = []
    for case in cases:
        ours = run_case(args, impl='ours', **case)
        lit = None
        if not (case['classes'] == 200 and case['max_chunk_mb'] != 256.0):
            if case['classes'] == 200 and args.skip_literal_vg:
                lit = dict(error='skipped (--run-literal-vg)')
            else:
                lit = run_case(args, impl='literal', **case)
        rows.append(dict(case=case, ours=ours, literal=lit))
        _print_row(rows[-1], args.batch)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(rows, f, indent=1)


def _print_row(row, batch):
    c, o, l = row['case'], row['ours'], row['literal']
    name = (f"B={batch} C={c['classes']} {c['size']}x{c['size']} "
            f"budget={c['max_chunk_mb']:.0f}MB")
    if 'error' in o:
        print(f'{name}: ours failed: {o["error"]}')
        return
    line = (f"{name}: ours {o['time_s']:.2f} s wall, {o['cpu_s']:.2f} s CPU, "
            f"{o['peak_mb']:.0f} MB (load {o['load'][0]:.1f}-{o['load'][1]:.1f})")
    if l is not None and 'error' not in l:
        line += (f" | literal {l['time_s']:.2f} s wall, {l['cpu_s']:.2f} s CPU, "
                 f"{l['peak_mb']:.0f} MB (load {l['load'][0]:.1f}-{l['load'][1]:.1f})"
                 f" | speed-up x{l['time_s'] / o['time_s']:.2f} wall, "
                 f"x{l['cpu_s'] / o['cpu_s']:.2f} CPU, memory "
                 f"x{l['peak_mb'] / max(o['peak_mb'], 1e-6):.2f} less")
    elif l is not None:
        line += f" | literal: {l['error'][-300:]}"
    print(line, flush=True)


if __name__ == '__main__':
    main()
