"""Helpers of the data-preparation tools (``tools/data/``): our datasets
built from their raw layouts, SHA-256 manifests of the derived files, and
class-name text files.

The tools' other helpers have their own modules: label statistics in
:mod:`.label_stats`, GloVe class embeddings in :mod:`.glove_embeddings`,
Visual Genome categories in :mod:`.vg_categories`; their names stay
importable from here.
"""
import hashlib
import os
import os.path as osp
import re
from typing import Dict, Iterable, List

from mlrpl_mm.utils.checks import check_choice

from .glove_embeddings import glove_class_embeddings  # noqa: F401
from .label_stats import format_statistics, label_statistics  # noqa: F401
from .vg_categories import vg_categories_from_objects, vg_split  # noqa: F401

#: Raw-layout dataset types of the tools' ``--dataset`` option.
DATASET_TYPES = dict(coco='CocoMultiLabel', voc='VOCMultiLabel',
                     vg='VGMultiLabel', nus='NUSWideMultiLabel')


def build_raw_dataset(dataset: str, data_root: str, split: str, **kwargs):
    """One of our datasets from its raw layout (annotations only, no image is
    read). ``dataset`` is ``coco``, ``voc``, ``vg`` or ``nus``."""
    from mmpretrain.registry import DATASETS
    check_choice('dataset', dataset, sorted(DATASET_TYPES), one_of=True)
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


def read_lines(path: str) -> List[str]:
    """Non-empty stripped lines of a text file."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]
