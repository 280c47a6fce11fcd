#!/usr/bin/env python
"""Top labels of images with a trained model: a table, optionally JSON.

Examples::

    # a checkpoint of `make demo`, on one image and on a folder
    python tools/infer.py work_dirs/demo/hst_demo.py \\
        work_dirs/demo/epoch_8.pth data/demo/val2014/COCO_val2014_000000100001.jpg
    python tools/infer.py configs/pbce_demo.py CKPT data/demo/val2014 \\
        --topk 3 --json preds.json

    # zero-shot (SigRL): score class names the model was not trained on
    python tools/infer.py configs/sigrl_coco_spml.py CKPT img.jpg \\
        --classes "bicycle,traffic cone,puddle"

The work dir of a run holds the full config (``work_dirs/RUN/<name>.py``,
with every ``--cfg-options`` of the training applied): prefer it to the
original config when the run overrode the model.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Class scores and top labels of images')
    parser.add_argument('config', help='config file (or the one in the '
                        'work dir of the run)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('inputs', nargs='+',
                        help='image files and/or folders of images')
    parser.add_argument('--topk', type=int, default=5,
                        help='top-scored classes shown per image (default 5)')
    parser.add_argument('--thr', type=float, default=None,
                        help='also list every class with a score >= THR')
    parser.add_argument('--classes', default=None,
                        help='zero-shot heads only: new class names, '
                        'comma-separated, or a text file with one per line')
    parser.add_argument('--json', dest='json_out', default=None,
                        help='write every score and the top labels to this '
                        'JSON file')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--device', default='cpu', help="e.g. 'cpu', 'cuda:0'")
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='load with weights_only=False (trusted files '
                        'only)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')
    return parser.parse_args(argv)


def read_class_names(spec: Optional[str]) -> Optional[List[str]]:
    """``--classes``: a text file (one name per line) or 'a,b,c'."""
    if spec is None:
        return None
    if osp.isfile(spec):
        with open(spec) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [n.strip() for n in spec.split(',') if n.strip()]
    if not names:
        raise ValueError(f'--classes {spec!r} gives no class name')
    return names


def format_table(results: List[Dict], show_thr: Optional[float] = None
                 ) -> str:
    """A plain-text table: image | top labels (score) [| labels >= thr]."""
    rows = []
    for r in results:
        name = r['img_path'] if r['img_path'] is not None else '<array>'
        top = '  '.join(f"{t['class']} ({t['score']:.3f})" for t in r['topk'])
        row = [name, top]
        if show_thr is not None:
            row.append(', '.join(r['pred_class']) or '-')
        rows.append(row)
    header = ['image', 'top labels (score)']
    if show_thr is not None:
        header.append(f'score >= {show_thr:g}')
    widths = [max(len(header[i]), *(len(row[i]) for row in rows))
              for i in range(len(header) - 1)]
    lines = []
    for row in [header] + rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        lines.append('  '.join(cells).rstrip())
    lines.insert(1, '-' * max(len(line) for line in lines))
    return '\n'.join(lines)


def to_json(results: List[Dict], classes: List[str]) -> Dict:
    """JSON-serialisable results (``scores`` keyed by class name)."""
    return dict(
        classes=classes,
        results=[dict(img_path=r['img_path'],
                      scores=[float(v) for v in r['pred_scores']],
                      pred_label=r['pred_label'], pred_class=r['pred_class'],
                      topk=r['topk']) for r in results])


def _missing_file_exits(func):
    """A missing config, checkpoint or image: one line on stderr
    (``infer.py: error: ...``) and exit status 2, not a traceback."""
    def wrapper(argv=None):
        try:
            return func(argv)
        except FileNotFoundError as err:
            msg = err.args[0] if len(err.args) == 1 else str(err)
            print(f'infer.py: error: {msg}', file=sys.stderr)
            sys.exit(2)
    return wrapper


@_missing_file_exits
def main(argv=None):
    args = parse_args(argv)
    from mlrpl_mm.apis import MultiLabelInferencer
    names = read_class_names(args.classes)
    inferencer = MultiLabelInferencer(
        args.config, args.checkpoint, device=args.device,
        cfg_options=args.cfg_options, trust_checkpoint=args.trust_checkpoint)
    results = inferencer(args.inputs, topk=args.topk, thr=args.thr,
                         class_names=names, batch_size=args.batch_size)
    print(format_table(results, args.thr))
    if args.json_out:
        n = len(results[0]['pred_scores'])
        classes = names or inferencer.classes
        if classes is None or len(classes) != n:
            classes = [str(i) for i in range(n)]
        if osp.dirname(args.json_out):
            os.makedirs(osp.dirname(args.json_out), exist_ok=True)
        with open(args.json_out, 'w') as f:
            json.dump(to_json(results, classes), f, indent=1)
        print(f'wrote {args.json_out}')
    return results


if __name__ == '__main__':
    from mlrpl_mm.utils import CheckpointError
    try:
        main()
    except CheckpointError as err:  # one line naming the file, no traceback
        raise SystemExit(f'error: {err}')
