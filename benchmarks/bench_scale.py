#!/usr/bin/env python
"""Time and peak memory of everything that grows with the training set.

For N images (default 1k, 10k, 100k), on generated annotation files in the
real formats (no image is read: nothing here runs a backbone):

============== ===========================================================
part           what is measured
============== ===========================================================
dataset_coco   ``PartialLabelDataset(CocoMultiLabel)`` build: a COCO
               ``instances_*.json`` with N images, 80 categories, ~2.9
               annotations per image, 30% known labels (the protocol)
dataset_vg     the same for ``VGMultiLabel`` (list file + label JSON, 200
               classes, ~10 labels per image)
dataset_nus    ``NUSWideMultiLabel(label_set='all')``: the official files
               (image list, 81 concept label files, the 1k-tag matrix):
               925 seen + 81 unseen = 1006 labels
label_graph    ``LabelGraphHook.compute`` on the VG-200 (C = 200) and the
               NUS-WIDE (C = 1006) training labels
gather         CST prototype pass, the gathering of the known positives'
               features (VG-200 at 90% known: 9 rows per image, D = 1024) over
               2 gloo processes: ``gather_by_index`` of everything (the code
               before this benchmark) vs ``CSTPrototypeHook``'s chunks of
               classes (``max_gather_rows`` = 65536): peak RSS of a rank
kmeans         ``CrossSemanticTransfer.update_prototypes`` (K = 10, 100
               Lloyd iterations at most) on COCO (80 classes, 2.9 x 0.9 rows
               per image) and VG-200 (200 classes, 9 rows per image) at 90%
               known, random features (an upper bound: they rarely converge
               before the 100 iterations)
map            ``MultiLabelMAP.compute_metrics`` (C = 80, the COCO val size
               is 40,137 / 40,504) and ``ZeroShotMultiLabelMetric`` (mode
               ``'both'``: GZSL over 1006 classes + ZSL over 81, NUS-WIDE
               test ~83k)
buffers        EM+APL / ROLE per-sample state at C = 1006 (NUS-WIDE train
               ~150k): checkpoint size, ``torch.save`` + ``torch.load`` +
               ``load_state_dict`` time, one APL label update (per epoch)
               and one ROLE estimator step (per iteration, batch 32)
============== ===========================================================

Each (part, N) runs in its own subprocess; peak memory = the peak resident
set size during the measurement (VmHWM reset right before) minus the
resident size before it. The growth exponent of each quantity in N is the
slope of a least-squares fit of log(value) on log(N) over the measured
sizes ("last" = the slope between the two largest sizes, less affected by
constant costs). A part that does not fit in ``--max-mem-gb`` at a size is
skipped there (the estimate is stated).

Examples::

    python benchmarks/bench_scale.py                       # 1k, 10k, 100k
    python benchmarks/bench_scale.py --sizes 1000 10000 --parts map buffers
    python benchmarks/bench_scale.py --sizes 200 400 --tiny   # a smoke run
"""
import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PARTS = ('dataset_coco', 'dataset_vg', 'dataset_nus', 'label_graph',
         'gather', 'kmeans', 'map', 'buffers')
KNOWN = 0.3
#: rows of the one-piece gather of one rank that still fit (2 ranks): above
#: this many images the "before" variant is not run (it needs ~4 copies of
#: the whole (M, D) feature set per rank: ~3 GB per rank at 20k images)
GATHER_OLD_MAX_N = 20000
#: feature dimension D of the gather and k-means parts (--dims)
DIMS = 1024


# ------------------------------------------------------------ measurement
def rss_kb() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') // 1024


def reset_peak() -> None:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def peak_kb() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1])
    return 0


def _warm_imports() -> None:
    """Import what the parts use before anything is measured."""
    import torch  # noqa: F401
    from mmpretrain.registry import DATASETS  # noqa: F401

    import mlrpl_mm  # noqa: F401
    import mlrpl_mm.evaluation.metrics  # noqa: F401
    import mlrpl_mm.engine.hooks  # noqa: F401
    import pycocotools.coco  # noqa: F401


def measure(fn, *args, **kwargs):
    """(result, seconds, peak extra MiB) of fn(*args)."""
    import gc
    _warm_imports()
    gc.collect()
    reset_peak()
    base = rss_kb()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    t = time.perf_counter() - t0
    return out, t, (peak_kb() - base) / 1024


# ------------------------------------------------------------ generators
def _label_rows(n: int, C: int, mean_pos: float, seed: int):
    """n lists of positive class indices, Zipf-like class frequencies."""
    rng = np.random.RandomState(seed)
    w = 1.0 / np.arange(1, C + 1) ** 0.8
    w /= w.sum()
    k = np.clip(rng.poisson(mean_pos, n), 0, C)
    return [np.unique(rng.choice(C, size=int(ki), p=w)) for ki in k]


def write_coco(root: str, n: int, C: int = 80, seed: int = 0) -> str:
    """``annotations/instances_train2014.json`` with n images."""
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    path = osp.join(root, 'annotations', 'instances_train2014.json')
    if osp.isfile(path):
        return root
    cat_ids = list(range(1, 91))[:C]  # COCO's ids have gaps; any ids do
    images, anns, aid = [], [], 1
    for i, labels in enumerate(_label_rows(n, C, 2.9, seed)):
        images.append(dict(id=i + 1, file_name=f'COCO_train2014_{i + 1:012d}.jpg',
                           width=640, height=480))
        for c in labels:
            anns.append(dict(id=aid, image_id=i + 1, category_id=cat_ids[c],
                             iscrowd=0, bbox=[0, 0, 10, 10], area=100))
            aid += 1
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=anns,
                       categories=[dict(id=c, name=f'cat{c}')
                                   for c in cat_ids]), f)
    return root


def write_vg(root: str, n: int, C: int = 200, seed: int = 0) -> str:
    os.makedirs(root, exist_ok=True)
    if osp.isfile(osp.join(root, 'train_list.txt')):
        return root
    names = [f'{i + 1}.jpg' for i in range(n)]
    rows = _label_rows(n, C, 10.0, seed)
    with open(osp.join(root, 'vg_category_200_labels_index.json'), 'w') as f:
        json.dump({nm: r.tolist() for nm, r in zip(names, rows)}, f)
    with open(osp.join(root, 'vg_category_200.txt'), 'w') as f:
        f.write('\n'.join(f'obj{c}' for c in range(C)) + '\n')
    with open(osp.join(root, 'train_list.txt'), 'w') as f:
        f.write('\n'.join(names) + '\n')
    return root


def write_nus(root: str, n: int, seed: int = 0) -> str:
    """Official NUS-WIDE files: 81 concepts, 1000 tags of which 75 are
    concepts (925 seen tags + 81 unseen concepts = 1006 labels)."""
    if osp.isfile(osp.join(root, 'NUS_WID_Tags', 'Train_Tags1k.dat')):
        return root
    rng = np.random.RandomState(seed)
    for d in ('ImageList', 'Groundtruth/TrainTestLabels', 'NUS_WID_Tags'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    concepts = [f'concept{i}' for i in range(81)]
    tags = concepts[:75] + [f'tag{i}' for i in range(925)]
    order = rng.permutation(1000)
    tags = [tags[i] for i in order]
    with open(osp.join(root, 'Concepts81.txt'), 'w') as f:
        f.write('\n'.join(concepts) + '\n')
    with open(osp.join(root, 'NUS_WID_Tags', 'TagList1k.txt'), 'w') as f:
        f.write('\n'.join(tags) + '\n')
    with open(osp.join(root, 'ImageList', 'TrainImagelist.txt'), 'w') as f:
        f.write('\n'.join(f'actor\\{i}.jpg' for i in range(n)) + '\n')
    con = rng.rand(n, 81) < 2.4 / 81
    for c, name in enumerate(concepts):
        with open(osp.join(root, 'Groundtruth/TrainTestLabels',
                           f'Labels_{name}_Train.txt'), 'w') as f:
            f.write('\n'.join(np.where(con[:, c], '1', '0')) + '\n')
    tag = (rng.rand(n, 1000) < 8.0 / 1000).astype(np.uint8)
    # one row: '0\t1\t0 ...\n' (the release uses tabs)
    body = np.full((n, 2000), ord('\t'), np.uint8)
    body[:, 0::2] = tag + ord('0')
    body[:, -1] = ord('\n')
    with open(osp.join(root, 'NUS_WID_Tags', 'Train_Tags1k.dat'), 'wb') as f:
        f.write(body.tobytes())
    return root


def _partial(dataset_cfg: dict):
    from mmpretrain.registry import DATASETS

    import mlrpl_mm  # noqa: F401
    ds = DATASETS.build(dict(type='PartialLabelDataset', mode='proportion',
                             known_ratio=KNOWN, seed=0, dataset=dataset_cfg,
                             pipeline=[]))
    ds.full_init()
    return ds


def dataset_cfg(kind: str, root: str) -> dict:
    if kind == 'coco':
        return dict(type='CocoMultiLabel', data_root=root, split='train',
                    pipeline=[])
    if kind == 'vg':
        return dict(type='VGMultiLabel', data_root=root, split='train',
                    pipeline=[])
    return dict(type='NUSWideMultiLabel', data_root=root, split='train',
                label_set='all', pipeline=[])


# ------------------------------------------------------------ parts
def part_dataset(kind: str, n: int, work: str) -> list:
    writer = dict(coco=write_coco, vg=write_vg, nus=write_nus)[kind]
    root = writer(osp.join(work, f'{kind}_{n}'), n)
    # one build of a 10-image set first: lazy imports / registries warm
    _partial(dataset_cfg(kind, writer(osp.join(work, f'{kind}_warm'), 10)))
    ds, t, m = measure(_partial, dataset_cfg(kind, root))
    C = ds.partial_labels.shape[1]
    return [dict(name=f'dataset build {kind.upper()} (C={C})', n=n,
                 time_s=t, peak_mib=m,
                 note=f'{len(ds)} images, '
                 f'{float((ds.partial_labels != 0).mean()):.2f} known')]


def part_label_graph(n: int, work: str) -> list:
    from mlrpl_mm.engine.hooks import LabelGraphHook
    out = []
    for kind, writer in (('vg', write_vg), ('nus', write_nus)):
        ds = _partial(dataset_cfg(kind, writer(osp.join(work, f'{kind}_{n}'),
                                               n)))
        adj, t, m = measure(LabelGraphHook().compute, ds)
        out.append(dict(name=f'LabelGraphHook.compute (C={adj.shape[0]})',
                        n=n, time_s=t, peak_mib=m))
    return out


def _gather_worker(rank, world, port, n, D, mode, max_rows, q):
    import torch
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    try:
        from mlrpl_mm.engine.hooks.cst_prototype_hook import \
            gather_positive_features_by_class
        from mlrpl_mm.utils import gather_by_index
        C, per = 200, 9  # VG-200 at 90% known: ~9 known positives per image
        g = torch.Generator().manual_seed(rank)
        shard = [i for i in range(n) if i % world == rank]
        key = (torch.tensor(shard).repeat_interleave(per) * C +
               torch.randint(0, C, (len(shard) * per, ), generator=g))
        feat = torch.randn(key.numel(), D, generator=g)
        local_mib = feat.numel() * 4 / 2**20
        dist.barrier()
        reset_peak()
        base = rss_kb()
        t0 = time.perf_counter()
        rows = 0
        if mode == 'one_piece':
            k, f = gather_by_index(key, feat)
            rows = f.shape[0]
            del k, f
        else:
            for c, f in gather_positive_features_by_class(key, feat, C,
                                                          max_rows):
                rows += f.shape[0]
        dist.barrier()
        t = time.perf_counter() - t0
        q.put(dict(rank=rank, time_s=t, peak_mib=(peak_kb() - base) / 1024,
                   rows=rows, local_mib=local_mib))
    finally:
        dist.destroy_process_group()


def part_gather(n: int, work: str, D: int = None,
                max_rows: int = 65536) -> list:
    D = D or DIMS
    import socket

    import torch.multiprocessing as mp
    out = []
    for mode in ('one_piece', 'class_chunks'):
        if mode == 'one_piece' and n > GATHER_OLD_MAX_N:
            est = 9 * n * D * 4 / 2**20
            out.append(dict(name='CST gather, one piece (before), per rank',
                            n=n, skipped=f'not run: ~4 x {est:.0f} MiB per '
                            'rank'))
            continue
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        ctx = mp.get_context('spawn')
        q = ctx.Queue()
        procs = [ctx.Process(target=_gather_worker,
                             args=(r, 2, port, n, D, mode, max_rows, q))
                 for r in range(2)]
        for p in procs:
            p.start()
        res = [q.get(timeout=1800) for _ in procs]
        for p in procs:
            p.join()
        label = 'one piece (before)' if mode == 'one_piece' else \
            f'class chunks of {max_rows} rows (now)'
        out.append(dict(
            name=f'CST gather, {label}, per rank', n=n,
            time_s=max(r['time_s'] for r in res),
            peak_mib=max(r['peak_mib'] for r in res),
            note=f"{res[0]['rows']} rows x {D} gathered "
            f"({res[0]['rows'] * D * 4 / 2**20:.0f} MiB), own shard "
            f"{res[0]['local_mib']:.0f} MiB (not counted)"))
    return out


def part_kmeans(n: int, work: str, D: int = None) -> list:
    D = D or DIMS
    import torch

    from mlrpl_mm.models.layers import CrossSemanticTransfer
    out = []
    for C, per in ((80, 2.9 * 0.9), (200, 9.0)):
        m = int(round(n * per))
        g = torch.Generator().manual_seed(0)
        w = 1.0 / torch.arange(1, C + 1).double() ** 0.8
        classes = torch.multinomial(w, m, replacement=True, generator=g)
        feats = torch.randn(m, D, generator=g)
        cst = CrossSemanticTransfer(C, D, num_prototypes=10)
        _, t, mem = measure(cst.update_prototypes, classes, feats, 5)
        out.append(dict(name=f'k-means, {C} classes (K=10, D={D})', n=n,
                        time_s=t, peak_mib=mem, note=f'{m} rows'))
    return out


def part_map(n: int, work: str) -> list:
    from mlrpl_mm.evaluation.metrics import (MultiLabelMAP,
                                             ZeroShotMultiLabelMetric)
    rng = np.random.RandomState(0)
    out = []
    # COCO val: C = 80
    scores = rng.rand(n, 80).astype(np.float32)
    targets = np.where(rng.rand(n, 80) < 2.9 / 80, 1, -1).astype(np.int8)
    metric = MultiLabelMAP()
    metric.dataset_meta = dict(classes=[str(i) for i in range(80)])
    results = [dict(score=scores[i], target=targets[i], sample_idx=i,
                    img_path=f'{i}.jpg') for i in range(n)]
    _, t, m = measure(metric.compute_metrics, results)
    out.append(dict(name='MultiLabelMAP (C=80)', n=n, time_s=t, peak_mib=m))
    del results
    # NUS-WIDE ZSL / GZSL: 1006 test classes, the last 81 unseen
    C, U = 1006, 81
    scores = rng.rand(n, C).astype(np.float32)
    targets = np.where(rng.rand(n, C) < 8.0 / C, 1, -1).astype(np.int8)
    zsl = list(range(C - U, C))
    metric = ZeroShotMultiLabelMetric(mode='both', zsl_indices=zsl)
    results = [dict(score=scores[i], target=targets[i], sample_idx=i,
                    zsl_score=scores[i, C - U:]) for i in range(n)]
    _, t, m = measure(metric.compute_metrics, results)
    out.append(dict(name='ZeroShotMultiLabelMetric GZSL 1006 + ZSL 81', n=n,
                    time_s=t, peak_mib=m))
    return out


def part_buffers(n: int, work: str, C: int = 1006) -> list:
    import torch

    from mlrpl_mm.models.losses import EMAPLLoss, ROLELoss
    out = []
    g = torch.Generator().manual_seed(0)
    for name, loss in (('EM+APL', EMAPLLoss()),
                       ('ROLE', ROLELoss(expected_num_pos=2.9))):
        if name == 'EM+APL':
            loss.init_state(n, C)
        else:
            loss._grow(n, C, torch.device('cpu'))
            loss.seen.fill_(True)
        path = osp.join(work, f'buf_{name}_{n}.pth')

        def save():
            torch.save(dict(state_dict=loss.state_dict()), path)

        def load():
            sd = torch.load(path, weights_only=True)['state_dict']
            fresh = EMAPLLoss() if name == 'EM+APL' else \
                ROLELoss(expected_num_pos=2.9)
            fresh.load_state_dict(sd)
            return fresh
        _, ts, ms = measure(save)
        size = osp.getsize(path) / 2**20
        _, tl, ml = measure(load)
        os.remove(path)
        out.append(dict(name=f'{name} state (C={C}): checkpoint save', n=n,
                        time_s=ts, peak_mib=ms, size_mib=size))
        out.append(dict(name=f'{name} state (C={C}): checkpoint load', n=n,
                        time_s=tl, peak_mib=ml, size_mib=size))
        if name == 'EM+APL':
            probs = torch.rand(n, C, generator=g)
            target = torch.where(torch.rand(n, C, generator=g) < 0.01, 1, 0)
            _, t, m = measure(loss.update_pseudo_labels, probs, target, 5, 10)
            out.append(dict(name='EM+APL label update (once per epoch)',
                            n=n, time_s=t, peak_mib=m))
        else:
            idx = torch.randperm(n, generator=g)[:32]
            grad = torch.randn(32, C, generator=g)
            _, t, m = measure(loss._adam_step, idx, grad)
            out.append(dict(name='ROLE estimator step (every iteration, '
                            'B=32)', n=n, time_s=t, peak_mib=m))
    return out


def run_part(part: str, n: int, work: str) -> list:
    os.makedirs(work, exist_ok=True)
    if part.startswith('dataset_'):
        return part_dataset(part.split('_')[1], n, work)
    return globals()[f'part_{part}'](n, work)


# ------------------------------------------------------------ analysis
def exponents(rows: list) -> list:
    """Per measured quantity: slope of log(value) on log(N)."""
    by = {}
    for r in rows:
        if 'time_s' in r:
            by.setdefault(r['name'], []).append(r)
    out = []
    for name, rs in by.items():
        rs = sorted(rs, key=lambda r: r['n'])
        ent = dict(name=name, sizes=[r['n'] for r in rs])
        for key in ('time_s', 'peak_mib', 'size_mib'):
            pts = [(r['n'], r[key]) for r in rs if r.get(key, 0) > 0]
            if len(pts) < 2:
                continue
            x = np.log([p[0] for p in pts])
            y = np.log([p[1] for p in pts])
            ent[f'{key}_exp'] = float(np.polyfit(x, y, 1)[0])
            ent[f'{key}_exp_last'] = float((y[-1] - y[-2]) / (x[-1] - x[-2]))
        out.append(ent)
    return out


def tables(rows: list, exps: list) -> str:
    lines = ['| quantity | N | time (s) | peak extra (MiB) | note |',
             '|---|---|---|---|---|']
    for r in rows:
        if 'skipped' in r:
            lines.append(f"| {r['name']} | {r['n']} | - | - | {r['skipped']} |")
            continue
        if 'error' in r:
            lines.append(f"| {r.get('name', r.get('part'))} | {r['n']} | - | "
                         f"- | {r['error']} |")
            continue
        note = r.get('note', '')
        if 'size_mib' in r:
            note = f"file {r['size_mib']:.0f} MiB" + (f', {note}' if note
                                                      else '')
        lines.append(f"| {r['name']} | {r['n']} | {r['time_s']:.3f} | "
                     f"{r['peak_mib']:.0f} | {note} |")
    lines += ['', '| quantity | sizes | time exponent (fit / last) | '
              'memory exponent (fit / last) |', '|---|---|---|---|']

    def f(e, k):
        if f'{k}_exp' not in e:
            return '-'
        return f"{e[f'{k}_exp']:.2f} / {e[f'{k}_exp_last']:.2f}"
    for e in exps:
        sizes = ', '.join(f'{s:,}' for s in e['sizes'])
        mem = f(e, 'size_mib') if 'size_mib_exp' in e else f(e, 'peak_mib')
        lines.append(f"| {e['name']} | {sizes} | {f(e, 'time_s')} | {mem} |")
    return '\n'.join(lines)


def _sub(part: str, n: int, work: str) -> list:
    cmd = [sys.executable, osp.abspath(__file__), '--worker', part, str(n),
           '--work', work, '--dims', str(DIMS)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith('RESULT '):
            return json.loads(line[7:])
    err = 'OOM-killed' if proc.returncode in (-9, 137) else \
        f'failed ({proc.returncode}): ' + ' | '.join(
            proc.stderr.strip().splitlines()[-2:])
    return [dict(part=part, n=n, error=err)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', nargs='+', type=int,
                   default=[1000, 10000, 100000])
    p.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS)
    p.add_argument('--skip', nargs='*', default=[],
                   help='part:N pairs not to run (e.g. kmeans:100000)')
    p.add_argument('--work', default=None, help='where the generated files '
                   'go (default: a temporary directory)')
    p.add_argument('--in-process', action='store_true',
                   help='no subprocess per case (peaks then overlap)')
    p.add_argument('--dims', type=int, default=1024,
                   help='D of the gather and k-means parts')
    p.add_argument('--json', default=None)
    p.add_argument('--md', default=None)
    p.add_argument('--worker', nargs=2, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    global DIMS
    DIMS = args.dims
    if args.worker:
        part, n = args.worker[0], int(args.worker[1])
        print('RESULT ' + json.dumps(run_part(part, n, args.work)),
              flush=True)
        return
    tmp = None
    if args.work is None:
        tmp = tempfile.TemporaryDirectory(prefix='mlrpl_scale_')
        args.work = tmp.name
    rows = []
    try:
        for part in args.parts:
            for n in args.sizes:
                if f'{part}:{n}' in args.skip:
                    rows.append(dict(name=part, n=n, skipped='--skip'))
                    continue
                load = os.getloadavg()[0]
                res = run_part(part, n, args.work) if args.in_process else \
                    _sub(part, n, args.work)
                for r in res:
                    r['load'] = load
                    print(json.dumps(r), flush=True)
                rows += res
    finally:
        if tmp is not None:
            tmp.cleanup()
    exps = exponents(rows)
    text = tables(rows, exps)
    print()
    print(text)
    if args.md:
        with open(args.md, 'w') as f:
            f.write(text + '\n')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, exponents=exps), f, indent=1)
    return rows, exps


if __name__ == '__main__':
    main()
