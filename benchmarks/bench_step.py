#!/usr/bin/env python
"""One full training step per method, next to the plain backbone + linear head.

A step is what the runner does per iteration with the data already on the
device: ``model.train_step(data, optim_wrapper)`` = data preprocessor
(normalisation of uint8 images already on the device), backbone, head, loss,
backward and the optimizer step (Adam of the protocol schedule), under the
optimizer wrapper's autocast with ``--amp`` (``AmpOptimWrapper``, fp16 and a
dynamic loss scale on CUDA; ``CPUAutocastOptimWrapper``, bf16 on CPU: what
``tools/train.py --amp`` selects).

Models are built from the project's configs (``mmengine.Config`` +
``MODELS.build``), i.e. what users train:

========== ================================ ================================
case       C = 80                           C = 200
========== ================================ ================================
plain_r101 pbce_coco_p30.py with mmpretrain's ``MultiLabelLinearClsHead``
           (GAP + linear, BCE): the baseline of the ResNet-101 methods
pbce       configs/pbce_coco_p30.py         configs/pbce_vg_p30.py
ssgrl      configs/ssgrl_coco_p30.py        configs/ssgrl_vg_p30.py
hst        configs/hst_coco_p30.py          configs/hst_vg_p30.py
dsrb       configs/dsrb_coco_p30.py         configs/dsrb_vg_p30.py
plain_vit  sigrl_coco_p30.py's CLIP ViT-B/16 tower + ``MultiLabelLinearClsHead``
           on the projected CLS token: the baseline of SigRL
sigrl      configs/sigrl_coco_p30.py        the same, ``num_classes=200``
========== ================================ ================================

Changes to the configs (none changes the computation of a step): no weight
download (ResNet ``init_cfg=None``; CLIP ``pretrained=None``, random init),
learnable class embeddings (300-d, as the GloVe file) instead of the
``.npy`` file, random label embeddings for SigRL (its text tower is not part
of a step). The heads are in their most expensive phase (epoch 5 of 20 on
the message hub): HST with its CST prototypes (10 per class) and pseudo
labels, DSRB blending with (C, 4, D) prototypes; a random (C, C) label
graph. Labels: 30% known, positives at COCO / VG-200 density (2.9 of 80,
~10 of 200 per image).

Every case runs in its own subprocess. Reported: images/s (batch / median
step time of ``--steps`` steps after ``--warmup``), the process CPU time
per step, peak memory (CUDA: ``torch.cuda.max_memory_allocated`` over the
timed steps, model + optimizer state included; CPU: the peak resident set
size over the timed steps, VmHWM reset right before them), and each
method's ratio to its plain baseline of the same run (step time and peak).

``--profile``: one extra profiled step per case (``torch.profiler``); the
self time of every op is attributed to the part of the model that ran it:
forward ops to the innermost of ``backbone``, ``neck`` and the head's
sub-modules (two levels: ``head.trunk.sd``, ``head.ist``, ...; ``head``
itself for what the head computes outside them: losses, blending),
backward ops to the part whose forward op created them (autograd sequence
numbers; the recomputation of activation checkpointing counts as backward
of its part), ``optimizer`` for the Adam step, ``other`` for the rest.

Examples::

    python benchmarks/bench_step.py --device cuda --amp --batch 32
    python benchmarks/bench_step.py --device cpu --batch 2 --steps 2 --profile
    python benchmarks/bench_step.py --tiny --steps 1          # seconds, a smoke run
    python benchmarks/bench_step.py --cases plain_r101 hst --classes 80
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

CONFIGS = {
    'plain_r101': ('pbce_coco_p30.py', 'pbce_vg_p30.py'),
    'pbce': ('pbce_coco_p30.py', 'pbce_vg_p30.py'),
    'ssgrl': ('ssgrl_coco_p30.py', 'ssgrl_vg_p30.py'),
    'hst': ('hst_coco_p30.py', 'hst_vg_p30.py'),
    'dsrb': ('dsrb_coco_p30.py', 'dsrb_vg_p30.py'),
    'plain_vit': ('sigrl_coco_p30.py', 'sigrl_coco_p30.py'),
    'sigrl': ('sigrl_coco_p30.py', 'sigrl_coco_p30.py'),
}
CASES = tuple(CONFIGS)
BASELINE = dict(pbce='plain_r101', ssgrl='plain_r101', hst='plain_r101',
                dsrb='plain_r101', sigrl='plain_vit')
VIT_CASES = ('plain_vit', 'sigrl')
#: positives per image at each class count (COCO 2.9 / 80, VG-200 ~10 / 200)
POSITIVES = {80: 2.9, 200: 10.0}
KNOWN = 0.3


# ---------------------------------------------------------------- memory
def rss_kb() -> int:
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
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------- config
def build_cfg(case: str, C: int, tiny: bool = False, depth: int = None):
    """The config of ``case`` at C classes, with the offline / bench changes
    of the module docstring (``tiny``: ResNet-18 with 8 base channels and
    small heads, the 64 px test ViT; ``depth``: another ResNet depth)."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs',
                                   CONFIGS[case][0 if C <= 80 else 1]))
    m = cfg.model
    m.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    if m.data_preprocessor is not None:
        m.data_preprocessor['num_classes'] = C
    if case in VIT_CASES:
        m.backbone.update(pretrained=None, fallback_to_random=False)
        embed = 512
        if tiny:
            m.backbone.model_name = 'mlrpl-tiny-vit'
            embed = 64
        if case == 'plain_vit':
            m.head = dict(type='MultiLabelLinearClsHead', num_classes=C,
                          in_channels=embed)
        else:
            h = m.head
            h.num_classes = C
            h.text_encoder = None
            h.class_names = None
            if tiny:
                h.embed_dims = embed
                h.gmc.update(in_channels=embed, hidden_channels=16)
                h.svfr.embed_dims = embed
        return cfg
    m.backbone.init_cfg = None
    in_ch = 2048
    if tiny:
        m.backbone.update(depth=18, base_channels=8, stem_channels=8)
        in_ch = 64
    elif depth is not None:
        m.backbone.depth = depth
        in_ch = 512 if depth in (18, 34) else 2048
    if case == 'plain_r101':
        m.neck = dict(type='GlobalAveragePooling')
        m.head = dict(type='MultiLabelLinearClsHead', num_classes=C,
                      in_channels=in_ch)
        return cfg
    h = m.head
    h.num_classes = C
    h.in_channels = in_ch
    emb = dict(type='LearnableClassEmbedding', embed_dims=16 if tiny else 300)
    dims = dict(feat_channels=32, inter_channels=16, out_channels=32)
    if case in ('dsrb', 'ssgrl', 'hst'):  # the nested trunk of the family
        h.trunk.class_embedding = emb
        if tiny:
            h.trunk.update(dims)
    return cfg


def prepare_state(model, case: str, C: int, seed: int = 0) -> None:
    """What the hooks would have set by epoch 5: label graph, CST / PPRB
    prototypes, SigRL label embeddings; epoch 5 of 20 on the message hub."""
    import torch
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 5)
    hub.update_info('iter', 5 * 1000 + 3)
    hub.update_info('max_epochs', 20)
    hub.update_info('max_iters', 20 * 1000)
    head = model.head
    g = torch.Generator().manual_seed(seed)
    dev = next(model.parameters()).device
    if hasattr(head, 'set_label_graph') and case != 'sigrl':
        head.set_label_graph(torch.rand(C, C, generator=g).to(dev))
    if case == 'hst':
        with torch.no_grad():
            head.cst.prototypes.copy_(torch.randn(
                head.cst.prototypes.shape, generator=g))
            head.cst.prototype_count.fill_(head.cst.num_prototypes)
            head.cst.prototype_epoch.fill_(5)
            head.cst.margin.fill_(-0.5)  # some CST pseudo labels
            head.ist.margin.fill_(0.3)
    if case == 'dsrb':
        D = head.trunk.feat_channels
        head.pprb.set_prototypes(
            torch.randn(C, 4, D, generator=g).to(dev) / 14.0,
            torch.ones(C, dtype=torch.bool, device=dev), 5)
    if case == 'sigrl':
        head.set_train_classes(
            label_embed=torch.randn(C, head.embed_dims, generator=g).to(dev))


def make_batch(case: str, C: int, B: int, size: int, device, seed: int = 0):
    """uint8 images (B, 3, size, size) on the device and data samples with
    ``partial_label`` (30% known) / ``gt_score`` and ``sample_idx``."""
    import torch
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    p = POSITIVES.get(C, 0.04 * C) / C
    full = torch.where(torch.rand(B, C, generator=g) < p, 1, -1)
    part = full.clone()
    part[torch.rand(B, C, generator=g) >= KNOWN] = 0
    samples = []
    for b in range(B):
        ds = DataSample(metainfo=dict(sample_idx=b))
        ds.set_field(part[b].numpy().astype('int8'), 'partial_label')
        ds.set_field(full[b].numpy().astype('int8'), 'full_label')
        ds.set_gt_score((full[b] > 0).float())
        samples.append(ds.to(device))
    imgs = torch.randint(0, 256, (B, 3, size, size), generator=g,
                         dtype=torch.uint8).to(device)
    return dict(inputs=imgs, data_samples=samples)


# ---------------------------------------------------------------- profile
class PartRegions:
    """``record_function('part:<name>')`` around the forward of modules."""

    def __init__(self, model) -> None:
        from torch.autograd.profiler import record_function
        self._rf = record_function
        self.handles, self._stack = [], []
        mods = [('backbone', model.backbone)]
        if getattr(model, 'neck', None) is not None:
            mods.append(('neck', model.neck))
        mods.append(('head', model.head))
        for name, child in model.head.named_children():
            mods.append((f'head.{name}', child))
            if name == 'trunk':
                for n2, c2 in child.named_children():
                    mods.append((f'head.trunk.{n2}', c2))
        for name, mod in mods:
            self._wrap(name, mod)
        # HST / DSRB / SigRL do their work in loss(), not forward()
        head = model.head
        orig = head.loss

        def loss(*a, **k):
            with self._rf('part:head'):
                return orig(*a, **k)
        head.loss = loss

    def _wrap(self, name, mod):
        def pre(m, args):
            ctx = self._rf(f'part:{name}')
            ctx.__enter__()
            self._stack.append(ctx)

        def post(m, args, out):
            self._stack.pop().__exit__(None, None, None)
        self.handles += [mod.register_forward_pre_hook(pre),
                         mod.register_forward_hook(post)]


def attribute(events, cuda: bool) -> dict:
    """{part: dict(fwd_ms, bwd_ms[, fwd_dev_ms, bwd_dev_ms])} from profiler
    events (self times; see the module docstring)."""

    def region(e):
        while e is not None:
            if e.name.startswith('part:'):
                return e.name[5:]
            if e.name.startswith('Optimizer.'):
                return 'optimizer'
            e = e.cpu_parent
        return None

    def top_backward(e):
        top = None
        while e is not None:
            if e.name.startswith('autograd::engine::evaluate_function'):
                top = e
            e = e.cpu_parent
        return top

    seq_part = {}
    for e in events:
        if e.sequence_nr >= 0 and top_backward(e) is None:
            r = region(e)
            if r is not None:
                seq_part.setdefault((e.thread, e.sequence_nr), r)
                seq_part.setdefault(e.sequence_nr, r)
    out = {}

    def dev_self(e):
        for attr in ('self_device_time_total', 'self_cuda_time_total'):
            if hasattr(e, attr):
                return getattr(e, attr)
        return 0.0
    for e in events:
        bw = top_backward(e)
        if bw is not None:
            part = seq_part.get(bw.sequence_nr) if bw.sequence_nr >= 0 \
                else None
            part, phase = part or 'backward (other)', 'bwd'
        else:
            r = region(e)
            part, phase = r or 'other', 'fwd'
            if r == 'optimizer':
                phase = 'fwd'
        d = out.setdefault(part, dict(fwd_ms=0.0, bwd_ms=0.0,
                                      fwd_dev_ms=0.0, bwd_dev_ms=0.0))
        d[f'{phase}_ms'] += e.self_cpu_time_total / 1e3
        if cuda:
            d[f'{phase}_dev_ms'] += dev_self(e) / 1e3
    return out


# ---------------------------------------------------------------- one case
def run_case(args) -> dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import MODELS

    import mlrpl_mm  # noqa: F401
    torch.manual_seed(0)
    dev = torch.device(args.device)
    cuda = dev.type == 'cuda'
    cfg = build_cfg(args.case, args.classes, args.tiny, args.backbone_depth)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(dev)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    prepare_state(model, args.case, args.classes)
    ow = dict(cfg.optim_wrapper)
    if args.amp:
        if cuda:
            ow.update(type='AmpOptimWrapper', loss_scale='dynamic')
        else:
            ow.update(type='CPUAutocastOptimWrapper')
    optim = build_optim_wrapper(model, ow)
    size = args.size or (224 if args.case in VIT_CASES else 448)
    if args.tiny and args.case in VIT_CASES:
        size = 64
    data = make_batch(args.case, args.classes, args.batch, size, dev)
    if args.channels_last:
        data['inputs'] = data['inputs'].contiguous(
            memory_format=torch.channels_last)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def step():
        losses = model.train_step(data, optim)
        return sum(float(v.detach()) if torch.is_tensor(v) else float(v)
                   for k, v in losses.items() if k == 'loss')

    for _ in range(args.warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        exact = reset_peak()
        base = rss_kb() * 1024
    times, cpu, loss = [], [], None
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if cuda:
        peak = torch.cuda.max_memory_allocated(dev)
    else:
        peak = peak_kb() * 1024
    t = statistics.median(times)
    res = dict(case=args.case, C=args.classes, batch=args.batch, size=size,
               device=args.device, amp=args.amp,
               channels_last=args.channels_last, tiny=args.tiny,
               time_s=t, times=times, cpu_s=statistics.median(cpu),
               img_s=args.batch / t, peak_mib=peak / 2**20,
               step_extra_mib=(peak - base) / 2**20, loss=loss,
               threads=torch.get_num_threads(),
               params_m=sum(p.numel() for p in model.parameters()) / 1e6,
               trainable_m=sum(p.numel() for p in model.parameters()
                               if p.requires_grad) / 1e6)
    if not cuda:
        res['peak_reset'] = exact
    else:
        res['gpu'] = torch.cuda.get_device_name(dev)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        regions = PartRegions(model)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda
                                         else [])
        with profile(activities=acts) as prof:
            step()
            sync()
        for h in regions.handles:
            h.remove()
        res['profile'] = attribute(prof.events(), cuda)
    return res


# ---------------------------------------------------------------- driver
def _sub(args, case: str, C: int) -> dict:
    cmd = [sys.executable, osp.abspath(__file__), '--case', case,
           '--classes', str(C), '--batch', str(args.batch),
           '--steps', str(args.steps), '--warmup', str(args.warmup),
           '--device', args.device]
    for flag in ('amp', 'channels_last', 'tiny', 'profile'):
        if getattr(args, flag):
            cmd.append('--' + flag.replace('_', '-'))
    if args.size:
        cmd += ['--size', str(args.size)]
    if args.backbone_depth:
        cmd += ['--backbone-depth', str(args.backbone_depth)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    load0 = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            r = json.loads(line[7:])
            r['load'] = [load0, os.getloadavg()[0]]
            return r
    err = 'OOM-killed' if proc.returncode in (-9, 137) else \
        f'failed ({proc.returncode}): ' + ' | '.join(
            proc.stderr.strip().splitlines()[-3:])
    return dict(case=case, C=C, error=err)


def _in_process(args, case: str, C: int) -> dict:
    import argparse as _ap
    import gc
    a = _ap.Namespace(**vars(args))
    a.case, a.classes = case, C
    load0 = os.getloadavg()[0]
    try:
        r = run_case(a)
    except Exception as e:  # noqa: BLE001 - reported in the table
        r = dict(case=case, C=C, error=f'{type(e).__name__}: {e}'[:300])
    gc.collect()
    if args.device.startswith('cuda'):
        import torch
        torch.cuda.empty_cache()
    r['load'] = [load0, os.getloadavg()[0]]
    return r


def ratios(results: list) -> None:
    """Add ``time_ratio`` / ``peak_ratio`` (method / its plain baseline)."""
    for r in results:
        base = BASELINE.get(r['case'])
        ref = [q for q in results if q['case'] == base and q['C'] == r['C']
               and 'time_s' in q]
        if 'time_s' in r and ref:
            r['time_ratio'] = r['time_s'] / ref[0]['time_s']
            r['cpu_ratio'] = r['cpu_s'] / ref[0]['cpu_s']
            r['peak_ratio'] = r['peak_mib'] / ref[0]['peak_mib']
            r['extra_ratio'] = r['step_extra_mib'] / max(
                ref[0]['step_extra_mib'], 1e-9)


def table(results: list) -> str:
    mem = 'peak GPU (MiB)' if any(r.get('device', '').startswith('cuda')
                                  for r in results) else 'peak RSS (MiB)'
    lines = ['| case | C | batch | px | img/s | step (s) | CPU (s) | '
             f'{mem} | step extra (MiB) | time / plain | CPU / plain | '
             'peak / plain |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in results:
        if 'error' in r:
            lines.append(f"| {r['case']} | {r['C']} | | | {r['error']} "
                         '| | | | | | | |')
            continue
        tr = f"{r['time_ratio']:.2f}x" if 'time_ratio' in r else '1 (base)' \
            if r['case'].startswith('plain') else '-'
        pr = f"{r['peak_ratio']:.2f}x" if 'peak_ratio' in r else tr \
            if r['case'].startswith('plain') else '-'
        cr = f"{r['cpu_ratio']:.2f}x" if 'cpu_ratio' in r else tr \
            if r['case'].startswith('plain') else '-'
        lines.append(
            f"| {r['case']} | {r['C']} | {r['batch']} | {r['size']} | "
            f"{r['img_s']:.2f} | {r['time_s']:.3f} | {r['cpu_s']:.2f} | "
            f"{r['peak_mib']:.0f} | {r['step_extra_mib']:.0f} | {tr} | {cr} | "
            f"{pr} |")
    return '\n'.join(lines)


def profile_table(r: dict) -> str:
    prof = r.get('profile') or {}
    dev = any(v['fwd_dev_ms'] or v['bwd_dev_ms'] for v in prof.values())
    tot = sum(v['fwd_ms'] + v['bwd_ms'] for v in prof.values()) or 1.0
    head = '| part | fwd (ms) | bwd (ms) | share |'
    sep = '|---|---|---|---|'
    if dev:
        head += ' fwd GPU (ms) | bwd GPU (ms) |'
        sep += '---|---|'
    lines = [f"{r['case']}, C = {r['C']}:", '', head, sep]
    for k, v in sorted(prof.items(), key=lambda kv: -(kv[1]['fwd_ms'] +
                                                        kv[1]['bwd_ms'])):
        s = (f"| {k} | {v['fwd_ms']:.1f} | {v['bwd_ms']:.1f} | "
             f"{100 * (v['fwd_ms'] + v['bwd_ms']) / tot:.1f}% |")
        if dev:
            s += f" {v['fwd_dev_ms']:.1f} | {v['bwd_dev_ms']:.1f} |"
        lines.append(s)
    return '\n'.join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cases', nargs='+', default=list(CASES), choices=CASES)
    p.add_argument('--classes', nargs='+', type=int, default=[80, 200])
    p.add_argument('--device', default='cpu')
    p.add_argument('--amp', action='store_true',
                   help='fp16 autocast + loss scaling on CUDA, bf16 on CPU')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--steps', type=int, default=3, help='timed steps')
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--size', type=int, default=None,
                   help='image side (default 448 for ResNet, 224 for ViT)')
    p.add_argument('--backbone-depth', type=int, default=None,
                   help='another ResNet depth (18/34/50/101/152)')
    p.add_argument('--tiny', action='store_true',
                   help='ResNet-18 with 8 base channels, small heads, the 64 '
                   'px test ViT: a smoke run in seconds')
    p.add_argument('--profile', action='store_true',
                   help='one profiled step per case: time per model part')
    p.add_argument('--in-process', action='store_true',
                   help='run the cases one after the other in this process '
                   '(no subprocess start per case; on CUDA the peak is reset '
                   'per case, on CPU the RSS peaks then overlap)')
    p.add_argument('--threads', type=int, default=None,
                   help='OMP_NUM_THREADS of the case processes')
    p.add_argument('--json', default=None, help='write the results as JSON')
    p.add_argument('--md', default=None, help='write the tables as markdown')
    p.add_argument('--case', default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.case:
        args.classes = args.classes[0]
        print('RESULT ' + json.dumps(run_case(args)), flush=True)
        return
    results = []
    for C in args.classes:
        for case in args.cases:
            r = _in_process(args, case, C) if args.in_process else \
                _sub(args, case, C)
            results.append(r)
            print(f'{case} C={C}: ' + (r['error'] if 'error' in r else
                  f"{r['img_s']:.2f} img/s, {r['time_s']:.3f} s/step, "
                  f"peak {r['peak_mib']:.0f} MiB"), flush=True)
    ratios(results)
    out = [table(results)]
    if args.profile:
        out += [profile_table(r) for r in results if 'profile' in r]
    text = '\n\n'.join(out)
    print()
    print(text)
    if args.md:
        with open(args.md, 'w') as f:
            f.write(text + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(results=results, argv=sys.argv[1:],
                           load=os.getloadavg()), f, indent=1)
    return results


if __name__ == '__main__':
    main()
