#!/usr/bin/env python
"""Images/s of the protocol's training pipeline per data-loader worker.

The pipeline is the one of the configs (``train_pipeline`` of
``configs/_base_/datasets/coco_partial.py``: decode, bicubic resize to
512 x 512, random square crop with a side in {512, 448, 384, 320, 256},
resize to 448, horizontal flip, ``PackInputs``; ``--config`` takes the one of
another config, e.g. ``configs/sigrl_coco_p30.py`` for the 224 px SigRL
pipeline), built with mmpretrain's ``TRANSFORMS`` and run in one process
(= one worker, no other process), on generated JPEGs of COCO-like size and
weight (640 x 480, smooth content plus noise, quality 90: ~100-200 KB, as
COCO's 160 KB average).

The GPU must be fed ``batch / step time`` images/s; the workers per GPU it
takes are that rate divided by the per-worker rate (``--gpu-img-s``, e.g.
the img/s of ``bench_step.py --device cuda --amp``; several values give
one line each).

Examples::

    python benchmarks/bench_data.py --images 64
    python benchmarks/bench_data.py --gpu-img-s 150 300 --json out.json
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import tempfile
import time

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def write_jpegs(folder: str, n: int, width: int = 640, height: int = 480,
                quality: int = 90, seed: int = 0) -> list:
    """n JPEGs of smooth random content with noise; returns the paths."""
    from PIL import Image
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    paths = []
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for i in range(n):
        img = np.zeros((height, width, 3), np.float32)
        for c in range(3):
            for _ in range(3):
                fx, fy, ph = rng.rand(3) * [0.05, 0.05, 6.3]
                img[..., c] += np.sin(xx * fx + yy * fy + ph)
        img = (img - img.min()) / (np.ptp(img) + 1e-6) * 200 + \
            rng.normal(0, 12, img.shape)
        path = osp.join(folder, f'{i:06d}.jpg')
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            path, quality=quality)
        paths.append(path)
    return paths


def train_pipeline(config: str):
    from mmengine.config import Config
    from mmengine.dataset import Compose
    from mmpretrain.registry import TRANSFORMS

    import mlrpl_mm  # noqa: F401
    cfg = Config.fromfile(config)
    ds = cfg.train_dataloader.dataset
    while ds.get('pipeline') is None and ds.get('dataset') is not None:
        ds = ds.dataset
    return Compose([TRANSFORMS.build(t) for t in ds.pipeline]), ds.pipeline


def run(images: int = 64, repeat: int = 2, config: str = None,
        work: str = None, C: int = 80) -> dict:
    config = config or osp.join(ROOT, 'configs', 'pbce_coco_p30.py')
    tmp = None
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix='mlrpl_data_')
        work = tmp.name
    try:
        paths = write_jpegs(osp.join(work, 'jpg'), images)
        kb = float(np.mean([osp.getsize(p) for p in paths])) / 1024
        pipe, spec = train_pipeline(config)
        label = np.zeros(C, np.int8)
        out_shape = None
        times = []
        for r in range(repeat + 1):  # the first pass warms the file cache
            t0 = time.perf_counter()
            for i, p in enumerate(paths):
                out = pipe(dict(img_path=p, sample_idx=i,
                                partial_label=label.copy(),
                                full_label=label.copy()))
                out_shape = tuple(out['inputs'].shape)
            if r:
                times.append(time.perf_counter() - t0)
        t = min(times)
        return dict(config=osp.relpath(config, ROOT), images=images,
                    jpeg_kb=kb, img_s=images / t, ms_per_img=1e3 * t / images,
                    out_shape=list(out_shape),
                    transforms=[d['type'] for d in spec])
    finally:
        if tmp is not None:
            tmp.cleanup()


def workers_needed(gpu_img_s: float, worker_img_s: float) -> int:
    """Workers per GPU to feed ``gpu_img_s`` images/s."""
    return int(math.ceil(gpu_img_s / worker_img_s))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=64)
    p.add_argument('--repeat', type=int, default=2)
    p.add_argument('--config', default=None,
                   help='config whose train pipeline is run (default '
                   'configs/pbce_coco_p30.py: the protocol)')
    p.add_argument('--gpu-img-s', nargs='*', type=float, default=[],
                   help='GPU step rates (img/s) to feed')
    p.add_argument('--json', default=None)
    args = p.parse_args(argv)
    res = run(args.images, args.repeat, args.config)
    res['load'] = os.getloadavg()
    res['workers'] = {str(g): workers_needed(g, res['img_s'])
                      for g in args.gpu_img_s}
    print(f"{res['config']}: {res['img_s']:.1f} img/s per worker "
          f"({res['ms_per_img']:.1f} ms / image, JPEG {res['jpeg_kb']:.0f} "
          f"KB, output {res['out_shape']})")
    for g, w in res['workers'].items():
        print(f'  GPU at {g} img/s needs {w} workers')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == '__main__':
    main()
