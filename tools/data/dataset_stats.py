#!/usr/bin/env python
"""Print the statistics of a label matrix or of a dataset: images, positives /
negatives / unknown per class, known ratio achieved.

Examples::

    python tools/data/dataset_stats.py --labels \
        tests/data/voc2007_labels/partial-labels/train_proportion_0.3.txt
    python tools/data/dataset_stats.py --dataset voc \
        --data-root data/VOCdevkit/VOC2007 --split test
    python tools/data/dataset_stats.py --config configs/pbce_voc_p30.py
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--labels', help='N x C matrix (.txt / .npy)')
    src.add_argument('--dataset', choices=['coco', 'voc', 'vg', 'nus'])
    src.add_argument(
        '--config',
        help='a config: its training dataset '
        '(partial labels) and its test dataset')
    p.add_argument('--data-root')
    p.add_argument('--split', default='train')
    p.add_argument('--classes', help='class-name file for --labels')
    p.add_argument(
        '--cfg-data-root',
        default=None,
        help='override data_root of the config datasets')
    return p.parse_args(argv)


def _set_root(cfg, root):
    if isinstance(cfg, dict):
        if 'data_root' in cfg:
            cfg['data_root'] = root
        for v in cfg.values():
            _set_root(v, root)
    elif isinstance(cfg, list):
        for v in cfg:
            _set_root(v, root)


def main(argv=None):
    args = parse_args(argv)
    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.datasets import get_partial_labels, load_label_file
    from mlrpl_mm.datasets.data_prep import build_raw_dataset, read_lines
    from mlrpl_mm.datasets.label_stats import (format_statistics,
                                               label_statistics)
    out = []
    if args.labels:
        labels = load_label_file(args.labels)
        classes = read_lines(args.classes) if args.classes else None
        out.append((args.labels, labels, classes))
    elif args.dataset:
        if not args.data_root:
            raise SystemExit('--dataset needs --data-root')
        ds = build_raw_dataset(args.dataset, args.data_root, args.split)
        out.append((f'{args.dataset}/{args.split}', ds.partial_labels,
                    ds.metainfo['classes']))
    else:
        from mmengine.config import Config
        from mmengine.registry import DefaultScope
        from mmpretrain.registry import DATASETS
        cfg = Config.fromfile(args.config)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            for key in ('train_dataloader', 'test_dataloader'):
                dcfg = cfg[key]['dataset'].to_dict()
                if args.cfg_data_root:
                    _set_root(dcfg, args.cfg_data_root)
                _strip_pipeline(dcfg)
                ds = DATASETS.build(dcfg)
                out.append((f'{args.config}:{key}', get_partial_labels(ds),
                            ds.metainfo['classes']))
    for title, labels, classes in out:
        print(
            format_statistics(
                label_statistics(labels), classes, title=f'[{title}]'))
    return out


def _strip_pipeline(cfg):
    """Statistics need no image: drop the pipelines."""
    if isinstance(cfg, dict):
        if 'pipeline' in cfg:
            cfg['pipeline'] = []
        for v in cfg.values():
            _strip_pipeline(v)


if __name__ == '__main__':
    main()
