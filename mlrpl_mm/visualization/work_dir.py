"""Read what a training run left in its work dir: config, per-class AP,
label graph (for the plot scripts of ``tools/analysis``)."""
import glob
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def find_work_dir_config(work_dir: str) -> str:
    """The config mmengine dumped into ``work_dir`` (``<name>.py`` at its
    top level; the newest one when there are several).

    Raises:
        FileNotFoundError: names the work dir when it holds no ``*.py``.
    """
    files = sorted(glob.glob(osp.join(work_dir, '*.py')), key=osp.getmtime)
    if not files:
        raise FileNotFoundError(
            f'no config (*.py) at the top of the work dir {work_dir!r}; give '
            'the config file instead')
    return files[-1]


def find_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named in ``work_dir/last_checkpoint`` (or None)."""
    last = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(last):
        return None
    with open(last) as f:
        path = f.read().strip()
    if not osp.isfile(path):
        # the work dir was moved: look next to last_checkpoint
        path = osp.join(work_dir, osp.basename(path))
    return path if osp.isfile(path) else None


def load_per_class_ap(path: str) -> Tuple[np.ndarray, List[str], str]:
    """Per-class AP (percent) and class names of a run.

    ``path`` is either
    - a ``per_class_ap*.json`` written by :class:`MultiLabelMAP`
      (``dump_per_class_ap=True`` or ``per_class_ap_file``; keys ``ap``,
      ``classes``, ``ap_style``), or a work dir holding one (the newest,
      searched recursively), or
    - a ``.pkl`` of predictions dumped by ``tools/test.py --out FILE``
      (every sample's ``pred_score`` and ``full_label``): AP is computed
      here with the VOC (interpolated) definition; class names are indices.

    Returns:
        (AP (C,) with NaN for a class without positive, class names, source).

    Raises:
        FileNotFoundError: a work dir without per-class AP file (the message
            says how to write one).
        KeyError / ValueError: a malformed file (named in the message).
    """
    if osp.isdir(path):
        files = sorted(glob.glob(osp.join(path, '**', 'per_class_ap*.json'),
                                 recursive=True), key=osp.getmtime)
        if not files:
            raise FileNotFoundError(
                f'no per_class_ap*.json under {path!r}: train or test with '
                '--cfg-options val_evaluator.dump_per_class_ap=True '
                '(test_evaluator.dump_per_class_ap=True for tools/test.py), '
                'or pass the .pkl of tools/test.py --out')
        path = files[-1]
    if not osp.isfile(path):
        raise FileNotFoundError(f'per-class AP source not found: {path!r}')
    if path.endswith('.pkl'):
        return _ap_from_predictions(path) + (path, )
    import json
    with open(path) as f:
        data = json.load(f)
    for key in ('ap', 'classes'):
        if key not in data:
            raise KeyError(f'{path}: no {key!r} key (expected the JSON of '
                           'MultiLabelMAP: ap, classes, ap_style)')
    ap = np.array([np.nan if v is None else float(v) for v in data['ap']])
    if len(ap) != len(data['classes']):
        raise ValueError(f"{path}: {len(ap)} AP values for "
                         f"{len(data['classes'])} classes")
    return ap, [str(c) for c in data['classes']], path


def _ap_from_predictions(path: str) -> Tuple[np.ndarray, List[str]]:
    from mlrpl_mm.evaluation.metrics import average_precision
    from mlrpl_mm.utils.safe_pickle import safe_pickle_load
    preds = safe_pickle_load(path)  # plain data only: refuses code
    if not isinstance(preds, (list, tuple)) or not preds:
        raise ValueError(f'{path}: expected a list of predictions')
    scores, targets = [], []
    for i, p in enumerate(preds):
        for key in ('pred_score', 'full_label'):
            if key not in p:
                raise KeyError(f'{path}: prediction {i} has no {key!r} '
                               '(pack full_label in the test pipeline)')
        scores.append(np.asarray(p['pred_score'], dtype=np.float64))
        targets.append(np.asarray(p['full_label']))
    scores, targets = np.stack(scores), np.stack(targets)
    ap = np.array([average_precision(scores[:, c], targets[:, c], 'voc')
                   for c in range(scores.shape[1])]) * 100
    return ap, [str(c) for c in range(scores.shape[1])]


def adjacency_from_checkpoint(checkpoint: str, key: Optional[str] = None
                              ) -> Tuple[Optional[np.ndarray], Optional[str],
                                         Dict]:
    """The label graph stored in a checkpoint's head buffer.

    Looks for the state-dict entry ``key``, or else the first square 2-d
    entry whose name ends with ``adj`` (e.g. ``head.trunk.adj`` of
    :class:`SemanticTrunk`, filled by :class:`LabelGraphHook`).

    Returns:
        (graph (C, C) or None when absent, its key, checkpoint meta).
    """
    import torch

    from mlrpl_mm.utils.checkpoint import safe_torch_load
    ckpt = safe_torch_load(checkpoint, map_location='cpu')
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else {}
    meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    names = [key] if key is not None else [
        k for k in state if k.split('.')[-1] in ('adj', 'adjacency')]
    if key is not None and key not in state:
        raise KeyError(f'{checkpoint}: no state-dict entry {key!r}')
    for name in names:
        t = state[name]
        if torch.is_tensor(t) and t.dim() == 2 and t.shape[0] == t.shape[1]:
            return t.float().numpy(), name, meta or {}
    return None, None, meta or {}


def label_graph_from_config(config: str,
                            cfg_options: Optional[Dict] = None
                            ) -> Tuple[np.ndarray, List[str]]:
    """Co-occurrence graph of the known labels of a config's training set.

    Builds ``train_dataloader.dataset`` (with its partial-label protocol)
    and applies :func:`mlrpl_mm.datasets.cooccurrence_graph` to
    :func:`mlrpl_mm.datasets.get_partial_labels`, i.e.
    :math:`A_{ij} = \\#\\{y_i = y_j = +1\\} / \\#\\{y_i = +1\\}` over the
    known positives (the graph :class:`LabelGraphHook` gives the model).

    Returns:
        (A (C, C) float32, class names).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS

    import mlrpl_mm  # noqa: F401
    from mlrpl_mm.datasets import cooccurrence_graph, get_partial_labels
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    if cfg.get('train_dataloader', None) is None:
        raise KeyError(f'{config}: no train_dataloader')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    adj = cooccurrence_graph(get_partial_labels(dataset))
    classes = [str(c) for c in dataset.metainfo.get(
        'classes', range(adj.shape[0]))]
    return adj, classes


def class_names_from_meta(meta: Dict, num_classes: int) -> List[str]:
    """Class names from a checkpoint's ``meta.dataset_meta`` or indices."""
    classes: Optional[Sequence] = (meta.get('dataset_meta') or {}).get(
        'classes')
    if classes is not None and len(classes) == num_classes:
        return [str(c) for c in classes]
    return [str(i) for i in range(num_classes)]
