#!/usr/bin/env python
"""Suggest the unknown (image, class) entries to annotate next, and merge the
answers back.

Suggest: scores every training image with the model (the config's test
pipeline), ranks the unknown entries of the training set (default
``--strategy uncertain-positive --balance class``: uncertainty of the score
plus its positive probability, plus for HST the disagreement of the model
with its IST / CST pseudo labels, the classes taking turns;
``mlrpl_mm.apis.suggest``, measured in docs/own_data.md), and writes the ``--budget`` best as a CSV in the ``PartialLabelAnnotations``
format (``img_path,class,label`` with the label column empty, plus the
``score`` and ``priority`` columns)::

    python tools/suggest_labels.py work_dirs/own_data/pbce_own_data.py \\
        work_dirs/own_data/epoch_6.pth --budget 200 --out to_annotate.csv

Fill in the label column (1 present, -1 absent, empty: skipped), then merge
the answers into the training annotations (a new JSON; the config's
``train_dataloader`` annotation file unless ``--ann`` is given)::

    python tools/suggest_labels.py work_dirs/own_data/pbce_own_data.py \\
        --merge to_annotate.csv --out data/own_demo/train_round2.json

``--oracle FILE`` fills the label column from a fully labelled annotation
file instead (simulations, the demo). ``--strategy random`` draws the K
entries uniformly (the baseline).
"""
import argparse
import csv
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402

from mlrpl_mm.apis.suggest import (DEFAULT_BALANCE,  # noqa: E402
                                   DEFAULT_STRATEGY, STRATEGIES)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='What to annotate next (and merge the answers)')
    p.add_argument('config', help='training config (or the one of the run)')
    p.add_argument('checkpoint', nargs='?', default=None,
                   help='checkpoint (suggest mode)')
    p.add_argument('--budget', type=int, default=None,
                   help='K: number of entries to suggest')
    p.add_argument('--out', default=None,
                   help='suggest: the CSV to write (default '
                   'suggestions.csv); merge: the merged JSON (required)')
    p.add_argument('--strategy', choices=list(STRATEGIES),
                   default=DEFAULT_STRATEGY,
                   help='priority of an unknown entry (mlrpl_mm/apis/'
                   'suggest.py; measured in docs/own_data.md)')
    p.add_argument('--seed', type=int, default=0, help='random strategy')
    p.add_argument('--balance', choices=['none', 'class'],
                   default=DEFAULT_BALANCE,
                   help='class: the classes take turns (round-robin by '
                   'priority) instead of the global priority order')
    p.add_argument('--no-pseudo', action='store_true',
                   help='uncertainty only, even for a head with pseudo '
                   'labels')
    p.add_argument('--oracle', default=None,
                   help='fill the labels from this fully labelled '
                   'annotation file (JSON, or CSV with the model classes)')
    p.add_argument('--merge', default=None, metavar='ANSWERS_CSV',
                   help='merge the answered suggestions into the training '
                   'annotations')
    p.add_argument('--ann', default=None,
                   help='merge: the annotation file to merge into (default: '
                   "the config's training annotation file)")
    p.add_argument('--overwrite-known', action='store_true',
                   help='merge: an answer may replace a different known '
                   'label')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--device', default='cpu')
    p.add_argument('--trust-checkpoint', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def _train_dataset(cfg):
    """The training dataset, built (its pipeline is not used)."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return DATASETS.build(cfg.train_dataloader.dataset)


def _ann_file(ds):
    """The annotation file of a PartialLabelAnnotations training set, or
    None for another dataset."""
    from mlrpl_mm.datasets import PartialLabelAnnotations
    return ds.ann_file if isinstance(ds, PartialLabelAnnotations) else None


def suggest(args, cfg):
    import numpy as np

    from mlrpl_mm.apis import MultiLabelInferencer
    from mlrpl_mm.apis.suggest import pseudo_label_votes, rank_unknown_entries
    from mlrpl_mm.datasets import get_partial_labels, load_partial_annotations
    if args.budget is None or args.budget < 1:
        raise ValueError('give --budget K (K >= 1) to suggest, or --merge '
                         'ANSWERS_CSV')
    if args.checkpoint is None:
        raise ValueError('suggest mode needs the CHECKPOINT argument')
    ds = _train_dataset(cfg)
    partial = get_partial_labels(ds)
    classes = list(ds.metainfo['classes'])
    full_paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    ann = _ann_file(ds)
    # the CSV names images as the annotation file does (relative paths)
    names = load_partial_annotations(ann)[0] if ann and ann.endswith(
        '.json') else full_paths
    inf = MultiLabelInferencer(cfg, args.checkpoint, device=args.device,
                               classes=classes,
                               trust_checkpoint=args.trust_checkpoint)
    votes, branches = None, []
    if args.strategy != 'random':
        scores = inf.predict_scores(full_paths, args.batch_size)
        if scores.shape != partial.shape:
            raise ValueError(f'the model gives {scores.shape[1]} scores per '
                             f'image, the training set has {len(classes)} '
                             'classes')
        if not args.no_pseudo and 'uncertain' in args.strategy:
            votes, branches = pseudo_label_votes(inf, full_paths, partial,
                                                 args.batch_size)
    else:
        scores = np.full(partial.shape, np.nan)
    entries, priority = rank_unknown_entries(
        scores, partial, args.budget, votes=votes, strategy=args.strategy,
        seed=args.seed, balance=args.balance)
    oracle = None
    if args.oracle:
        o_paths, o_labels, o_classes = load_partial_annotations(
            args.oracle, None if args.oracle.endswith('.json') else classes)
        if list(o_classes) != classes:
            raise ValueError(f'--oracle {args.oracle}: its classes differ '
                             "from the training set's")
        oracle = ({p: i for i, p in enumerate(o_paths)}, o_labels)
    out = args.out or 'suggestions.csv'
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    with open(out, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['img_path', 'class', 'label', 'score', 'priority'])
        for (r, c), pri in zip(entries, priority):
            label = ''
            if oracle is not None:
                if names[r] not in oracle[0]:
                    raise ValueError(f'--oracle {args.oracle}: no image '
                                     f'{names[r]!r}')
                v = int(oracle[1][oracle[0][names[r]], c])
                label = str(v) if v else ''
            w.writerow([names[r], classes[c], label,
                        '' if np.isnan(scores[r, c]) else
                        f'{scores[r, c]:.4f}',
                        '' if np.isnan(pri) else f'{pri:.4f}'])
    unknown = int((partial == 0).sum())
    print(f'{len(entries)} of {unknown} unknown entries suggested '
          f'({args.strategy}'
          f'{", pseudo labels: " + "+".join(branches) if branches else ""}'
          f') -> {out}')
    return out


def merge(args, cfg):
    from mlrpl_mm.apis.suggest import merge_answers
    from mlrpl_mm.datasets.label_stats import annotation_stats, format_stats
    from mlrpl_mm.datasets.partial_annotation_io import \
        load_partial_annotations
    if not args.out:
        raise ValueError('--merge needs --out NEW.json (the training '
                         'annotations are not overwritten)')
    ann = args.ann
    if ann is None:
        ann = _ann_file(_train_dataset(cfg))
        if ann is None:
            raise ValueError(
                'the training dataset of the config is not a '
                'PartialLabelAnnotations; give the file to merge into with '
                '--ann')
    counts = merge_answers(ann, args.merge, args.out, args.overwrite_known)
    _, labels, classes = load_partial_annotations(args.out)
    print(format_stats(annotation_stats(labels, classes)).splitlines()[0])
    print(f"merged {counts['answered']} answers ({counts['new']} new, "
          f"{counts['same']} already known, {counts['changed']} changed) "
          f'from {args.merge} into {ann} -> {args.out}')
    return counts


def main(argv=None):
    args = parse_args(argv)
    import mlrpl_mm  # noqa: F401
    from mmengine.config import Config
    if not osp.isfile(args.config):
        sys.exit(f'suggest_labels.py: error: config {args.config} not found')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    try:
        return merge(args, cfg) if args.merge else suggest(args, cfg)
    except (ValueError, FileNotFoundError, KeyError) as e:
        sys.exit(f'suggest_labels.py: error: {e}')


if __name__ == '__main__':
    main()
