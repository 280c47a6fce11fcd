"""What to annotate next: rank the unknown (image, class) entries of a
partially labelled training set, and merge the answers back.

Priority of an unknown entry (i, c), with p the model's score:

- uncertainty: :math:`u = 1 - 2\\,|p - 0.5|` in [0, 1] (1 at p = 0.5);
- disagreement (methods with pseudo labels, HST's IST / CST): with the votes
  :math:`v_k \\in \\{0, 1\\}` of the model (p > 0.5) and of each pseudo-label
  branch (pseudo score > 0), :math:`d = 1 - |\\frac{1}{V}\\sum_k (2 v_k - 1)|`
  in [0, 1] (0 when all agree);
- priority :math:`u + d` (``strategy='uncertainty'``); the entries with the
  largest priority first (ties: image order, then class order).

Other strategies (``rank_unknown_entries(strategy=...)``):

- ``'positive'``: priority :math:`p` (likely positives first). Positives are
  rare in multi-label data, so K random entries are mostly negatives, while
  partial BCE learns most from a new positive;
- ``'rare-positive'``: priority :math:`p / (1 + n_c)` with :math:`n_c` the
  number of known positives of class c (likely positives of the classes with
  the fewest known positives first; mAP averages the classes);
- ``'random'``: uniform over the unknown entries.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mlrpl_mm.datasets.base_multi_label import LABEL_DTYPE
from mlrpl_mm.datasets.partial_annotation_io import (load_partial_annotations,
                                                     save_partial_annotations)
from mlrpl_mm.utils.checks import check_choice


def entry_priority(scores: np.ndarray,
                   votes: Optional[np.ndarray] = None) -> np.ndarray:
    """(N, C) priority ``u + d`` of every entry (see the module doc).

    Args:
        scores: (N, C) probabilities in [0, 1].
        votes: optional (V, N, C) bool pseudo-positive votes of V branches;
            the model's own vote (p > 0.5) is added.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f'scores must be (N, C), got {scores.shape}')
    if np.isnan(scores).any() or scores.min() < 0 or scores.max() > 1:
        raise ValueError('scores must be probabilities in [0, 1] (the '
                         "head's pred_score with a sigmoid activation)")
    priority = 1 - 2 * np.abs(scores - 0.5)
    if votes is not None and len(votes):
        votes = np.asarray(votes, dtype=bool)
        if votes.shape[1:] != scores.shape:
            raise ValueError(f'votes have shape {votes.shape}, expected '
                             f'(V, {scores.shape[0]}, {scores.shape[1]})')
        allv = np.concatenate([votes, (scores > 0.5)[None]], 0)
        priority = priority + 1 - np.abs((2 * allv - 1).mean(0))
    return priority


STRATEGIES = ('positive', 'rare-positive', 'uncertain-positive',
              'uncertainty', 'random')
# the best measured on the demo data (docs/own_data.md, "Does it beat random
# entries?"): uncertainty + positive probability, classes taking turns; ahead
# of K random entries on held-out masks with the convex cheap model
# (tests/test_benchmarks/test_bench_suggest_labels.py)
DEFAULT_STRATEGY = 'uncertain-positive'
DEFAULT_BALANCE = 'class'


def rank_unknown_entries(scores: np.ndarray,
                         partial: np.ndarray,
                         budget: int,
                         votes: Optional[np.ndarray] = None,
                         strategy: str = DEFAULT_STRATEGY,
                         seed: int = 0,
                         balance: str = DEFAULT_BALANCE) -> Tuple[np.ndarray,
                                                          np.ndarray]:
    """The ``budget`` unknown entries to annotate next.

    Args:
        scores: (N, C) model probabilities on the training images.
        partial: (N, C) partial labels (0 = unknown).
        budget: K, the number of entries.
        votes: optional (V, N, C) pseudo-positive votes (disagreement term).
        strategy: one of :data:`STRATEGIES` (see the module doc);
            ``'random'``: uniform over the unknown entries (``seed``).
            Default: :data:`DEFAULT_STRATEGY`.
        balance: ``'none'``: the global priority order; ``'class'``
            (:data:`DEFAULT_BALANCE`): the classes take turns, each giving
            its highest-priority entry left (round r holds the r-th best
            entry of every class, best first), so that the budget is spread
            over the classes (mAP averages them) instead of going to the
            classes the model is least sure about. Measured on the demo data
            in docs/own_data.md (benchmarks/bench_suggest_labels.py).

    Returns:
        ``(entries, priority)``: (K, 2) int64 ``(row, class)`` pairs, best
        first, and their (K,) priorities (NaN for ``'random'``); fewer than
        K when fewer entries are unknown.
    """
    partial = np.asarray(partial)
    if partial.shape != np.shape(scores):
        raise ValueError(f'scores {np.shape(scores)} and partial labels '
                         f'{partial.shape} differ in shape')
    if budget < 1:
        raise ValueError(f'budget must be >= 1, got {budget}')
    unknown = np.argwhere(partial == 0)
    if strategy == 'random':
        rng = np.random.RandomState(seed)
        pick = rng.choice(len(unknown), min(budget, len(unknown)),
                          replace=False)
        return unknown[pick], np.full(len(pick), np.nan)
    check_choice('strategy', strategy, STRATEGIES, one_of=True)
    check_choice('balance', balance, ('class', 'none'))
    if strategy == 'uncertainty':
        full = entry_priority(scores, votes)
    elif strategy == 'uncertain-positive':
        full = entry_priority(scores, votes) + np.asarray(scores, np.float64)
    else:
        entry_priority(scores)        # checks the scores
        full = np.asarray(scores, np.float64)
        if strategy == 'rare-positive':
            full = full / (1 + (partial == 1).sum(0))[None]
    pri = full[unknown[:, 0], unknown[:, 1]]
    order = np.argsort(-pri, kind='stable')
    if balance == 'class':
        # rank of each entry within its class, then (rank, -priority)
        cls = unknown[order, 1]
        rank = np.empty(len(order), np.int64)
        for c in np.unique(cls):
            where = np.flatnonzero(cls == c)
            rank[where] = np.arange(len(where))
        order = order[np.lexsort((np.arange(len(order)), rank))]
    order = order[:budget]
    return unknown[order], pri[order]


@torch.no_grad()
def pseudo_label_votes(inferencer, img_paths: Sequence[str],
                       partial: np.ndarray,
                       batch_size: int = 8) -> Tuple[np.ndarray, List[str]]:
    """(V, N, C) pseudo-positive votes of the head's pseudo-label branches
    and their names; V = 0 for a head without pseudo labels.

    HST (``HSTHead``): IST (``ist.pseudo_scores(q, y) > 0``, from the known
    positives y of each image) and CST (``cst.pseudo_scores(f) > 0``, when
    the checkpoint holds prototypes), as in training.
    """
    from mmengine.dataset import pseudo_collate
    head = inferencer.head
    names = []
    if getattr(head, 'ist', None) is not None:
        names.append('ist')
    cst = getattr(head, 'cst', None)
    if cst is not None and getattr(cst, 'has_prototypes', False):
        names.append('cst')
    if not names or not hasattr(head, 'trunk'):
        return np.zeros((0, ) + partial.shape, bool), []
    from mlrpl_mm.models.heads.head_utils import last_feature
    model = inferencer.model
    out = {n: [] for n in names}
    for i in range(0, len(img_paths), batch_size):
        batch = [inferencer._load(p) for p in img_paths[i:i + batch_size]]
        data = model.data_preprocessor(pseudo_collate(batch), False)
        feats = model.extract_feat(data['inputs'])
        f = head.trunk(last_feature(feats))['f']
        y = torch.as_tensor(partial[i:i + batch_size], dtype=torch.float32,
                            device=f.device)
        if 'ist' in out:
            out['ist'].append((head.ist.pseudo_scores(head.ist(f), y) > 0
                               ).cpu().numpy())
        if 'cst' in out:
            out['cst'].append((cst.pseudo_scores(f) > 0).cpu().numpy())
    return np.stack([np.concatenate(out[n]) for n in names]), names


def merge_answers(ann_file: str, answers: str, out: str,
                  overwrite_known: bool = False) -> Dict[str, int]:
    """Merge annotated entries into a partial annotation JSON.

    Args:
        ann_file: The training annotations (JSON or CSV of
            :func:`load_partial_annotations`; its classes are used).
        answers: CSV ``img_path,class,label`` (the suggestions with the label
            column filled in: 1, -1; empty or 0 = not answered, skipped).
        out: The merged JSON.
        overwrite_known: Let an answer replace a different known label.
            Defaults to False (an error names the entry).

    Returns:
        Counts: ``answered``, ``new`` (unknown -> known), ``same``,
        ``changed``.

    Raises:
        ValueError: an image of the answers not in ``ann_file``, an unknown
            class, a contradiction with a known label, a malformed answer.
    """
    paths, labels, classes = load_partial_annotations(ann_file)
    rows = {p: i for i, p in enumerate(paths)}
    a_paths, a_labels, _ = load_partial_annotations(answers, classes)
    labels = labels.copy()
    counts = dict(answered=0, new=0, same=0, changed=0)
    for p, row in zip(a_paths, a_labels):
        if not (row != 0).any():
            continue
        if p not in rows:
            raise ValueError(f'{answers}: image {p!r} is not in {ann_file} '
                             '(answer the suggestions of this training set)')
        r = rows[p]
        for c in np.flatnonzero(row != 0):
            counts['answered'] += 1
            old = labels[r, c]
            if old == 0:
                counts['new'] += 1
            elif old == row[c]:
                counts['same'] += 1
                continue
            else:
                if not overwrite_known:
                    raise ValueError(
                        f'{answers}: {p!r}, class {classes[c]!r}: the answer '
                        f'{int(row[c])} contradicts the known label '
                        f'{int(old)} of {ann_file} (fix one of them, or '
                        'pass --overwrite-known)')
                counts['changed'] += 1
            labels[r, c] = row[c]
    save_partial_annotations(out, paths, labels.astype(LABEL_DTYPE), classes)
    return counts
