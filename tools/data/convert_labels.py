#!/usr/bin/env python
"""Convert labels in a common layout into the partial-annotation JSON of
``PartialLabelAnnotations`` (OpenMMLab 2.0: ``metainfo.classes`` and a
``data_list`` of ``img_path`` / ``pos_label`` / ``neg_label``; every other
entry unknown), and print its statistics (known fraction, positives /
negatives per class).

Sources (``--format``):

- ``folder``: ``SRC/<class>/<image>``: an image is positive for its folder's
  class. The same relative file name in several class folders is one image
  with several positives when ``--merge-same-name`` is given. Other classes:
  unknown (``--unlisted unknown``, default) or negative.
- ``voc``: a VOC-style tree ``SRC/Annotations/<id>.xml`` (+
  ``SRC/ImageSets/Main/<split>.txt`` if ``--split`` is given, else every
  xml, sorted) with images ``JPEGImages/<filename>``: the classes of the
  objects are positive, a class present only as difficult is unknown, every
  other class is negative (``--unlisted negative``, default for voc).
- ``coco``: an ``instances_*.json``: the categories of an image's
  annotations are positive, the others negative (default) or unknown.
- ``csv``: the CSV forms of ``PartialLabelAnnotations`` (``img_path,class,
  label`` or ``img_path,pos,neg``); classes from ``--classes`` or, if not
  given, every class name of the file in sorted order.

``img_path`` values are written relative to the image directory
(``data_prefix`` of the dataset config): the class folders' root for
``folder``, ``JPEGImages`` for ``voc``, the json's ``file_name`` for
``coco``, as written for ``csv``. ``--image-root DIR`` verifies every image
exists under DIR; ``--add-images GLOB`` adds the images of DIR the source
does not list (every entry unknown: a folder of images with labels for some). The SHA-256 of the output is recorded in ``SHA256SUMS``
next to it.

Examples::

    python tools/data/convert_labels.py --format folder --src data/mine/images \\
        --out data/mine/train.json
    python tools/data/convert_labels.py --format csv --src my_labels.csv \\
        --classes classes.txt --out data/mine/train.json \\
        --image-root data/mine/images --add-images '**/*.jpg'
    python tools/data/convert_labels.py --format voc \\
        --src data/VOCdevkit/VOC2007 --split test --out data/voc07_test.json
    python tools/data/convert_labels.py --format coco \\
        --src data/coco/annotations/instances_val2014.json --out val.json
"""
import argparse
import csv
import glob
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff',
            '.webp')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--format', required=True,
                   choices=['folder', 'voc', 'coco', 'csv'])
    p.add_argument('--src', required=True,
                   help='class-folder root, VOC root, COCO json or CSV')
    p.add_argument('--out', required=True, help='output .json')
    p.add_argument('--classes', default=None,
                   help='class list file (one name per line): the column '
                   'order; default: the names found, sorted')
    p.add_argument('--unlisted', choices=['unknown', 'negative'],
                   default=None,
                   help='entries the source does not state: unknown '
                   '(default for folder / csv) or negative (default for '
                   'voc / coco, exhaustively labelled)')
    p.add_argument('--split', default=None,
                   help='voc: ImageSets/Main/<split>.txt (default: every '
                   'xml of Annotations/)')
    p.add_argument('--merge-same-name', action='store_true',
                   help='folder: one image per relative file name across '
                   'the class folders (multi-label folders)')
    p.add_argument('--image-root', default=None, metavar='DIR',
                   help='the folder img_path values are relative to (the '
                   "dataset's data_prefix): check that every image exists")
    p.add_argument('--add-images', default=None, metavar='GLOB',
                   help='with --image-root: add every image matching GLOB '
                   "(relative to it, e.g. 'train/*.jpg') that the source "
                   'does not list, with every entry unknown (to be '
                   'suggested for annotation later)')
    p.add_argument('--quiet', action='store_true',
                   help='print the summary line only')
    return p.parse_args(argv)


def _classes_or(found: Sequence[str], spec: Optional[str]) -> List[str]:
    from mlrpl_mm.datasets.class_list import read_class_list
    if spec is not None:
        return read_class_list(spec)
    return sorted(set(found))


def _index(classes: Sequence[str], name: str, where: str) -> int:
    try:
        return list(classes).index(name)
    except ValueError:
        raise ValueError(f'{where}: class {name!r} is not in the class list '
                         f'({len(classes)} classes); add it to --classes')


def from_folder(src: str, classes_spec: Optional[str], unlisted: str,
                merge: bool) -> Tuple[List[str], np.ndarray, List[str]]:
    if not osp.isdir(src):
        raise FileNotFoundError(f'--src {src}: no such folder')
    found = sorted(d for d in os.listdir(src)
                   if osp.isdir(osp.join(src, d)) and not d.startswith('.'))
    if not found:
        raise ValueError(f'--src {src}: no class folders (expected '
                         f'{src}/<class>/<image>)')
    classes = _classes_or(found, classes_spec)
    rows, paths, pos = {}, [], []
    for name in found:
        c = _index(classes, name, f'{src}/{name}')
        for dirpath, _, files in sorted(os.walk(osp.join(src, name))):
            for f in sorted(files):
                if not f.lower().endswith(IMG_EXTS):
                    continue
                rel = osp.relpath(osp.join(dirpath, f), src)
                key = osp.relpath(rel, name) if merge else rel
                if key not in rows:
                    rows[key] = len(paths)
                    paths.append(rel)
                    pos.append(set())
                pos[rows[key]].add(c)
    if not paths:
        raise ValueError(f'--src {src}: no image files ({IMG_EXTS}) in the '
                         'class folders')
    labels = np.full((len(paths), len(classes)),
                     -1 if unlisted == 'negative' else 0, np.int8)
    for r, cs in enumerate(pos):
        labels[r, sorted(cs)] = 1
    return paths, labels, classes


def from_voc(src: str, classes_spec: Optional[str], unlisted: str,
             split: Optional[str]) -> Tuple[List[str], np.ndarray, List[str]]:
    import xml.etree.ElementTree as ET

    from mlrpl_mm.datasets import parse_voc_xml
    ann_dir = osp.join(src, 'Annotations')
    if not osp.isdir(ann_dir):
        raise FileNotFoundError(f'--src {src}: no Annotations/ folder '
                                '(VOC layout)')
    if split:
        lst = osp.join(src, 'ImageSets', 'Main', f'{split}.txt')
        if not osp.isfile(lst):
            raise FileNotFoundError(f'--split {split}: {lst} not found')
        with open(lst) as f:
            ids = [line.split()[0] for line in f if line.strip()]
    else:
        ids = sorted(osp.splitext(f)[0] for f in os.listdir(ann_dir)
                     if f.endswith('.xml'))
    objects, files = [], []
    for i in ids:
        xml = osp.join(ann_dir, f'{i}.xml')
        objects.append(parse_voc_xml(xml))
        fname = ET.parse(xml).getroot().findtext('filename')
        files.append(fname.strip() if fname and fname.strip() else i + '.jpg')
    classes = _classes_or([n for objs in objects for n, _ in objs],
                          classes_spec)
    labels = np.full((len(ids), len(classes)),
                     -1 if unlisted == 'negative' else 0, np.int8)
    for r, objs in enumerate(objects):
        for name, difficult in objs:
            c = _index(classes, name, osp.join(ann_dir, f'{ids[r]}.xml'))
            if not difficult:
                labels[r, c] = 1
            elif labels[r, c] != 1:
                labels[r, c] = 0
    return files, labels, classes


def from_coco(src: str, classes_spec: Optional[str],
              unlisted: str) -> Tuple[List[str], np.ndarray, List[str]]:
    """The validated reader of ``CocoMultiLabel`` (same labels, order and
    class names); ``--classes`` reorders the columns (a listed class the
    json lacks gets the ``--unlisted`` value)."""
    from mlrpl_mm.datasets.coco_multi_label import read_coco_labels
    if not osp.isfile(src):
        raise FileNotFoundError(f'--src {src}: no such file')
    images, names, coco = read_coco_labels(src)
    fill = -1 if unlisted == 'negative' else 0
    if classes_spec is None:
        classes = names
        labels = np.where(coco == 1, 1, fill).astype(np.int8)
    else:
        classes = _classes_or(names, classes_spec)
        labels = np.full((len(images), len(classes)), fill, np.int8)
        for j, name in enumerate(names):
            c = _index(classes, name, src)
            labels[:, c] = np.where(coco[:, j] == 1, 1, fill)
    return [img['file_name'] for img in images], labels, classes


def from_csv(src: str, classes_spec: Optional[str],
             unlisted: str) -> Tuple[List[str], np.ndarray, List[str]]:
    from mlrpl_mm.datasets.partial_annotation_io import (
        LIST_SEP, load_partial_annotations)
    if not osp.isfile(src):
        raise FileNotFoundError(f'--src {src}: no such file')
    classes = classes_spec
    if classes is None:
        found = set()
        with open(src, newline='', encoding='utf-8-sig') as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            for rec in reader:
                rec = rec + [''] * (len(header) - len(rec))
                for key, value in zip(header, rec):
                    if key == 'class':
                        found.add(value.strip())
                    elif key in ('pos', 'neg'):
                        found |= {n.strip() for n in value.split(LIST_SEP)}
        classes = sorted(found - {''})
        if not classes:
            raise ValueError(f'{src}: no class name found')
    return load_partial_annotations(src, classes, unlisted)


def convert(args) -> dict:
    from mlrpl_mm.datasets.data_prep import record_checksums
    from mlrpl_mm.datasets.label_stats import annotation_stats, format_stats
    from mlrpl_mm.datasets.partial_annotation_io import \
        save_partial_annotations
    unlisted = args.unlisted or ('negative' if args.format in ('voc', 'coco')
                                 else 'unknown')
    if args.format == 'folder':
        paths, labels, classes = from_folder(args.src, args.classes,
                                             unlisted, args.merge_same_name)
    elif args.format == 'voc':
        paths, labels, classes = from_voc(args.src, args.classes, unlisted,
                                          args.split)
    elif args.format == 'coco':
        paths, labels, classes = from_coco(args.src, args.classes, unlisted)
    else:
        paths, labels, classes = from_csv(args.src, args.classes, unlisted)
    if args.add_images and not args.image_root:
        raise ValueError('--add-images needs --image-root')
    if args.image_root:
        missing = [p for p in paths
                   if not osp.isfile(osp.join(args.image_root, p))]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of {len(paths)} images missing under '
                f'--image-root {args.image_root}, first: {missing[:3]}')
    if args.add_images:
        listed = {osp.normpath(p) for p in paths}
        found = sorted(
            osp.relpath(f, args.image_root) for f in glob.glob(
                osp.join(args.image_root, args.add_images), recursive=True)
            if f.lower().endswith(IMG_EXTS) and osp.isfile(f))
        new = [f for f in found if osp.normpath(f) not in listed]
        if not found:
            raise ValueError(f'--add-images {args.add_images!r}: no image '
                             f'under {args.image_root} matches')
        print(f'--add-images: {len(new)} unlisted image(s) added with every '
              'entry unknown')
        paths = list(paths) + new
        labels = np.concatenate(
            [labels, np.zeros((len(new), len(classes)), np.int8)])
    save_partial_annotations(args.out, paths, labels, classes)
    record_checksums([args.out],
                     osp.join(osp.dirname(osp.abspath(args.out)),
                              'SHA256SUMS'))
    stats = annotation_stats(labels, classes)
    text = format_stats(stats)
    print(text.splitlines()[0] if args.quiet else text)
    print(f'wrote {args.out}')
    return stats


def main(argv=None):
    args = parse_args(argv)
    try:
        convert(args)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'convert_labels.py: error: {e}')


if __name__ == '__main__':
    main()
