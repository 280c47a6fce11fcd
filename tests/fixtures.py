"""Tiny datasets written in the real on-disk formats, for tests.

Every writer returns a dict with the roots / files it wrote and the label
matrices a correct loader must produce (np.int8, rows in the reference order).
Images are small random JPEGs (``img_size`` px).

    from tests.fixtures import make_coco_fixture
    fx = make_coco_fixture(tmp_path, num_train=8, num_val=8, num_classes=5)
    ds = CocoMultiLabel(data_root=fx['data_root'], split='train')
    assert (ds.full_labels == fx['labels']['train']).all()
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

#: The 80 MS-COCO category ids (non-contiguous) and names, in id order.
COCO_CATEGORIES = [(1, 'person'), (2, 'bicycle'),
                   (3, 'car'), (4, 'motorcycle'), (5, 'airplane'), (6, 'bus'),
                   (7, 'train'), (8, 'truck'), (9, 'boat'),
                   (10, 'traffic light'), (11, 'fire hydrant'),
                   (13, 'stop sign'), (14, 'parking meter'), (15, 'bench'),
                   (16, 'bird'), (17, 'cat'), (18, 'dog'), (19, 'horse'),
                   (20, 'sheep'), (21, 'cow'), (22, 'elephant'), (23, 'bear'),
                   (24, 'zebra'), (25, 'giraffe'), (27, 'backpack'),
                   (28, 'umbrella'), (31, 'handbag'), (32, 'tie'),
                   (33, 'suitcase'), (34, 'frisbee'), (35, 'skis'),
                   (36, 'snowboard'), (37, 'sports ball'), (38, 'kite'),
                   (39, 'baseball bat'), (40, 'baseball glove'),
                   (41, 'skateboard'), (42, 'surfboard'),
                   (43, 'tennis racket'), (44, 'bottle'), (46, 'wine glass'),
                   (47, 'cup'), (48, 'fork'), (49, 'knife'), (50, 'spoon'),
                   (51, 'bowl'), (52, 'banana'),
                   (53, 'apple'), (54, 'sandwich'), (55, 'orange'),
                   (56, 'broccoli'), (57, 'carrot'), (58, 'hot dog'),
                   (59, 'pizza'), (60, 'donut'), (61, 'cake'), (62, 'chair'),
                   (63, 'couch'), (64, 'potted plant'), (65, 'bed'),
                   (67, 'dining table'), (70, 'toilet'), (72, 'tv'),
                   (73, 'laptop'), (74, 'mouse'), (75, 'remote'),
                   (76, 'keyboard'), (77, 'cell phone'), (78, 'microwave'),
                   (79, 'oven'), (80, 'toaster'), (81, 'sink'),
                   (82, 'refrigerator'), (84, 'book'), (85, 'clock'),
                   (86, 'vase'), (87, 'scissors'), (88, 'teddy bear'),
                   (89, 'hair drier'), (90, 'toothbrush')]

#: The 20 Pascal VOC classes in the alphabetical (label-file) order.
VOC_CLASSES = [
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person',
    'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'
]


def write_image(path: str, img_size: int = 32, seed: int = 0) -> None:
    """A random RGB JPEG of ``img_size`` x ``img_size`` pixels."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.RandomState(seed)
    arr = rng.randint(0, 256, (img_size, img_size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)


def random_labels(num_images: int,
                  num_classes: int,
                  rng: np.random.RandomState,
                  num_empty: int = 0) -> np.ndarray:
    """(N, C) int8 in {+1, -1}: every image has 1..3 positives except the
    last ``num_empty`` rows (all negative)."""
    labels = -np.ones((num_images, num_classes), np.int8)
    for i in range(num_images - num_empty):
        k = rng.randint(1, min(3, num_classes) + 1)
        labels[i, rng.choice(num_classes, k, replace=False)] = 1
    return labels


def make_coco_fixture(root: str,
                      num_train: int = 8,
                      num_val: int = 8,
                      num_classes: int = 80,
                      img_size: int = 32,
                      seed: int = 0,
                      num_empty: int = 1,
                      year: str = '2014',
                      crowd_prob: float = 0.2) -> Dict:
    """MS-COCO layout: ``annotations/instances_{train,val}<year>.json`` and
    ``{train,val}<year>/COCO_<split><year>_<id:012d>.jpg``.

    The first ``num_classes`` real COCO categories (non-contiguous ids) are
    written in reverse order in the json; image ids are random and the
    ``images`` list is not sorted; the last ``num_empty`` images of each split
    have no annotation; each positive gets 1-2 boxes, each box ``iscrowd=1``
    with probability ``crowd_prob``.

    Returns:
        dict with ``data_root``, ``ann_files`` / ``img_dirs`` / ``img_paths``
        (per split), ``labels`` (per split, (N, C) int8, json order, crowd
        boxes counted), ``labels_no_crowd``, ``img_ids`` and ``classes``.
    """
    if not 1 <= num_classes <= 80:
        raise ValueError('num_classes must be in [1, 80]')
    rng = np.random.RandomState(seed)
    cats = COCO_CATEGORIES[:num_classes]
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    out = dict(
        data_root=str(root),
        classes=[n for _, n in cats],
        ann_files={},
        img_dirs={},
        img_paths={},
        labels={},
        labels_no_crowd={},
        img_ids={})
    ann_id = 1
    for split, n in (('train', num_train), ('val', num_val)):
        labels = random_labels(n, num_classes, rng, min(num_empty, n))
        no_crowd = -np.ones_like(labels)
        img_ids = rng.choice(10**6, n, replace=False).tolist()
        images, anns, paths = [], [], []
        for row, img_id in enumerate(img_ids):
            name = f'COCO_{split}{year}_{img_id:012d}.jpg'
            images.append(
                dict(
                    id=int(img_id),
                    file_name=name,
                    width=img_size,
                    height=img_size))
            path = osp.join(root, f'{split}{year}', name)
            write_image(path, img_size, seed * 100003 + img_id)
            paths.append(path)
            for c in np.flatnonzero(labels[row] == 1):
                for _ in range(rng.randint(1, 3)):
                    crowd = int(rng.rand() < crowd_prob)
                    if not crowd:
                        no_crowd[row, c] = 1
                    anns.append(
                        dict(
                            id=ann_id,
                            image_id=int(img_id),
                            category_id=cats[c][0],
                            iscrowd=crowd,
                            bbox=[1, 1, 4, 4],
                            area=16,
                            segmentation=[[1, 1, 5, 1, 5, 5]]))
                    ann_id += 1
        rng.shuffle(anns)
        ann_file = osp.join(root, 'annotations',
                            f'instances_{split}{year}.json')
        with open(ann_file, 'w') as f:
            json.dump(
                dict(
                    images=images,
                    annotations=anns,
                    categories=[
                        dict(id=i, name=nm, supercategory='x')
                        for i, nm in reversed(cats)
                    ]), f)
        out['ann_files'][split] = ann_file
        out['img_dirs'][split] = osp.join(root, f'{split}{year}')
        out['img_paths'][split] = paths
        out['labels'][split] = labels
        out['labels_no_crowd'][split] = no_crowd
        out['img_ids'][split] = [int(i) for i in img_ids]
    return out


def _voc_xml(name: str, objects: Sequence, img_size: int) -> str:
    objs = ''.join(
        f'<object><name>{cls}</name><pose>Unspecified</pose>'
        f'<truncated>0</truncated><difficult>{int(d)}</difficult>'
        f'<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax>'
        f'</bndbox></object>' for cls, d in objects)
    return (f'<annotation><folder>VOC2007</folder><filename>{name}.jpg'
            f'</filename><size><width>{img_size}</width><height>{img_size}'
            f'</height><depth>3</depth></size><segmented>0</segmented>'
            f'{objs}</annotation>')


def make_voc_fixture(root: str,
                     split_sizes: Optional[Dict[str, int]] = None,
                     labels: Optional[Dict[str, np.ndarray]] = None,
                     year: str = '2007',
                     img_size: int = 32,
                     seed: int = 0,
                     difficult_prob: float = 0.3) -> Dict:
    """Pascal VOC layout: ``<root>/VOCdevkit/VOC<year>/{Annotations/<id>.xml,
    ImageSets/Main/<split>.txt, JPEGImages/<id>.jpg}``.

    Each positive gets one non-difficult object (and sometimes an extra
    difficult one); with probability ``difficult_prob`` a negative class gets
    a difficult-only object (negative when difficult objects are skipped, 0
    when they are ignored).

    Args:
        split_sizes: images per split, default ``{'trainval': 6, 'test': 6}``.
        labels: optional given +1/-1 matrices per split (e.g. rows of the
            published label files) instead of random ones.

    Returns:
        dict with ``data_root`` (the ``VOC<year>`` dir), ``ids`` and per split
        ``labels`` (difficult skipped) and ``labels_ignore`` (difficult-only =
        0), both (N, 20) int8; ``classes``.
    """
    rng = np.random.RandomState(seed)
    if labels is None:
        split_sizes = split_sizes or {'trainval': 6, 'test': 6}
        labels = {s: random_labels(n, 20, rng) for s, n in split_sizes.items()}
    base = osp.join(root, 'VOCdevkit', f'VOC{year}')
    for d in ('Annotations', 'ImageSets/Main', 'JPEGImages'):
        os.makedirs(osp.join(base, d), exist_ok=True)
    out = dict(
        data_root=base,
        classes=list(VOC_CLASSES),
        ids={},
        labels={},
        labels_ignore={})
    counter = 0
    for split, lab in labels.items():
        lab = np.asarray(lab, np.int8)
        ignore = lab.copy()
        ids = []
        for row in lab:
            counter += 1
            img_id = f'{counter:06d}'
            ids.append(img_id)
            objects = []
            for c in range(20):
                if row[c] == 1:
                    objects.append((VOC_CLASSES[c], 0))
                    if rng.rand() < 0.3:
                        objects.append((VOC_CLASSES[c], 1))
                elif rng.rand() < difficult_prob:
                    objects.append((VOC_CLASSES[c], 1))
                    ignore[len(ids) - 1, c] = 0
            rng.shuffle(objects)
            with open(osp.join(base, 'Annotations', f'{img_id}.xml'),
                      'w') as f:
                f.write(_voc_xml(img_id, objects, img_size))
            write_image(
                osp.join(base, 'JPEGImages', f'{img_id}.jpg'), img_size,
                seed * 7919 + counter)
        with open(osp.join(base, 'ImageSets', 'Main', f'{split}.txt'),
                  'w') as f:
            f.write('\n'.join(ids) + '\n')
        out['ids'][split] = ids
        out['labels'][split] = lab
        out['labels_ignore'][split] = ignore
    return out


def make_vg_fixture(root: str,
                    num_train: int = 8,
                    num_test: int = 6,
                    num_classes: int = 200,
                    img_size: int = 32,
                    seed: int = 0) -> Dict:
    """VG-200 layout: ``train_list.txt`` / ``test_list.txt`` (one image name
    per line), ``vg_category_200_labels_index.json`` (image name -> list of
    category indices), ``vg_category_200.txt`` (class names) and images in
    ``VG_100K/``.

    Returns:
        dict with ``data_root``, ``list_files``, ``label_file``,
        ``classes_file``, ``classes``, per split ``names`` and ``labels``.
    """
    rng = np.random.RandomState(seed)
    os.makedirs(osp.join(root, 'VG_100K'), exist_ok=True)
    classes = [f'object_{i}' for i in range(num_classes)]
    classes_file = osp.join(root, 'vg_category_200.txt')
    with open(classes_file, 'w') as f:
        f.write('\n'.join(classes) + '\n')
    mapping = {}
    out = dict(
        data_root=str(root),
        list_files={},
        names={},
        labels={},
        classes=classes,
        classes_file=classes_file)
    ids = rng.choice(10**6, num_train + num_test, replace=False)
    offset = 0
    for split, n in (('train', num_train), ('test', num_test)):
        labels = random_labels(n, num_classes, rng)
        names = [f'{int(i)}.jpg' for i in ids[offset:offset + n]]
        offset += n
        for name, row in zip(names, labels):
            idx = np.flatnonzero(row == 1).tolist()
            rng.shuffle(idx)
            mapping[name] = idx
            write_image(
                osp.join(root, 'VG_100K', name), img_size,
                int(name.split('.')[0]))
        list_file = osp.join(root, f'{split}_list.txt')
        with open(list_file, 'w') as f:
            f.write('\n'.join(names) + '\n')
        out['list_files'][split] = list_file
        out['names'][split] = names
        out['labels'][split] = labels
    label_file = osp.join(root, 'vg_category_200_labels_index.json')
    with open(label_file, 'w') as f:
        json.dump(mapping, f)
    out['label_file'] = label_file
    return out


def make_nus_wide_fixture(root: str,
                          num_train: int = 8,
                          num_test: int = 6,
                          concepts: Optional[List[str]] = None,
                          tags: Optional[List[str]] = None,
                          img_size: int = 32,
                          seed: int = 0) -> Dict:
    """NUS-WIDE layout (official release files):

    - ``Concepts81.txt``: the concept (81-label) names, one per line;
    - ``NUS_WID_Tags/TagList1k.txt``: the 1k tag names;
    - ``ImageList/{Train,Test}Imagelist.txt``: ``<dir>\\<file>.jpg`` lines;
    - ``Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt``: one
      0/1 per image;
    - ``NUS_WID_Tags/{Train,Test}_Tags1k.dat``: one row of tab-separated 0/1
      tags per image;
    - images under ``Flickr/<dir>/<file>.jpg``.

    Seen labels = the tags that are not concepts (925 in the real data),
    unseen = the concepts (81). Defaults: 4 concepts, 8 tags, 2 shared.

    Returns:
        dict with ``data_root``, ``concepts``, ``tags``, ``seen_classes``, per
        split ``paths``, ``concept_labels`` (N, #concepts) and ``tag_labels``
        (N, #tags), ``seen_labels`` (N, #seen), all int8 in {+1, -1}.
    """
    rng = np.random.RandomState(seed)
    concepts = concepts or ['animal', 'beach', 'cars', 'sky']
    tags = tags or [
        'sky', 'sunset', 'beach', 'red', 'blue', 'city', 'night', 'tree'
    ]
    seen = [t for t in tags if t not in set(concepts)]
    for d in ('ImageList', 'Groundtruth/TrainTestLabels', 'NUS_WID_Tags',
              'Flickr'):
        os.makedirs(osp.join(root, d), exist_ok=True)
    with open(osp.join(root, 'Concepts81.txt'), 'w') as f:
        f.write('\n'.join(concepts) + '\n')
    with open(osp.join(root, 'NUS_WID_Tags', 'TagList1k.txt'), 'w') as f:
        f.write('\n'.join(tags) + '\n')
    out = dict(
        data_root=str(root),
        concepts=concepts,
        tags=tags,
        seen_classes=seen,
        paths={},
        concept_labels={},
        tag_labels={},
        seen_labels={})
    k = 0
    for split, n in (('Train', num_train), ('Test', num_test)):
        concept_lab = random_labels(n, len(concepts), rng)
        tag_lab = random_labels(n, len(tags), rng)
        lines, paths = [], []
        for i in range(n):
            k += 1
            sub = ['actor', 'beach', 'zebra'][k % 3]
            fname = f'{k:04d}_{1000000 + k}.jpg'
            lines.append(f'{sub}\\{fname}')
            path = osp.join(root, 'Flickr', sub, fname)
            write_image(path, img_size, seed * 31 + k)
            paths.append(path)
        with open(osp.join(root, 'ImageList', f'{split}Imagelist.txt'),
                  'w') as f:
            f.write('\r\n'.join(lines) + '\r\n')
        for c, name in enumerate(concepts):
            with open(
                    osp.join(root, 'Groundtruth', 'TrainTestLabels',
                             f'Labels_{name}_{split}.txt'), 'w') as f:
                f.write(''.join(f'{int(v == 1)}\n' for v in concept_lab[:, c]))
        with open(osp.join(root, 'NUS_WID_Tags', f'{split}_Tags1k.dat'),
                  'w') as f:
            for row in tag_lab:
                f.write('\t'.join(str(int(v == 1)) for v in row) + '\t\n')
        key = split.lower()
        out['paths'][key] = paths
        out['concept_labels'][key] = concept_lab
        out['tag_labels'][key] = tag_lab
        out['seen_labels'][key] = tag_lab[:, [tags.index(t) for t in seen]]
    return out


#: Classes and labels of :func:`make_partial_annotation_files` (rows: a.jpg,
#: b.jpg, c.jpg).
PARTIAL_CLASSES = ['cat', 'dog', 'car']
PARTIAL_EXPECTED = np.array([[1, 0, -1], [0, 1, 0], [0, 0, 0]], np.int8)


def write_text(path, text: str) -> str:
    """Write ``text`` to ``path``; returns ``str(path)``."""
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def make_partial_annotation_images(root: str) -> None:
    """``<root>/img/{a,b,c}.jpg`` (16 x 16)."""
    for i, name in enumerate(('a.jpg', 'b.jpg', 'c.jpg')):
        write_image(osp.join(root, 'img', name), img_size=16, seed=i)


def make_partial_annotation_files(root: str):
    """The labels :data:`PARTIAL_EXPECTED` as a JSON (``ann.json``), a long
    CSV (``long.csv``) and a wide CSV (``wide.csv``) under ``root``; returns
    the three paths."""
    js = osp.join(root, 'ann.json')
    with open(js, 'w') as f:
        json.dump(dict(metainfo=dict(classes=PARTIAL_CLASSES), data_list=[
            dict(img_path='a.jpg', pos_label=[0], neg_label=['car']),
            dict(img_path='b.jpg', pos_label=['dog'], neg_label=[]),
            dict(img_path='c.jpg'),
        ]), f)
    long_csv = write_text(osp.join(root, 'long.csv'),
                          'img_path,class,label\na.jpg,cat,1\na.jpg,car,-1\n'
                          'b.jpg,dog,1\nb.jpg,cat,0\nc.jpg,car,0\n')
    wide_csv = write_text(osp.join(root, 'wide.csv'),
                          'img_path,pos,neg\na.jpg,cat,car\nb.jpg,dog,\n'
                          'c.jpg,,\n')
    return js, long_csv, wide_csv
