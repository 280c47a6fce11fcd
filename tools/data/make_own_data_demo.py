#!/usr/bin/env python
"""Write a "your own data" example from the demo dataset: a folder of images
and partial labels in a CSV, the starting point of docs/own_data.md.

From the demo dataset (``tools/data/make_demo_dataset.py``, COCO layout) it
writes::

    OUT/images/train/<name>.jpg, OUT/images/test/<name>.jpg   (copies)
    OUT/classes.txt          the 10 class names '0'..'9', one per line
    OUT/known_labels.csv     img_path,class,label: the known training entries
                             (each entry kept with probability --known-ratio,
                             RandomState(--seed); the others are absent)
    OUT/test_labels.csv      img_path,pos,neg: every test label
    OUT/oracle_labels.csv    img_path,pos,neg: every training label, to play
                             the annotator in the next annotation round
                             (tools/suggest_labels.py --oracle)

Example::

    python tools/data/make_demo_dataset.py --out data/demo
    python tools/data/make_own_data_demo.py --demo-root data/demo \\
        --out data/own_demo
"""
import argparse
import csv
import json
import os
import os.path as osp
import shutil
import sys

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--demo-root', default='data/demo')
    p.add_argument('--out', default='data/own_demo')
    p.add_argument('--known-ratio', type=float, default=0.3)
    p.add_argument('--seed', type=int, default=0)
    return p.parse_args(argv)


def _read(demo_root, split):
    ann = osp.join(demo_root, 'annotations', f'instances_{split}2014.json')
    if not osp.isfile(ann):
        sys.exit(f'make_own_data_demo.py: {ann} not found; build the demo '
                 'dataset first: python tools/data/make_demo_dataset.py '
                 f'--out {demo_root}')
    with open(ann) as f:
        data = json.load(f)
    cats = sorted(data['categories'], key=lambda c: c['id'])
    col = {c['id']: i for i, c in enumerate(cats)}
    rows = {img['id']: r for r, img in enumerate(data['images'])}
    labels = -np.ones((len(rows), len(cats)), np.int8)
    for a in data['annotations']:
        labels[rows[a['image_id']], col[a['category_id']]] = 1
    files = [img['file_name'] for img in data['images']]
    return files, labels, [c['name'] for c in cats]


def _write_wide(path, paths, labels, classes):
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['img_path', 'pos', 'neg'])
        for p, row in zip(paths, labels):
            w.writerow([p, ';'.join(classes[c] for c in np.flatnonzero(
                row == 1)), ';'.join(classes[c] for c in np.flatnonzero(
                    row == -1))])


def main(argv=None):
    args = parse_args(argv)
    if not 0 < args.known_ratio <= 1:
        sys.exit('make_own_data_demo.py: --known-ratio must be in (0, 1]')
    rng = np.random.RandomState(args.seed)
    out = {}
    for split, sub in (('train', 'train'), ('val', 'test')):
        files, labels, classes = _read(args.demo_root, split)
        dst = osp.join(args.out, 'images', sub)
        os.makedirs(dst, exist_ok=True)
        for name in files:
            shutil.copyfile(osp.join(args.demo_root, f'{split}2014', name),
                            osp.join(dst, name))
        out[sub] = ([f'{sub}/{n}' for n in files], labels)
    with open(osp.join(args.out, 'classes.txt'), 'w') as f:
        f.write('\n'.join(classes) + '\n')
    paths, labels = out['train']
    keep = rng.random_sample(labels.shape) < args.known_ratio
    with open(osp.join(args.out, 'known_labels.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['img_path', 'class', 'label'])
        for r, c in zip(*np.nonzero(keep)):
            w.writerow([paths[r], classes[c], int(labels[r, c])])
    _write_wide(osp.join(args.out, 'oracle_labels.csv'), paths, labels,
                classes)
    _write_wide(osp.join(args.out, 'test_labels.csv'), *out['test'], classes)
    print(f'{len(paths)} training images ({100 * keep.mean():.1f}% of the '
          f'entries known), {len(out["test"][0])} test images -> {args.out}')


if __name__ == '__main__':
    main()
