#!/usr/bin/env python
"""DSRB head speed / peak memory: pooled formulation vs the literal one.

One training step of the DSRB head (forward + backward of the full loss:
BCE + instance contrastive + IPRB + PPRB, blending phase) on a backbone map
(B, 2048, 2H, 2W) -> 2x2 pooling -> (B, 1024, H, W), for B = 8, D = 1024,
C in {80, 200}, H = W in {7, 14}. Variants:

- ``literal``: the reference's formulation (HCP-MLR-PL model/DSRB.py,
  :class:`LiteralDSRBHead`): the repeat-based semantic decoupling
  (``literal_sd`` imported from bench_hst.py), the attention-weighted maps
  F (B, N, C, D) materialised and blended on the maps (IPRB with the
  reversed batch, PPRB with spatial prototypes (C, 4, N, D) gathered for
  every (image, class)), summed over N, and the three branches through the
  reference's gated GNN (adjacency repeated over the batch, six separate
  linears) one after the other. None of the optimised trunk pieces
  (collapsed / chunked SD, fused GNN) is used by it.
- ``pooled_sep``: :class:`DSRBHead` (pooled (B, C, D) blending, (C, 4, D)
  prototypes, energy map (B, N, C)) with the branches classified separately.
- ``pooled``: :class:`DSRBHead` as configured by default (the three branches
  through the GNN as one (3B, C, D) batch).

Every case runs in a fresh subprocess; peak memory = the peak resident size
during the steps (Linux VmHWM, reset through /proc/self/clear_refs right
before them; ``ru_maxrss`` where that is unavailable) minus the resident size
before them (model, inputs and prototypes already allocated), i.e. the extra
memory a step needs. Time = median (``--stat min``: minimum) of
``--repeat`` steps after one warm-up step, as wall time and as CPU time of
the process (all threads; less sensitive to other load on the machine).
Before timing, each case checks
that the literal and pooled variants give the same loss and input gradient on
its inputs (same PPRB draws and contrastive mining).

Usage::

    python benchmarks/bench_dsrb.py                 # all cases
    python benchmarks/bench_dsrb.py --classes 80 --sizes 7 --repeat 3
    python benchmarks/bench_dsrb.py --json out.json
    python benchmarks/bench_dsrb.py --labels coco30  # COCO-like label density
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

VARIANTS = ('literal', 'literal_bcast', 'pooled_sep', 'pooled')
#: partial labels of the benchmark batch: 'uniform' (every entry -1 / 0 / +1
#: with probability 0.2 / 0.6 / 0.2: 40% known, a third of them positive) or
#: 'coco30' (like MS-COCO at 30% known: positive with probability 2.9 / 80,
#: each entry known with probability 0.3)
LABELS = ('uniform', 'coco30')
labels = 'uniform'
#: 'median' or 'min' of the timed steps
stat = 'median'


def rss_kb() -> int:
    """Current resident set size in KB (Linux /proc)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') // 1024


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM); False if unsupported."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_kb() -> int:
    """Peak RSS (VmHWM) in KB since the last reset (or process start)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build(C: int, H: int, B: int, D: int, variant: str, seed: int = 0,
          spatial: bool = False):
    """Head, inputs, data samples (epoch 5 on the message hub).

    ``spatial``: draw spatial prototypes (C, 4, N, D) and give the pooled
    heads their sums (for the equality check); otherwise only the literal
    head gets spatial ones and the pooled heads random (C, 4, D) ones, so
    that nothing of the literal size is ever allocated for them.
    """
    import torch
    from mmengine.logging import MessageHub
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample

    import mlrpl_mm  # noqa: F401
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 5)
    hub.update_info('iter', 5 * 100 + 3)
    hub.update_info('max_epochs', 20)
    hub.update_info('max_iters', 2000)
    torch.manual_seed(seed)
    literal = variant.startswith('literal')
    cls = LiteralDSRBHead if literal else None
    cfg = dict(
        type='DSRBHead', num_classes=C, in_channels=2048,
        trunk=dict(type='SemanticTrunk', feat_channels=D, inter_channels=512,
                   out_channels=1024, avg_pool=True,
                   class_embedding=dict(type='LearnableClassEmbedding',
                                        embed_dims=300)),
        instance_loss=dict(type='InstanceContrastiveLoss', seed=seed),
        batch_branches=variant == 'pooled', pprb_seed=seed)
    if cls is not None:
        cfg.pop('type')
        head = cls(**cfg)
    else:
        head = MODELS.build(cfg)
    head.train()
    g = torch.Generator().manual_seed(seed)
    head.set_label_graph(torch.rand(C, C, generator=g))
    N = H * H
    valid = torch.ones(C, dtype=torch.bool)
    if spatial or literal:
        proto_map = torch.randn(C, 4, N, D, generator=g) / N
        if literal:
            head.repeat = variant == 'literal'
            head.proto_map = proto_map  # spatial prototypes (C, 4, N, D)
        head.pprb.set_prototypes(proto_map.sum(2), valid, 5)
        del proto_map
    else:
        head.pprb.set_prototypes(torch.randn(C, 4, D, generator=g) / N ** 0.5,
                                 valid, 5)
    x = torch.randn(B, 2048, 2 * H, 2 * H, generator=g).requires_grad_()
    if labels == 'uniform':
        target = torch.randint(-1, 2, (B, C), generator=g)
        target[torch.rand(B, C, generator=g) < 0.6] = 0  # 40% known
    else:  # coco30
        target = torch.where(torch.rand(B, C, generator=g) < 2.9 / 80, 1, -1)
        target[torch.rand(B, C, generator=g) >= 0.3] = 0
    samples = []
    for b in range(B):
        ds = DataSample(metainfo=dict(sample_idx=b))
        ds.set_field(target[b].numpy().astype('int8'), 'partial_label')
        samples.append(ds)
    return head, x, samples


def _bench_hst_literal_sd():
    """``literal_sd`` of benchmarks/bench_hst.py (the reference's
    repeat-based semantic decoupling), imported, not copied."""
    here = osp.dirname(osp.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from bench_hst import literal_sd
    return literal_sd


def literal_gnn(gnn):
    """``literal_gnn`` of benchmarks/bench_hst.py (the reference's gated GNN:
    one linear layer per gate, the graph repeated over the batch, two bmm per
    step; same weights as ``gnn``), imported, not copied."""
    _bench_hst_literal_sd()  # puts benchmarks/ on sys.path
    from bench_hst import literal_gnn as hst_literal_gnn
    return hst_literal_gnn(gnn)


def _literal_class():
    import torch
    from mmpretrain.registry import MODELS  # noqa: F401

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.models.heads.dsrb_head import DSRBHead
    from mlrpl_mm.utils import get_train_progress
    literal_sd = _bench_hst_literal_sd()

    class LiteralDSRBHead(DSRBHead):
        """DSRB loss in the reference's formulation (HCP-MLR-PL model/DSRB.py).

        - semantic decoupling: ``literal_sd`` of bench_hst.py (W1 x_n and
          W2 w_c repeated to (B N, C, I), W3 then W4 on the (B N C, I) block,
          pooling through a repeated (B, N, C, D) map);
        - F (B, N, C, D) = alpha x (the reference's featuremapWithCoef);
          literal_sd keeps its own F internal, so F is built once more here
          by broadcasting (the reference also repeats the coefficient to
          (B, N, C, D), so this is not heavier than the reference);
        - IPRB: coefficient matrix (B, C) (alpha where y = 0 and y' = +1, else
          1), target m y + (1 - m) y', blend m F + (1 - m) flip(F) on the
          maps, sum over N;
        - PPRB: quadrant of every (b, c) from F.sum(-1) (reference argmax
          rule), a shifted quadrant for every (b, c), the spatial prototype
          (C, 4, N, D) gathered for every (b, c) into a (B, N, C, D) map,
          beta F + (1 - beta) P, then the one-hot class matrix selects it on
          the maps, sum over N;
        - the three branches through the reference's gated GNN one after
          the other (:func:`literal_gnn`), then tanh(W_o [h; f]) and the
          element-wise classifier.

        ``repeat`` = True (variant ``literal``) does the reference's
        ``.repeat`` calls as written: the coefficient and the map repeated to
        (B, N, C, D) before their product, the blend masks repeated to
        (B, N, C, D), the prototypes repeated over the batch (B, C, 4, N, D)
        and picked with ``(index == q)`` masks. ``repeat`` = False (variant
        ``literal_bcast``) is the same formulation with broadcasting instead
        (a stronger baseline: every (B, N, C, D) tensor the formulation
        itself needs, no copies). The random choices (blended class, quadrant shift) are the
        pooled head's (:meth:`PPRB.sample_choices`, same generator), so both
        give the same loss.
        """

        proto_map = None
        #: True: the reference's ``.repeat`` to (B, N, C, D) of the masks,
        #: the coefficient and the prototypes (as written); False: the same
        #: formulation with broadcasting (the ``literal_bcast`` variant)
        repeat = True

        def _classify(self, f):
            t = self.trunk
            h = literal_gnn(t.gnn)(f, t.adj)
            B, C, D = f.shape
            o = torch.tanh(t.fc_out(torch.cat(
                (h.reshape(B * C, -1), f.reshape(B * C, -1)), 1)))
            return t.classifier(o.view(B, C, -1))

        def loss(self, feats, data_samples, **kwargs):
            x = self.trunk.reduce(feats[-1])  # (B, D, H, W)
            B, D, H, W = x.shape
            N = H * W
            f, attn = literal_sd(self.trunk.sd)(x, self.trunk.class_embedding())
            C = attn.shape[2]
            xs = x.flatten(2).transpose(1, 2)  # (B, N, D)
            rep = self.repeat
            if rep:  # featuremapWithCoefficient: both factors repeated
                Fm = xs.unsqueeze(2).repeat(1, 1, C, 1) * \
                    attn.unsqueeze(-1).repeat(1, 1, 1, D)
            else:
                Fm = attn.unsqueeze(-1) * xs.unsqueeze(2)  # (B, N, C, D)
            target = self.get_targets(data_samples, device=f.device)
            progress = get_train_progress()

            def full(m):  # (B, C) -> (B, N, C, D) mask / index map
                m = m[:, None, :, None]
                return m.repeat(1, N, 1, D) if rep else m
            # IPRB on the maps (reference mixupInstance_featuremap)
            a = self.iprb.alpha
            flip_t = target.flip(0)
            mat = torch.where((target == 0) & (flip_t == 1), a,
                              torch.ones_like(target))
            yi = mat * target + (1 - mat) * flip_t
            m4 = full(mat)
            Fi = (m4 * Fm + (1 - m4) * Fm.flip(0)).sum(1)
            # PPRB on the maps (reference mixupPrototype_featuremap)
            energy = Fm.sum(-1)  # (B, N, C)
            e = energy.detach().view(B, H, W, C)
            h_star = e.amax(2).argmax(1)
            w_star = e.amax(1).argmax(1)
            if self.pprb.quadrant_split == 'floor':
                quad = 2 * (h_star >= H // 2).long() + (w_star >= W // 2).long()
            else:
                quad = 2 * (2 * h_star >= H).long() + (2 * w_star >= W).long()
            ch = self.pprb.sample_choices(target, self.generator)
            bidx = torch.arange(B).view(B, 1).expand_as(ch['cls'])
            bi, ci = bidx[ch['sel']], ch['cls'][ch['sel']]
            shift = torch.ones(B, C, dtype=torch.long)
            shift[bi, ci] = ch['shift'][ch['sel']]
            new_q = (quad - shift) % 4  # (B, C), every class
            if rep:  # prototypes repeated over the batch, picked by masks
                idx = new_q[:, :, None, None].repeat(1, 1, N, D)
                pr = self.proto_map.unsqueeze(0).repeat(B, 1, 1, 1, 1)
                proto = sum((idx == q) * pr[:, :, q] for q in range(4))
            else:
                proto = self.proto_map[torch.arange(C).view(1, C), new_q]
            proto = proto.permute(0, 2, 1, 3)  # (B, N, C, D)
            onehot = torch.zeros(B, C)
            onehot[bi, ci] = 1.0
            beta = self.pprb.beta
            yp = (1 - onehot) * target + onehot * (1 - beta)
            o4 = full(onehot)
            mixed = beta * Fm + (1 - beta) * proto
            Fp = (o4 * mixed + (1 - o4) * Fm).sum(1)
            out = dict(
                loss_cls=self.loss_module(self._classify(f), target),
                loss_iprb=self.weighted('iprb', self.loss_module(
                    self._classify(Fi), yi)),
                loss_pprb=self.weighted('pprb', self.loss_module(
                    self._classify(Fp), yp)))
            out['loss_instance'] = self.weighted(
                'instance', self.instance_loss(f, target), self.ramp(progress))
            return out

    return LiteralDSRBHead


LiteralDSRBHead = None


def step(head, x, samples):
    import torch
    head.zero_grad(set_to_none=True)
    x.grad = None
    out = head.loss((x, ), samples)
    loss = sum(v for k, v in out.items() if 'loss' in k)
    loss.backward()
    return float(loss.detach()), x.grad


def run_case(C: int, H: int, variant: str, repeat: int, B: int, D: int,
             threads: int) -> dict:
    global LiteralDSRBHead
    import torch
    torch.set_num_threads(threads)
    LiteralDSRBHead = _literal_class()
    head, x, samples = build(C, H, B, D, variant)
    exact = reset_peak()
    base = rss_kb()
    times, cpu = [], []
    for i in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        loss, _ = step(head, x, samples)
        if i > 0:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    peak = peak_kb()
    agg = min if stat == 'min' else statistics.median
    return dict(C=C, H=H, variant=variant, loss=loss, peak_reset=exact,
                time_s=agg(times), cpu_s=agg(cpu), stat=stat, times=times,
                cpus=cpu, peak_extra_mb=(peak - base) / 1024)


def check_equal(C: int, H: int, B: int, D: int,
                literals=('literal', 'literal_bcast')) -> dict:
    """Each literal variant vs pooled: same loss and input gradient (same
    draws)."""
    global LiteralDSRBHead
    LiteralDSRBHead = _literal_class()
    head, x, samples = build(C, H, B, D, 'pooled', spatial=True)
    l2, g2 = step(head, x, samples)
    del head, x
    out, ok = dict(loss_pooled=l2), True
    for v in literals:
        head, x, samples = build(C, H, B, D, v, spatial=True)
        l1, g1 = step(head, x, samples)
        del head, x
        rel = float((g1 - g2).norm() / g2.norm().clamp(min=1e-30))
        out[f'loss_{v}'] = l1
        out[f'grad_rel_diff_{v}'] = rel
        ok = ok and abs(l1 - l2) <= 1e-5 * max(1.0, abs(l2)) and rel < 1e-4
    out['equal'] = ok
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--classes', type=int, nargs='+', default=[80, 200])
    parser.add_argument('--sizes', type=int, nargs='+', default=[7, 14],
                        help='H = W after the 2x2 pooling')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=VARIANTS)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--dims', type=int, default=1024)
    parser.add_argument('--repeat', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no-check', action='store_true',
                        help='skip the literal == pooled check')
    parser.add_argument('--stat', default='median', choices=('median', 'min'),
                        help='statistic of the timed steps (min is the least '
                        'sensitive to other load on a shared machine)')
    parser.add_argument('--labels', default='uniform', choices=LABELS,
                        help='partial labels of the batch (see LABELS)')
    parser.add_argument('--skip', nargs='+', default=[], metavar='C,H,VARIANT',
                        help='cases not to run, e.g. 200,14,literal')
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--case', help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()

    global labels, stat
    labels, stat = args.labels, args.stat
    if args.case:
        kind, C, H, variant = args.case.split(',')
        if kind == 'check':
            res = check_equal(int(C), int(H), args.batch, args.dims,
                              tuple(variant.split('+')))
        else:
            res = run_case(int(C), int(H), variant, args.repeat, args.batch,
                           args.dims, args.threads)
        print('RESULT ' + json.dumps(res))
        return

    results, checks = [], []
    for C in args.classes:
        for H in args.sizes:
            run = [v for v in args.variants if f'{C},{H},{v}' not in args.skip]
            lits = [v for v in run if v.startswith('literal')]
            if not args.no_check and lits:
                checks.append(dict(C=C, H=H, **_sub(
                    args, f'check,{C},{H},{"+".join(lits)}')))
                print(f'check C={C} {H}x{H}: {checks[-1]}', flush=True)
            for v in args.variants:
                if v not in run:
                    results.append(dict(C=C, H=H, variant=v,
                                        error='skipped (--skip)'))
                    continue
                r = _sub(args, f'run,{C},{H},{v}')
                r.update(C=C, H=H, variant=v)
                results.append(r)
                print(f'C={C} {H}x{H} {v}: {r}', flush=True)
    print()
    print('| C | N | variant | wall (s) | CPU (s) | peak extra (MB) | '
          'wall ratio | CPU ratio | memory ratio | CPU / mem ratio vs '
          'literal_bcast |')
    print('|---|---|---|---|---|---|---|---|---|---|')

    def ratios(r, base):
        ref = [q for q in results if q['C'] == r['C'] and q['H'] == r['H']
               and q['variant'] == base and 'time_s' in q]
        if not ref or 'time_s' not in r:
            return None
        ref = ref[0]
        return (ref['time_s'] / r['time_s'], ref['cpu_s'] / r['cpu_s'],
                ref['peak_extra_mb'] / max(r['peak_extra_mb'], 1e-9))
    for r in results:
        a, b = ratios(r, 'literal'), ratios(r, 'literal_bcast')
        tr, cr, mr = [f'{v:.2f}x' for v in a] if a else ['-'] * 3
        br = f'{b[1]:.2f}x / {b[2]:.2f}x' if b else '-'
        t = f"{r['time_s']:.2f}" if 'time_s' in r else r.get('error', '?')
        c = f"{r['cpu_s']:.2f}" if 'cpu_s' in r else '-'
        m = f"{r['peak_extra_mb']:.0f}" if 'peak_extra_mb' in r else '-'
        print(f"| {r['C']} | {r['H']}x{r['H']} | {r['variant']} | {t} | {c} | "
              f"{m} | {tr} | {cr} | {mr} | {br} |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(results=results, checks=checks, labels=args.labels,
                           stat=args.stat,
                           batch=args.batch, dims=args.dims,
                           threads=args.threads, repeat=args.repeat), f, indent=1)


def _sub(args, case: str) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), '--case', case,
           '--batch', str(args.batch), '--dims', str(args.dims),
           '--repeat', str(args.repeat), '--threads', str(args.threads),
           '--labels', args.labels, '--stat', args.stat]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    err = 'OOM-killed' if proc.returncode in (-9, 137) else \
        f'failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}'
    return dict(error=err)


if __name__ == '__main__':
    main()
