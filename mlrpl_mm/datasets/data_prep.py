"""Helpers of the data-preparation tools (``tools/data/``): dataset
construction from raw layouts, label statistics, checksums of derived files,
GloVe class embeddings."""
import hashlib
import os
import os.path as osp
import re
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

#: Raw-layout dataset types of the tools' ``--dataset`` option.
DATASET_TYPES = dict(coco='CocoMultiLabel', voc='VOCMultiLabel',
                     vg='VGMultiLabel', nus='NUSWideMultiLabel')


def build_raw_dataset(dataset: str, data_root: str, split: str, **kwargs):
    """One of our datasets from its raw layout (annotations only, no image is
    read). ``dataset`` is ``coco``, ``voc``, ``vg`` or ``nus``."""
    from mmpretrain.registry import DATASETS
    if dataset not in DATASET_TYPES:
        raise ValueError(f'dataset must be one of {sorted(DATASET_TYPES)}, '
                         f'got {dataset!r}')
    return DATASETS.build(dict(type=DATASET_TYPES[dataset],
                               data_root=data_root, split=split, **kwargs))


def sha256sum(path: str, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def record_checksums(paths: Iterable[str], manifest: str) -> Dict[str, str]:
    """Add / update the SHA-256 of ``paths`` in ``manifest``.

    The manifest uses the ``sha256sum`` format (``<hex>  <name>``, names
    relative to the manifest's directory), so ``sha256sum -c SHA256SUMS``
    verifies the files. Returns the whole manifest as a dict.
    """
    base = osp.dirname(osp.abspath(manifest))
    entries: Dict[str, str] = {}
    if osp.isfile(manifest):
        with open(manifest) as f:
            for line in f:
                m = re.match(r'^([0-9a-f]{64}) [ *](.+)$', line.rstrip('\n'))
                if m:
                    entries[m.group(2)] = m.group(1)
    for p in paths:
        entries[osp.relpath(osp.abspath(p), base)] = sha256sum(p)
    os.makedirs(base, exist_ok=True)
    with open(manifest, 'w') as f:
        for name in sorted(entries):
            f.write(f'{entries[name]}  {name}\n')
    return entries


def label_statistics(labels: np.ndarray) -> Dict:
    """Statistics of an (N, C) label matrix in {+1, -1, 0}.

    Returns:
        dict with ``num_images``, ``num_classes``, ``positives`` /
        ``negatives`` / ``unknown`` per class (int arrays), ``known_ratio``
        (fraction of known entries), ``positive_ratio`` (known positives over
        known entries), ``mean_positives_per_image`` and
        ``images_without_positive``.
    """
    y = np.asarray(labels)
    if y.ndim != 2:
        raise ValueError(f'labels must be (N, C), got shape {y.shape}')
    pos, neg, unk = (y == 1).sum(0), (y == -1).sum(0), (y == 0).sum(0)
    known = int(pos.sum() + neg.sum())
    return dict(
        num_images=int(y.shape[0]), num_classes=int(y.shape[1]),
        positives=pos, negatives=neg, unknown=unk,
        known_ratio=known / y.size if y.size else 0.0,
        positive_ratio=float(pos.sum()) / known if known else 0.0,
        mean_positives_per_image=float((y == 1).sum(1).mean())
        if y.shape[0] else 0.0,
        images_without_positive=int((~(y == 1).any(1)).sum()))


def format_statistics(stats: Dict, classes: Optional[Sequence[str]] = None,
                      title: str = '') -> str:
    """A printable table of :func:`label_statistics`."""
    C = stats['num_classes']
    classes = list(classes) if classes is not None else \
        [str(i) for i in range(C)]
    width = max([len(c) for c in classes] + [5])
    lines = [title] if title else []
    lines.append(f"images: {stats['num_images']}  classes: {C}  "
                 f"known ratio: {stats['known_ratio']:.4f}  "
                 f"positives/image: {stats['mean_positives_per_image']:.3f}  "
                 f"images without positive: "
                 f"{stats['images_without_positive']}")
    lines.append(f"{'class':<{width}}  {'pos':>8}  {'neg':>8}  {'unknown':>8}")
    for i, name in enumerate(classes):
        lines.append(f"{name:<{width}}  {stats['positives'][i]:>8d}  "
                     f"{stats['negatives'][i]:>8d}  {stats['unknown'][i]:>8d}")
    return '\n'.join(lines)


def read_lines(path: str) -> List[str]:
    """Non-empty stripped lines of a text file."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def glove_class_embeddings(class_names: Sequence[str], glove_file: str,
                           dim: Optional[int] = None) -> np.ndarray:
    """(C, d) class embeddings: the mean GloVe vector of the words of each
    class name (split on spaces, ``_`` and ``-``; lower-cased).

    Reads the GloVe text file once, keeping only the needed words.

    Raises:
        ValueError: a word of a class name is not in the file (named), or a
            line of the file is malformed (named).
    """
    words = {c: [w for w in re.split(r'[\s_\-]+', c.lower()) if w]
             for c in class_names}
    needed = {w for ws in words.values() for w in ws}
    vectors: Dict[str, np.ndarray] = {}
    with open(glove_file, encoding='utf8') as f:
        for lineno, line in enumerate(f, 1):
            word, _, rest = line.rstrip('\n').partition(' ')
            if word in needed and word not in vectors:
                try:
                    vec = np.array(rest.split(), dtype=np.float32)
                except ValueError:
                    raise ValueError(f'{glove_file}, line {lineno}: cannot '
                                     'parse the vector')
                if dim is not None and vec.size != dim:
                    raise ValueError(f'{glove_file}, line {lineno}: '
                                     f'{vec.size} values, expected {dim}')
                vectors[word] = vec
    missing = sorted(needed - set(vectors))
    if missing:
        raise ValueError(f'{glove_file} has no vector for {missing[:10]} '
                         f'({len(missing)} word(s) missing)')
    dims = {v.size for v in vectors.values()}
    if len(dims) != 1:
        raise ValueError(f'{glove_file}: vectors of different sizes {dims}')
    return np.stack([np.mean([vectors[w] for w in words[c]], 0)
                     for c in class_names]).astype(np.float32)


def _vg_image_name(entry: Dict) -> str:
    url = entry.get('image_url') or entry.get('url')
    if url:
        return osp.basename(str(url))
    return f"{int(entry['image_id'])}.jpg"


def _vg_object_name(obj: Dict, use_synsets: bool) -> Optional[str]:
    key = 'synsets' if use_synsets else 'names'
    values = obj.get(key)
    if values is None and not use_synsets and 'name' in obj:
        values = [obj['name']]
    if not values:
        return None
    name = str(values[0]).strip().lower()
    return name or None


def vg_categories_from_objects(objects: Sequence[Dict],
                               num_classes: int = 200,
                               count: str = 'instances',
                               use_synsets: bool = False,
                               source: str = 'objects.json',
                               progress: bool = False):
    """The VG-``C`` categories and per-image category sets of Visual
    Genome's ``objects.json``.

    Each object's category is its first name (lower-cased, stripped; or its
    first synset with ``use_synsets``). The ``num_classes`` most frequent
    categories are kept, ranked by ``count`` (``'instances'``: number of
    objects, ``'images'``: number of images containing it), ties broken by
    name, so the result is deterministic; class index = rank.

    Args:
        objects: The parsed ``objects.json`` (a list of
            ``{'image_id', 'objects': [...], 'image_url'?}``).
        source: File name used in error messages.

    Returns:
        ``(classes, image_names, image_categories)``: the C names (most
        frequent first), the image names (basename of ``image_url``, else
        ``<image_id>.jpg``) in file order, and per image the sorted list of
        its category indices.

    Raises:
        ValueError: malformed entries (the file and entry are named), a
            repeated image name, or fewer than ``num_classes`` categories.
    """
    from collections import Counter
    if count not in ('instances', 'images'):
        raise ValueError(f"count must be 'instances' or 'images', got "
                         f'{count!r}')
    if not isinstance(objects, list):
        raise ValueError(f'{source}: expected a JSON list of images, got '
                         f'{type(objects).__name__}')
    names: List[str] = []
    per_image: List[set] = []
    counter: Counter = Counter()
    it = objects
    if progress:
        from mmengine.utils import track_iter_progress
        it = track_iter_progress(objects)
    for k, entry in enumerate(it):
        if not isinstance(entry, dict) or 'objects' not in entry or \
                ('image_id' not in entry and 'image_url' not in entry):
            raise ValueError(f"{source}: entry {k} is not an image record "
                             "with 'image_id' and 'objects'")
        cats = []
        for obj in entry['objects']:
            if not isinstance(obj, dict):
                raise ValueError(f'{source}: entry {k} has a non-object '
                                 f'item in objects: {obj!r:.80}')
            c = _vg_object_name(obj, use_synsets)
            if c is not None:
                cats.append(c)
        names.append(_vg_image_name(entry))
        per_image.append(set(cats))
        counter.update(cats if count == 'instances' else set(cats))
    if len(set(names)) != len(names):
        dup = next(n for n, c in Counter(names).items() if c > 1)
        raise ValueError(f'{source}: image {dup!r} appears more than once')
    if len(counter) < num_classes:
        raise ValueError(f'{source}: only {len(counter)} categories, '
                         f'cannot keep {num_classes}')
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    classes = [name for name, _ in ranked[:num_classes]]
    index = {c: i for i, c in enumerate(classes)}
    image_categories = [sorted(index[c] for c in cats if c in index)
                        for cats in per_image]
    return classes, names, image_categories


def vg_split(image_names: Sequence[str], num_test: int = 10000,
             seed: int = 0):
    """A seeded train/test split of the VG image names (when the reference
    lists are not at hand): ``RandomState(seed).permutation(N)``, test = the
    first ``num_test`` of it; both parts keep the file order."""
    n = len(image_names)
    if not 0 < num_test < n:
        raise ValueError(f'num_test must be in (0, {n}), got {num_test}')
    perm = np.random.RandomState(seed).permutation(n)
    test = np.sort(perm[:num_test])
    train = np.sort(perm[num_test:])
    return ([image_names[i] for i in train], [image_names[i] for i in test])
