#!/usr/bin/env python
"""Build the label files of a dataset from its raw layout.

Reads the annotations (never the images) with the mlrpl-mm loader and writes,
per split, in ``--out-dir``:

- ``<name>_<split>_labels.txt``: N x C full labels, comma-separated +1/-1 (0 =
  ignored), rows in the reference order (the format of the published
  ``original-labels/*.txt``);
- ``<name>_<split>_images.txt``: the image paths (relative to the data root);
- ``<name>_classes.txt``: the class names;

prints statistics and records the SHA-256 of every file in
``<out-dir>/SHA256SUMS`` (``sha256sum -c SHA256SUMS`` verifies them).

Examples::

    python tools/data/prepare_labels.py voc \
        --data-root data/VOCdevkit/VOC2007 \
        --splits trainval test --out-dir data/labels/voc2007
    python tools/data/prepare_labels.py coco --data-root data/coco \
        --splits train val --out-dir data/labels/coco2014
    python tools/data/prepare_labels.py nus --data-root data/nus_wide \
        --splits train --label-set seen --out-dir data/labels/nus_seen
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('dataset', choices=['coco', 'voc', 'vg', 'nus'])
    p.add_argument('--data-root', required=True)
    p.add_argument(
        '--splits',
        nargs='+',
        required=True,
        help='e.g. train val (coco), trainval test (voc), '
        'train test (vg, nus)')
    p.add_argument('--out-dir', required=True)
    p.add_argument(
        '--name',
        default=None,
        help='file-name prefix (default: the dataset name)')
    p.add_argument(
        '--drop-empty',
        action='store_true',
        help='coco / nus: drop images without any positive')
    p.add_argument(
        '--difficult',
        default='skip',
        choices=['skip', 'ignore', 'positive'],
        help='voc')
    p.add_argument(
        '--label-set',
        default='unseen',
        choices=['unseen', 'seen', 'all'],
        help='nus')
    p.add_argument('--quiet', action='store_true', help='no per-class table')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    from mmengine.utils import track_iter_progress

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.datasets import save_label_file
    from mlrpl_mm.datasets.data_prep import (build_raw_dataset,
                                             record_checksums, sha256sum)
    from mlrpl_mm.datasets.label_stats import (format_statistics,
                                               label_statistics)
    extra = {}
    if args.dataset in ('coco', 'nus') and args.drop_empty:
        extra['drop_empty'] = True
    if args.dataset == 'voc':
        extra['difficult'] = args.difficult
    if args.dataset == 'nus':
        extra['label_set'] = args.label_set
    name = args.name or args.dataset
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    classes = None
    for split in args.splits:
        print(f'[{name}] reading the {split} annotations ...', flush=True)
        ds = build_raw_dataset(args.dataset, args.data_root, split, **extra)
        labels = ds.full_labels
        classes = ds.metainfo['classes']
        lab_file = osp.join(args.out_dir, f'{name}_{split}_labels.txt')
        save_label_file(lab_file, labels)
        img_file = osp.join(args.out_dir, f'{name}_{split}_images.txt')
        root = osp.abspath(args.data_root)
        with open(img_file, 'w') as f:
            for i in track_iter_progress(range(len(ds))):
                path = osp.abspath(ds.get_data_info(i)['img_path'])
                f.write(osp.relpath(path, root) + '\n')
        written += [lab_file, img_file]
        stats = label_statistics(labels)
        if args.quiet:
            print(f"[{name}/{split}] images: {stats['num_images']}, classes: "
                  f"{stats['num_classes']}, positives: "
                  f"{int(np.sum(stats['positives']))}")
        else:
            print(format_statistics(stats, classes, title=f'[{name}/{split}]'))
    cls_file = osp.join(args.out_dir, f'{name}_classes.txt')
    with open(cls_file, 'w') as f:
        f.write('\n'.join(classes) + '\n')
    written.append(cls_file)
    manifest = osp.join(args.out_dir, 'SHA256SUMS')
    record_checksums(written, manifest)
    for p in written:
        print(f'{sha256sum(p)}  {p}')
    print(f'checksums recorded in {manifest}')
    return written


if __name__ == '__main__':
    main()
