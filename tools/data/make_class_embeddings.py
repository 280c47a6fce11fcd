#!/usr/bin/env python
"""Class-name embeddings (C x d ``.npy``) for the semantic decoupling / label
nodes, from the class names of a dataset or a file.

- ``--source glove``: the mean GloVe vector of the words of each class name
  (the reference's 300-d vectors), from a local GloVe text file
  (``--glove-file glove.840B.300d.txt``; not downloaded by this script);
- ``--source clip``: open_clip text embeddings of ``--template`` filled with
  each name (L2-normalised; ``--pretrained openai`` may download weights,
  ``--pretrained none`` gives a random-init tower for offline checks).

The SHA-256 of the output is recorded in ``SHA256SUMS`` next to it.

Examples::

    python tools/data/make_class_embeddings.py --dataset voc \
        --source glove --glove-file glove.840B.300d.txt \
        --out data/voc/glove_embeddings.npy
    python tools/data/make_class_embeddings.py --classes classes.txt \
        --source clip --pretrained openai --out data/coco/clip_vitb16.npy
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
    src.add_argument('--classes', help='class-name file, one per line')
    src.add_argument(
        '--dataset',
        choices=['coco', 'voc', 'vg', 'nus'],
        help='class names of a raw dataset (needs --data-root '
        'except for voc)')
    p.add_argument('--data-root')
    p.add_argument('--split', default='train')
    p.add_argument('--source', required=True, choices=['glove', 'clip'])
    p.add_argument('--glove-file')
    p.add_argument('--model', default='ViT-B-16')
    p.add_argument(
        '--pretrained',
        default='openai',
        help="open_clip weights tag or path; 'none' = random init")
    p.add_argument('--template', default='There is a {} in the scene')
    p.add_argument('--out', required=True)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.datasets.data_prep import (build_raw_dataset, read_lines,
                                             record_checksums)
    from mlrpl_mm.datasets.glove_embeddings import glove_class_embeddings
    if args.classes:
        classes = read_lines(args.classes)
    elif args.dataset == 'voc' and not args.data_root:
        from mlrpl_mm.datasets.voc_multi_label import VOC_CLASSES
        classes = list(VOC_CLASSES)
    else:
        if not args.data_root:
            raise SystemExit('--dataset needs --data-root')
        classes = list(
            build_raw_dataset(args.dataset, args.data_root,
                              args.split).metainfo['classes'])
    if args.source == 'glove':
        if not args.glove_file:
            raise SystemExit('--source glove needs --glove-file')
        emb = glove_class_embeddings(classes, args.glove_file)
    else:
        from mlrpl_mm.models.utils.clip_text import encode_label_names
        pretrained = None if args.pretrained.lower() == 'none' \
            else args.pretrained
        # QuickGELU for the OpenAI weights, as the models do (issue #14)
        emb = encode_label_names(classes, args.model, pretrained,
                                 args.template, seed=None).numpy()
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    np.save(args.out, emb.astype(np.float32))
    record_checksums([args.out],
                     osp.join(osp.dirname(args.out) or '.', 'SHA256SUMS'))
    print(f'{args.out}: {emb.shape[0]} classes x {emb.shape[1]} dims')
    return args.out


if __name__ == '__main__':
    main()
