#!/usr/bin/env python
"""Build the VG-200 files that ``VGMultiLabel`` reads from Visual Genome's
raw ``objects.json``.

Output in ``--out-dir`` (``C`` = ``--num-classes``, default 200):

- ``vg_category_<C>.txt``: the C most frequent object categories, most
  frequent first (class index = line number);
- ``vg_category_<C>_labels_index.json``: image name -> sorted category
  indices, for every image of the lists;
- ``train_list.txt`` / ``test_list.txt``: the image names of each split;
- ``SHA256SUMS`` with the SHA-256 of every file written.

Splits: give the reference lists (``--train-list`` / ``--test-list``, one
image name per line; 98,249 / 10,000 images in the published protocol) to
reproduce them, otherwise a seeded split (``--num-test``, ``--seed``) is
made. Images without any of the C categories are kept as all-negative rows
(``--drop-empty`` drops them from the lists).

Category of an object: its first name, lower-cased (``--use-synsets``: its
first synset); ranked by ``--count`` (``instances`` or ``images``), ties by
name. The reference's own category list is not public-domain; with the
raw file of the same Visual Genome version this procedure gives its
"200 most frequent categories" up to ties and name normalisation, so check
the printed statistics against the paper's figures.

Image names are the basenames of ``image_url`` (``<image_id>.jpg``); put
the images of ``VG_100K`` and ``VG_100K_2`` in one directory (the dataset's
``data_prefix``, default ``VG_100K``).

Example::

    python tools/data/prepare_vg.py --objects data/vg/raw/objects.json \
        --out-dir data/vg --train-list ref/train_list.txt \
        --test-list ref/test_list.txt
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--objects', required=True,
                   help="Visual Genome's objects.json")
    p.add_argument('--out-dir', required=True)
    p.add_argument('--num-classes', type=int, default=200)
    p.add_argument('--count', choices=['instances', 'images'],
                   default='instances')
    p.add_argument('--use-synsets', action='store_true')
    p.add_argument('--train-list', help='reference train image names')
    p.add_argument('--test-list', help='reference test image names')
    p.add_argument('--num-test', type=int, default=10000,
                   help='test images of the seeded split (no lists given)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--drop-empty', action='store_true',
                   help='drop images without any of the C categories')
    return p.parse_args(argv)


def _read_list(path):
    if not osp.isfile(path):
        raise FileNotFoundError(f'image list {path} not found')
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.datasets.data_prep import record_checksums
    from mlrpl_mm.datasets.label_stats import (format_statistics,
                                               label_statistics)
    from mlrpl_mm.datasets.vg_categories import (vg_categories_from_objects,
                                                 vg_split)
    if bool(args.train_list) != bool(args.test_list):
        raise SystemExit('give both --train-list and --test-list, or neither')
    if not osp.isfile(args.objects):
        raise FileNotFoundError(f'{args.objects} not found')
    print(f'reading {args.objects} ...', flush=True)
    try:
        with open(args.objects) as f:
            objects = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'malformed objects file {args.objects}: {e}')
    C = args.num_classes
    classes, names, cats = vg_categories_from_objects(
        objects, C, args.count, args.use_synsets, source=args.objects,
        progress=True)
    mapping = dict(zip(names, cats))
    if args.train_list:
        splits = dict(train=_read_list(args.train_list),
                      test=_read_list(args.test_list))
        for split, lst in splits.items():
            missing = [n for n in lst if n not in mapping]
            if missing:
                raise ValueError(
                    f'{len(missing)} image(s) of the {split} list are not '
                    f'in {args.objects}, first: {missing[:3]}')
    else:
        train, test = vg_split(names, args.num_test, args.seed)
        splits = dict(train=train, test=test)
    if args.drop_empty:
        splits = {s: [n for n in lst if mapping[n]]
                  for s, lst in splits.items()}
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    cls_file = osp.join(args.out_dir, f'vg_category_{C}.txt')
    with open(cls_file, 'w') as f:
        f.write('\n'.join(classes) + '\n')
    written.append(cls_file)
    used = sorted({n for lst in splits.values() for n in lst})
    label_file = osp.join(args.out_dir, f'vg_category_{C}_labels_index.json')
    with open(label_file, 'w') as f:
        json.dump({n: mapping[n] for n in used}, f)
    written.append(label_file)
    for split, lst in splits.items():
        path = osp.join(args.out_dir, f'{split}_list.txt')
        with open(path, 'w') as f:
            f.write('\n'.join(lst) + ('\n' if lst else ''))
        written.append(path)
        labels = -np.ones((len(lst), C), np.int8)
        for row, n in enumerate(lst):
            labels[row, mapping[n]] = 1
        print(format_statistics(label_statistics(labels), classes,
                                title=f'[vg{C}/{split}]'))
    manifest = osp.join(args.out_dir, 'SHA256SUMS')
    record_checksums(written, manifest)
    print(f'{len(written)} files, checksums recorded in {manifest}')
    return written


if __name__ == '__main__':
    main()
