"""Visual Genome categories from the raw ``objects.json``, and the seeded
train/test split of its images (``tools/data/prepare_vg.py``)."""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from mlrpl_mm.utils.checks import check_choice


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
    check_choice('count', count, ('instances', 'images'))
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
