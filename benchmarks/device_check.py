#!/usr/bin/env python
"""Helpers of benchmarks/device_check.sh: generated data, the short training
configs, and the results table.

    python benchmarks/device_check.py data WORK N            # COCO-format JPEGs
    python benchmarks/device_check.py config WORK METHOD BATCH WORKERS [--tiny]
    python benchmarks/device_check.py report WORK OUT.md

``data``: N generated 640 x 480 JPEGs (benchmarks/bench_data.py's
generator) with an MS-COCO 2014 ``instances_train2014.json`` (80
categories, ~2.9 per image), i.e. the layout ``CocoMultiLabel`` reads;
the protocol pipeline turns them into 448 px (224 px for SigRL) inputs.

``config``: ``WORK/METHOD_check.py``, inheriting ``configs/METHOD_coco_p30.py``
with: the data above (the first 50 x BATCH images: one epoch = 50
iterations), no weight download (random init), learnable class embeddings,
every phase from epoch 0 (HST pseudo labels and the CST prototype pass,
DSRB blending and the PPRB prototype pass, both over the 50 x BATCH images
before the epoch), no validation, no checkpoint. ``--tiny``: ResNet-18 with
8 base channels / the 64 px test ViT and small heads (a CPU smoke run).

``report``: reads the JSON / logs that device_check.sh wrote under WORK and
writes the markdown table.
"""
import glob
import json
import os
import os.path as osp
import statistics
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
METHODS = ('hst', 'dsrb', 'sigrl')


def make_data(work: str, n: int) -> str:
    from bench_data import write_jpegs
    from bench_scale import write_coco
    root = osp.join(work, 'coco')
    write_coco(root, n)
    folder = osp.join(root, 'train2014')
    if len(glob.glob(osp.join(folder, 'COCO_*.jpg'))) < n:
        # 64 distinct JPEGs (generating and encoding is the slow part),
        # hard-linked (copied where links fail) under the n COCO names
        paths = write_jpegs(osp.join(work, 'unique_jpg'), min(n, 64))
        for i in range(n):
            dst = osp.join(folder, f'COCO_train2014_{i + 1:012d}.jpg')
            if osp.exists(dst):
                continue
            src = paths[i % len(paths)]
            os.makedirs(folder, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                import shutil
                shutil.copyfile(src, dst)
    return root


def write_config(work: str, method: str, batch: int, workers: int,
                 tiny: bool = False) -> str:
    data_root = osp.join(work, 'coco')
    base = osp.join(ROOT, 'configs', f'{method}_coco_p30.py')
    emb = "dict(_delete_=True, type='LearnableClassEmbedding', " \
        f"embed_dims={16 if tiny else 300})"
    lines = [f'_base_ = [{base!r}]']
    dims = "feat_channels=32, inter_channels=16, out_channels=32, "
    trunk = f"trunk=dict(class_embedding={emb}" + (
        f", {dims[:-2]})" if tiny else ')')
    if method == 'hst':
        head = (f"head=dict({trunk}, pseudo_label_epoch=0"
                + (', in_channels=64' if tiny else '') + ')')
        hooks = ("[dict(type='LabelGraphHook'), dict(type='CSTPrototypeHook',"
                 " start_epoch=0, interval=5, pipeline='train'), "
                 "dict(type='PseudoLabelPrecisionHook')]")
    elif method == 'dsrb':
        head = (f"head=dict({trunk}, blend_start_epoch=0"
                + (', in_channels=64' if tiny else '') + ')')
        hooks = ("[dict(type='LabelGraphHook'), dict(type='PPRBPrototypeHook',"
                 " start_epoch=0, interval=5, max_per_quadrant=100, "
                 "pipeline='train'), dict(type='BlendWeightClampHook')]")
    else:
        head = ("head=dict(text_encoder=dict(pretrained=None, "
                "fallback_to_random=False)"
                + (", embed_dims=64, gmc=dict(in_channels=64, "
                   "hidden_channels=16), svfr=dict(embed_dims=64), "
                   "text_encoder=dict(model_name='mlrpl-tiny-vit', "
                   "pretrained=None, fallback_to_random=False)" if tiny
                   else '') + ')')
        hooks = None
    if method == 'sigrl':
        bb = "backbone=dict(pretrained=None, fallback_to_random=False" + (
            ", model_name='mlrpl-tiny-vit')" if tiny else ')')
    else:
        bb = "backbone=dict(init_cfg=None" + (
            ', depth=18, base_channels=8, stem_channels=8)' if tiny else ')')
    if tiny and method == 'sigrl':
        head = head.replace("text_encoder=dict(pretrained=None, "
                            "fallback_to_random=False), ", '', 1)
    lines.append(f'model = dict({bb}, {head})')
    if hooks:
        lines.append(f'custom_hooks = {hooks}')
    ds = (f"dict(data_root={data_root!r}, indices={50 * batch}")
    if tiny and method == 'sigrl':
        ds += (", pipeline=[dict(type='LoadImageFromFile'), "
               "dict(type='Resize', scale=(64, 64), keep_ratio=False, "
               "interpolation='bicubic', backend='pillow'), "
               "dict(type='RandomFlip', prob=0.5, direction='horizontal'), "
               "dict(type='PackInputs', algorithm_keys=['partial_label', "
               "'full_label'])]")
    ds += ')'
    lines += [
        f'train_dataloader = dict(batch_size={batch}, num_workers={workers}, '
        f'persistent_workers={workers > 0}, dataset=dict(dataset={ds}))',
        'train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=100)',
        "default_hooks = dict(logger=dict(interval=5), "
        "checkpoint=dict(interval=100, save_last=False, save_best=None))",
    ]
    path = osp.join(work, f'{method}_check.py')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def _train_stats(work: str, method: str) -> dict:
    """img/s (batch / median iteration time after the first 10), data time,
    peak memory (mmengine's 'memory': max_memory_allocated, MB) from the
    run's scalars.json; wall time from device_check.sh."""
    out = dict(method=method)
    files = sorted(glob.glob(osp.join(work, f'train_{method}', '*', 'vis_data',
                                      'scalars.json')))
    wall = osp.join(work, f'train_{method}.wall')
    if osp.isfile(wall):
        with open(wall) as f:
            parts = f.read().split()
        out['wall_s'] = float(parts[0])
        out['rc'] = int(parts[1]) if len(parts) > 1 else None
    if not files:
        out['error'] = 'no scalars.json (run failed: see ' \
            f'train_{method}.log)'
        return out
    rows = []
    with open(files[-1]) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    rows = [r for r in rows if 'time' in r]
    if not rows:
        out['error'] = 'no iteration logged'
        return out
    late = [r for r in rows if r.get('iter', 0) > 10] or rows
    cfg = osp.join(work, f'{method}_check.py')
    batch = None
    with open(cfg) as f:
        for line in f:
            if line.startswith('train_dataloader = dict(batch_size='):
                batch = int(line.split('batch_size=')[1].split(',')[0])
    t = statistics.median(r['time'] for r in late)
    out.update(iters=max(r.get('iter', 0) for r in rows), batch=batch,
               iter_s=t, img_s=batch / t if batch else None,
               data_time_s=statistics.median(r.get('data_time', 0)
                                             for r in late),
               memory_mb=max((r.get('memory', 0) for r in rows), default=0))
    return out


def report(work: str, out_md: str) -> None:
    import platform

    import torch
    lines = ['# Device check results', '']
    env = {}
    envf = osp.join(work, 'env.json')
    if osp.isfile(envf):
        with open(envf) as f:
            env = json.load(f)
    lines += [f"- device: {env.get('device', '?')}",
              f"- torch {torch.__version__}, CUDA "
              f"{torch.version.cuda}, cuDNN "
              f"{torch.backends.cudnn.version() if torch.cuda.is_available() else '-'}",
              f"- host: {platform.node()}, {os.cpu_count()} CPUs, load "
              f"average {env.get('load', '?')}",
              f"- command: `{env.get('command', 'benchmarks/device_check.sh')}`"
              f" ({env.get('mode', '')})", '']
    step = osp.join(work, 'step.json')
    if osp.isfile(step):
        sys.path.insert(0, osp.join(ROOT, 'benchmarks'))
        from bench_step import profile_table, ratios, table
        with open(step) as f:
            res = json.load(f)['results']
        ratios(res)
        lines += ['## One training step (bench_step.py, --amp)', '',
                  table(res), '']
        prof = osp.join(work, 'step_profile.json')
        pres = res
        if osp.isfile(prof):
            with open(prof) as f:
                pres = json.load(f)['results']
        if any('profile' in r for r in pres):
            lines += ['### Where the time goes (one profiled step)', '']
            for r in pres:
                if 'profile' in r:
                    lines += [profile_table(r), '']
    data = osp.join(work, 'data.json')
    if osp.isfile(data):
        with open(data) as f:
            d = json.load(f)
        lines += ['## Data loading (bench_data.py)', '',
                  f"{d['config']}: {d['img_s']:.1f} img/s per worker "
                  f"({d['ms_per_img']:.1f} ms per image, JPEG "
                  f"{d['jpeg_kb']:.0f} KB).", '']
    lines += ['## 50-iteration tools/train.py --amp (generated 640x480 '
              'JPEGs, every phase from epoch 0)', '',
              '| method | batch | iterations | s / iter | img/s | data time '
              '(s) | peak memory (MB) | wall incl. start + prototype pass '
              '(s) |', '|---|---|---|---|---|---|---|---|']
    for m in METHODS:
        if not glob.glob(osp.join(work, f'train_{m}*')):
            continue
        s = _train_stats(work, m)
        if 'error' in s:
            lines.append(f"| {m} | | | {s['error']} | | | | "
                         f"{s.get('wall_s', '-')} |")
            continue
        lines.append(
            f"| {m} | {s['batch']} | {s['iters']} | {s['iter_s']:.3f} | "
            f"{s['img_s']:.1f} | {s['data_time_s']:.3f} | "
            f"{s['memory_mb'] or '- (CPU)'} | {s.get('wall_s', 0):.0f} |")
    with open(out_md, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0]
    if cmd == 'data':
        print(make_data(argv[1], int(argv[2])))
    elif cmd == 'config':
        print(write_config(argv[1], argv[2], int(argv[3]), int(argv[4]),
                           '--tiny' in argv))
    elif cmd == 'report':
        report(argv[1], argv[2])
    else:
        raise SystemExit(f'unknown command {cmd!r}: data | config | report')


if __name__ == '__main__':
    main()
