#!/usr/bin/env python
"""Generate and save partial-label files (and their label graphs).

Input: a full label matrix (``--labels``, e.g. from prepare_labels.py or the
published ``original-labels/train.txt``) or a raw dataset (``--dataset``,
``--data-root``, ``--split``). Output in ``--out-dir``:

- ``--mode proportion`` (default): ``train_proportion_<p>.txt`` for every
  ``--ratios`` p (seed-0 protocol of docs/equations/protocol.md; bit-exact with
  the published VOC 2007 files);
- ``--mode single_positive``: ``train_single_positive.txt`` (Cole et al.,
  RandomState(1200)) and the 80/20 split ``spml_train_indices.txt`` /
  ``spml_val_indices.txt``;
- ``--graph``: the co-occurrence graph A of each partial matrix,
  ``graph_<stem>.npy`` (C x C float32, from known positives only).

Prints the known ratio achieved and records the SHA-256 of every file in
``<out-dir>/SHA256SUMS``.

Example::

    python tools/data/make_partial_labels.py \
        --labels tests/data/voc2007_labels/original-labels/train.txt \
        --out-dir data/labels/voc2007/partial-labels --graph
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--labels', help='N x C full labels (.txt / .npy)')
    src.add_argument('--dataset', choices=['coco', 'voc', 'vg', 'nus'])
    p.add_argument('--data-root')
    p.add_argument('--split', default='train')
    p.add_argument('--out-dir', required=True)
    p.add_argument(
        '--mode',
        default='proportion',
        choices=['proportion', 'single_positive'])
    p.add_argument(
        '--ratios',
        nargs='+',
        type=float,
        default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    p.add_argument(
        '--seed',
        type=int,
        default=None,
        help='default: 0 (proportion), 1200 (single positive)')
    p.add_argument('--val-fraction', type=float, default=0.2)
    p.add_argument('--format', default='txt', choices=['txt', 'npy'])
    p.add_argument(
        '--graph',
        action='store_true',
        help='also save the co-occurrence graph of each file')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    from mmengine.utils import track_iter_progress

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.datasets import (cooccurrence_graph, load_label_file,
                                   proportion_mask, save_label_file,
                                   single_positive_labels,
                                   spml_train_val_split)
    from mlrpl_mm.datasets.data_prep import build_raw_dataset, record_checksums
    if args.labels:
        full = load_label_file(args.labels)
    else:
        if not args.data_root:
            raise SystemExit('--dataset needs --data-root')
        full = build_raw_dataset(args.dataset, args.data_root,
                                 args.split).full_labels
    os.makedirs(args.out_dir, exist_ok=True)
    written = []

    def save(stem, labels):
        path = osp.join(args.out_dir, f'{stem}.{args.format}')
        save_label_file(path, labels)
        written.append(path)
        known = float((labels != 0).mean())
        print(f'{path}: {labels.shape[0]} x {labels.shape[1]}, known ratio '
              f'{known:.4f}, known positives {int((labels == 1).sum())}')
        if args.graph:
            g = osp.join(args.out_dir, f'graph_{stem}.npy')
            np.save(g, cooccurrence_graph(labels))
            written.append(g)

    if args.mode == 'proportion':
        seed = 0 if args.seed is None else args.seed
        for p in track_iter_progress(list(args.ratios)):
            save(f'train_proportion_{p:g}', proportion_mask(full, p, seed))
    else:
        seed = 1200 if args.seed is None else args.seed
        save('train_single_positive', single_positive_labels(full, seed))
        tr, va = spml_train_val_split(full.shape[0], args.val_fraction, 1200)
        for stem, idx in (('spml_train_indices', tr), ('spml_val_indices',
                                                       va)):
            path = osp.join(args.out_dir, f'{stem}.txt')
            np.savetxt(path, idx, fmt='%d')
            written.append(path)
    manifest = osp.join(args.out_dir, 'SHA256SUMS')
    record_checksums(written, manifest)
    print(f'{len(written)} files, checksums recorded in {manifest}')
    return written


if __name__ == '__main__':
    main()
