#!/usr/bin/env python
"""Per-class AP bar chart (sorted) of a run.

Sources:
- a work dir: the newest ``per_class_ap*.json`` below it, written by
  ``MultiLabelMAP`` when ``dump_per_class_ap=True`` (e.g. train with
  ``--cfg-options val_evaluator.dump_per_class_ap=True``);
- such a JSON file (keys ``ap``, ``classes``, ``ap_style``);
- the ``.pkl`` of ``tools/test.py CONFIG CKPT --out preds.pkl`` (AP computed
  here, VOC style; class names with ``--classes``). It is unpickled with an
  allow-list of plain data (``mlrpl_mm.utils.safe_pickle_load``): a pickle
  referencing anything else (which could run code) is refused.

Example::

    python tools/analysis/plot_per_class_ap.py work_dirs/demo
    python tools/analysis/plot_per_class_ap.py preds.pkl --classes classes.txt
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('source', help='work dir, per_class_ap*.json or '
                        'predictions .pkl')
    parser.add_argument('--out', default=None, help='PNG file (default: '
                        'per_class_ap.png in the work dir / next to the file)')
    parser.add_argument('--classes', default=None,
                        help="class names: 'a,b,c' or a file, one per line")
    parser.add_argument('--title', default='per-class AP')
    args = parser.parse_args(argv)
    from mlrpl_mm.utils import UnsafePickleError
    from mlrpl_mm.visualization import load_per_class_ap, plot_per_class_ap
    try:
        ap, classes, src = load_per_class_ap(args.source)
    except UnsafePickleError as err:  # refused: nothing of the file ran
        raise SystemExit(f'error: {err}')
    if args.classes:
        if osp.isfile(args.classes):
            with open(args.classes) as f:
                names = [x.strip() for x in f if x.strip()]
        else:
            names = [x.strip() for x in args.classes.split(',')]
        if len(names) != len(ap):
            raise SystemExit(f'--classes gives {len(names)} names for '
                             f'{len(ap)} classes in {src}')
        classes = names
    base = args.source if osp.isdir(args.source) else \
        osp.dirname(osp.abspath(args.source))
    out = args.out or osp.join(base, 'plots', 'per_class_ap.png')
    plot_per_class_ap(ap, classes, out, title=args.title)
    print(f'{out}  (from {src})')
    return out


if __name__ == '__main__':
    main()
