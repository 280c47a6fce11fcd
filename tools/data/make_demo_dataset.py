#!/usr/bin/env python
"""Write the embedded demo dataset: digit mosaics in the MS-COCO 2014 format.

Images are built from scikit-learn's real handwritten digits
(``sklearn.datasets.load_digits``: 1,797 scanned 8x8 digits that ship with
the package, no download). Each image is a 64x64 RGB mosaic of 1-4 digits on
a 2x2 grid of 32x32 cells; its labels are the digits present (10 classes,
'0'..'9'). Labels co-occur on purpose: each digit has a partner
(0-6, 1-7, 2-5, 3-8, 4-9) that is added with probability ``--partner-prob``,
so label correlations carry signal for the graph-based methods. The digit
scans are split by sample (train images use one part of the scans, val images
the other), so validation measures generalisation to unseen handwriting.
A few images have no digit (all-negative rows, as in COCO).

Output (the layout the real COCO loader reads)::

    OUT/train2014/COCO_train2014_000000000001.jpg ...
    OUT/val2014/COCO_val2014_000000100001.jpg ...
    OUT/annotations/instances_train2014.json
    OUT/annotations/instances_val2014.json

Deterministic from ``--seed``. Example::

    python tools/data/make_demo_dataset.py --out data/demo
"""
import argparse
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List

import numpy as np
from PIL import Image

CLASSES = [str(d) for d in range(10)]
PARTNER = {0: 6, 6: 0, 1: 7, 7: 1, 2: 5, 5: 2, 3: 8, 8: 3, 4: 9, 9: 4}
CELL = 32
GRID = 2


def _digit_pools(val_fraction: float, rng: np.random.RandomState):
    from sklearn.datasets import load_digits
    digits = load_digits()
    pools = {'train': {}, 'val': {}}
    for d in range(10):
        idx = np.flatnonzero(digits.target == d)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * val_fraction))
        pools['val'][d] = digits.images[idx[:n_val]]
        pools['train'][d] = digits.images[idx[n_val:]]
    return pools


def _sample_labels(rng: np.random.RandomState, partner_prob: float) -> List[int]:
    n_seed = rng.choice([1, 2], p=[0.6, 0.4])
    labels = set(int(x) for x in rng.choice(10, size=n_seed, replace=False))
    for d in list(labels):
        if rng.rand() < partner_prob:
            labels.add(PARTNER[d])
    return sorted(labels)[:GRID * GRID]


def _render(labels: List[int], pool: Dict[int, np.ndarray],
            rng: np.random.RandomState):
    size = CELL * GRID
    bg = rng.randint(0, 60, size=3)
    img = np.clip(bg[None, None, :] + rng.normal(0, 12, (size, size, 3)), 0, 255)
    cells = rng.choice(GRID * GRID, size=len(labels), replace=False)
    boxes = []
    for d, cell in zip(labels, cells):
        scan = pool[d][rng.randint(len(pool[d]))] / 16.0  # (8, 8) in [0, 1]
        patch = np.kron(scan, np.ones((CELL // 8, CELL // 8)))  # (CELL, CELL)
        colour = rng.randint(140, 256, size=3)
        r, c = divmod(int(cell), GRID)
        y, x = r * CELL, c * CELL
        region = img[y:y + CELL, x:x + CELL]
        img[y:y + CELL, x:x + CELL] = region * (1 - patch[..., None]) + \
            colour[None, None, :] * patch[..., None]
        boxes.append((d, [float(x), float(y), float(CELL), float(CELL)]))
    return Image.fromarray(img.astype(np.uint8)), boxes


def _write_split(out: str, split: str, num: int, num_empty: int, id_offset: int,
                 pool, rng: np.random.RandomState, partner_prob: float) -> dict:
    img_dir = osp.join(out, f'{split}2014')
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    empty = set(rng.choice(num, size=num_empty, replace=False).tolist())
    for i in range(num):
        img_id = id_offset + i + 1
        labels = [] if i in empty else _sample_labels(rng, partner_prob)
        img, boxes = _render(labels, pool, rng)
        name = f'COCO_{split}2014_{img_id:012d}.jpg'
        img.save(osp.join(img_dir, name), quality=95)
        images.append(dict(id=img_id, file_name=name, width=img.width,
                           height=img.height))
        for d, box in boxes:
            anns.append(dict(id=len(anns) + 1 + id_offset * 10, image_id=img_id,
                             category_id=d + 1, bbox=box, area=box[2] * box[3],
                             iscrowd=0, segmentation=[]))
    coco = dict(
        info=dict(description='mlrpl-mm demo: sklearn digit mosaics',
                  version='1.0'),
        licenses=[], images=images, annotations=anns,
        categories=[dict(id=d + 1, name=CLASSES[d], supercategory='digit')
                    for d in range(10)])
    ann_dir = osp.join(out, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    path = osp.join(ann_dir, f'instances_{split}2014.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return dict(images=len(images), annotations=len(anns), path=path)


def make_demo_dataset(out: str, num_train: int = 1500, num_val: int = 500,
                      seed: int = 0, partner_prob: float = 0.7,
                      force: bool = False) -> dict:
    """Write the demo dataset to ``out`` (skipped if already complete).

    Returns:
        dict with per-split counts and the sha256 of each annotation file.
    """
    params = dict(num_train=num_train, num_val=num_val, seed=seed,
                  partner_prob=partner_prob, version=2)
    stamp = osp.join(out, '.demo_params.json')
    if not force and osp.isfile(stamp):
        with open(stamp) as f:
            done = json.load(f)
        if done.get('params') == params:
            return done
    rng = np.random.RandomState(seed)
    pools = _digit_pools(0.3, rng)
    stats = dict(params=params)
    for split, num, offset in (('train', num_train, 0), ('val', num_val, 100000)):
        info = _write_split(out, split, num, max(1, num // 100), offset,
                            pools[split], rng, partner_prob)
        with open(info['path'], 'rb') as f:
            info['sha256'] = hashlib.sha256(f.read()).hexdigest()
        stats[split] = info
        print(f'[demo data] {split}: {info["images"]} images, '
              f'{info["annotations"]} digits -> {info["path"]}', flush=True)
    with open(stamp, 'w') as f:
        json.dump(stats, f, indent=2)
    return stats


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='The images are 64x64 mosaics of 1-4 scanned digits; 10 '
        "classes '0'..'9'. An existing complete dataset in --out is kept "
        '(use --force to rewrite it).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out', default='data/demo',
                        help='output folder (COCO 2014 layout: train2014/, '
                        'val2014/, annotations/)')
    parser.add_argument('--num-train', type=int, default=1500,
                        help='number of training images')
    parser.add_argument('--num-val', type=int, default=500,
                        help='number of validation images')
    parser.add_argument('--seed', type=int, default=0,
                        help='random seed: the same seed writes the same '
                        'dataset')
    parser.add_argument('--partner-prob', type=float, default=0.7,
                        help="probability that a digit's partner (0-6, 1-7, "
                        '2-5, 3-8, 4-9) is added to the image: the label '
                        'co-occurrence the graph-based methods exploit')
    parser.add_argument('--force', action='store_true',
                        help='rewrite --out even if it already holds a '
                        'complete dataset')
    return parser


def main():
    parser = build_parser()
    args = parser.parse_args()
    make_demo_dataset(args.out, args.num_train, args.num_val, args.seed,
                      args.partner_prob, args.force)


if __name__ == '__main__':
    main()
