#!/usr/bin/env python
"""Export a trained model's class scores to ONNX and check them against
PyTorch with onnxruntime.

    python tools/deploy/export_onnx.py CONFIG CKPT --out model.onnx \\
        --check data/demo/val2014 [--max-images 16] [--atol 1e-4]

The ONNX graph (``mlrpl_mm.apis.onnx_export``) takes ``img`` (B, 3, H, W)
float32: the images after the config's test pipeline (resized, BGR,
0..255); normalisation, channel order, backbone, neck, head and the sigmoid
are inside. It outputs ``scores`` (B, C) = the ``pred_score`` of
``tools/infer.py``. With ``--check`` the scores of onnxruntime on those images
(run in batches of --check-batch, so a dynamic batch size is exercised) must
equal PyTorch's (``MultiLabelInferencer.predict_scores``) within --atol, or
the tool exits with an error. Needs ``pip install -e '.[onnx]'``.

Verified for partial BCE, HST and DSRB (tests/test_tools/test_export_onnx.py).
SigRL: see docs/own_data.md, section 6 (what it needs; not verified).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='the .onnx file')
    p.add_argument('--check', nargs='*', default=None,
                   help='images / folders to compare ONNX and PyTorch on; '
                   'the first one also gives the export size')
    p.add_argument('--max-images', type=int, default=16)
    p.add_argument('--check-batch', type=int, default=3)
    p.add_argument('--atol', type=float, default=1e-4)
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--size', type=int, nargs=2, default=None,
                   metavar=('H', 'W'),
                   help='export size without --check images')
    p.add_argument('--trust-checkpoint', action='store_true')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from mlrpl_mm.apis import MultiLabelInferencer, list_images
    from mlrpl_mm.apis.onnx_export import (export_onnx, onnx_scores,
                                           pipeline_inputs)
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        sys.exit(f"export_onnx.py: error: {e.name} is missing; pip install "
                 "-e '.[onnx]' (onnx, onnxruntime)")
    inf = MultiLabelInferencer(args.config, args.checkpoint,
                               cfg_options=args.cfg_options,
                               trust_checkpoint=args.trust_checkpoint)
    if hasattr(inf.head, 'set_test_classes'):
        print(f'{type(inf.head).__name__}: the label embeddings of the '
              'current classes are baked into the graph as constants; new '
              'class names need a new export')
    paths = []
    for x in args.check or []:
        paths += list_images(x)
    paths = paths[:args.max_images]
    if paths:
        inputs = pipeline_inputs(inf, paths)
    elif args.size:
        inputs = np.zeros((1, 3) + tuple(args.size), np.float32)
    else:
        sys.exit('export_onnx.py: error: give --check IMAGES (recommended) '
                 'or --size H W')
    export_onnx(inf, args.out, inputs[:1], opset=args.opset)
    print(f'wrote {args.out} (input img (B, 3, {inputs.shape[2]}, '
          f'{inputs.shape[3]}) BGR 0..255, output scores (B, '
          f'{inf.model.head.num_classes}))')
    if paths:
        ref = inf.predict_scores(paths, batch_size=8)
        got = onnx_scores(args.out, inputs, args.check_batch)
        diff = float(np.abs(ref - got).max())
        print(f'onnxruntime vs PyTorch on {len(paths)} images: max |diff| '
              f'{diff:.3g} (atol {args.atol:g})')
        if not diff <= args.atol:
            sys.exit(f'export_onnx.py: error: ONNX scores differ from '
                     f'PyTorch by {diff:.3g} > {args.atol:g}')
    return args.out


if __name__ == '__main__':
    main()
