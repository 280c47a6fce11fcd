"""mAP and CP/CR/CF1/OP/OR/OF1 for multi-label recognition with ignored
entries (target 0)."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmpretrain.registry import METRICS

from mlrpl_mm.utils.checks import check_choice

AP_STYLES = ('voc', 'sklearn')


def _to_numpy(x) -> np.ndarray:
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def average_precision(scores: np.ndarray,
                      targets: np.ndarray,
                      style: str = 'voc') -> float:
    r"""Average precision of one class; entries with target 0 are ignored.

    Rank the known entries by decreasing score; with :math:`P` positives,
    precision :math:`p_k` and recall :math:`r_k` at rank k:

    - ``'voc'`` (the SSGRL/SST/HST reference, all points interpolated):
      :math:`\tilde p_k = \max_{j \ge k} p_j` (the envelope) and
      :math:`AP = \sum_k (r_k - r_{k-1})\, \tilde p_k`, :math:`r_0 = 0`,
      i.e. the envelope averaged over the ranks of the positives. Every rank
      is a point; tied scores keep the dataset order (stable sort).
    - ``'sklearn'`` (non-interpolated):
      :math:`AP = \sum_k (r_k - r_{k-1})\, p_k` over the distinct score
      thresholds (ties grouped), computed by scikit-learn's
      :func:`sklearn.metrics.average_precision_score` on the known entries.

    Args:
        scores: (N,) scores.
        targets: (N,) in {+1, -1, 0}; 0 = ignored.
        style: ``'voc'`` or ``'sklearn'``.

    Returns:
        AP in [0, 1]; NaN when there is no positive.
    """
    check_choice('ap_style', style, AP_STYLES, one_of=True)
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    known = targets != 0
    scores, pos = scores[known], targets[known] == 1
    n_pos = int(pos.sum())
    if n_pos == 0:
        return float('nan')
    if style == 'voc':
        order = np.argsort(-scores, kind='stable')
        pos = pos[order]
        precision = np.cumsum(pos, dtype=np.float64) / np.arange(
            1, len(pos) + 1, dtype=np.float64)
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        return float(envelope[pos].sum() / n_pos)
    # imported here: scipy (under sklearn) registers its own classes with
    # copyreg on import, and ``import mlrpl_mm`` changes nothing global
    from sklearn.metrics import average_precision_score
    return float(average_precision_score(pos, scores))


def multilabel_prf(scores: np.ndarray,
                   targets: np.ndarray,
                   thr: Optional[float] = 0.5,
                   topk: Optional[int] = None) -> Dict[str, float]:
    r"""CP, CR, CF1, OP, OR, OF1 (in [0, 1]) over the known entries.

    A prediction is positive when its score is ``>= thr`` (``topk=None``) or
    when it is among the ``topk`` highest scores of its image. With
    :math:`N^{tp}_c, N^{p}_c, N^{g}_c` the true-positive, predicted and
    ground-truth positive counts of class c (entries with target 0 ignored):
    :math:`CP = \frac1C \sum_c N^{tp}_c / N^p_c`,
    :math:`CR = \frac1C \sum_c N^{tp}_c / N^g_c`,
    :math:`OP = \sum_c N^{tp}_c / \sum_c N^p_c`,
    :math:`OR = \sum_c N^{tp}_c / \sum_c N^g_c`, F1 = harmonic mean; a ratio
    with a zero denominator counts 0.

    Args:
        scores: (N, C) scores.
        targets: (N, C) in {+1, -1, 0}.
        thr: Threshold (used when ``topk`` is None).
        topk: Number of top-ranked classes per image predicted positive.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if topk is not None:
        k = min(int(topk), scores.shape[1])
        top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
        pred = np.zeros(scores.shape, bool)
        np.put_along_axis(pred, top, True, axis=1)
    else:
        pred = scores >= thr
    known = targets != 0
    gt = targets == 1
    pred = pred & known
    n_tp = (pred & gt).sum(0).astype(np.float64)
    n_pred = pred.sum(0).astype(np.float64)
    n_gt = gt.sum(0).astype(np.float64)

    def div(a, b):
        return np.divide(
            a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    def f1(p, r):
        return 2 * p * r / (p + r) if p + r > 0 else 0.0

    cp, cr = float(div(n_tp, n_pred).mean()), float(div(n_tp, n_gt).mean())
    op = float(div(n_tp.sum(), n_pred.sum()))
    orr = float(div(n_tp.sum(), n_gt.sum()))
    return dict(CP=cp, CR=cr, CF1=f1(cp, cr), OP=op, OR=orr, OF1=f1(op, orr))


@METRICS.register_module()
class MultiLabelMAP(BaseMetric):
    """mAP (``voc`` or ``sklearn`` AP) and CP/CR/CF1/OP/OR/OF1 at a threshold
    and at top-k, in percent.

    Reads ``pred_score`` (C,) and the label field ``label_key`` (default
    ``'full_label'``: +1 / -1 / 0 ignored) of every data sample; a sample
    without that field falls back to ``gt_label`` (positive indices, every
    other class negative). Entries with target 0 are ignored for their class.
    Every image counts once: results are de-duplicated by ``(sample_idx,
    img_path)`` (besides mmengine's truncation of the distributed sampler's
    padding); the path keeps the images of concatenated test sets apart.

    Logged keys (prefix ``multi-label``): ``mAP_<ap_style>``, ``CP``, ``CR``,
    ``CF1``, ``OP``, ``OR``, ``OF1`` (threshold ``thr``) and the same with the
    suffix ``_top<k>``. Per-class AP (percent, NaN for an excluded class) is
    kept in :attr:`per_class_ap` after each evaluation, with the class names in
    :attr:`per_class_names` (:attr:`num_images`: the images evaluated), and
    written as JSON to ``per_class_ap_file`` (or
    to ``per_class_ap_<style>.json`` in the run's log directory when
    ``dump_per_class_ap=True``).

    Args:
        ap_style (str): ``'voc'`` (interpolated, the SSGRL-family reference)
            or ``'sklearn'`` (non-interpolated). Defaults to ``'voc'``.
        no_positive (str): A class without any positive: ``'zero'`` (AP 0,
            still averaged: the SPML convention) or ``'exclude'`` (left out of
            the mean). Defaults to ``'zero'``.
        thr (float): Score threshold of CP..OF1. Defaults to 0.5.
        topk (int, optional): k of the top-k metrics. Defaults to 3.
        label_key (str): Data sample field of the targets.
            Defaults to ``'full_label'``.
        per_class_ap_file (str, optional): JSON file for per-class AP.
        dump_per_class_ap (bool): Write the JSON into the log directory when
            ``per_class_ap_file`` is None. Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'multi-label'``.
    """
    default_prefix: Optional[str] = 'multi-label'

    def __init__(self,
                 ap_style: str = 'voc',
                 no_positive: str = 'zero',
                 thr: float = 0.5,
                 topk: Optional[int] = 3,
                 label_key: str = 'full_label',
                 per_class_ap_file: Optional[str] = None,
                 dump_per_class_ap: bool = False,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        check_choice('ap_style', ap_style, AP_STYLES, 'MultiLabelMAP',
                     one_of=True)
        check_choice('no_positive', no_positive, ('zero', 'exclude'),
                     'MultiLabelMAP')
        self.ap_style = ap_style
        self.no_positive = no_positive
        self.thr = thr
        self.topk = topk
        self.label_key = label_key
        self.per_class_ap_file = per_class_ap_file
        self.dump_per_class_ap = dump_per_class_ap
        self.per_class_ap: Optional[np.ndarray] = None
        self.num_images: Optional[int] = None
        self.per_class_names: Optional[List[str]] = None

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            if 'pred_score' not in ds:
                raise KeyError(
                    'MultiLabelMAP: a data sample has no '
                    "'pred_score'; the head's predict() must set it")
            score = _to_numpy(ds['pred_score']).astype(np.float32)
            if self.label_key in ds:
                target = _to_numpy(ds[self.label_key]).astype(np.int8)
            elif 'gt_label' in ds:
                target = -np.ones(score.shape, np.int8)
                idx = _to_numpy(ds['gt_label']).astype(np.int64).reshape(-1)
                target[idx] = 1
            else:
                raise KeyError(
                    f'MultiLabelMAP: a data sample has neither '
                    f"'{self.label_key}' nor 'gt_label'; pack it with "
                    f"PackInputs(algorithm_keys=['{self.label_key}'])")
            if target.shape != score.shape:
                raise ValueError(
                    f'MultiLabelMAP: class-count mismatch: pred_score has '
                    f'shape {score.shape} but {self.label_key} has shape '
                    f"{target.shape}; the model's num_classes must equal "
                    "the dataset's")
            self.results.append(
                dict(
                    score=score,
                    target=target,
                    sample_idx=int(ds['sample_idx'])
                    if 'sample_idx' in ds else None,
                    img_path=str(ds['img_path'])
                    if ds.get('img_path') is not None else ''))

    @staticmethod
    def _key(result: dict):
        """Identity of an image: ``(sample_idx, img_path)``. The path
        keeps apart the images of a ``ConcatDataset``, whose sub-datasets
        each number their samples from 0."""
        return (result['sample_idx'], result.get('img_path', ''))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        seen, kept = set(), []
        for r in results:
            if r.get('sample_idx') is not None:
                key = self._key(r)
                if key in seen:
                    continue
                seen.add(key)
            kept.append(r)
        if all(r.get('sample_idx') is not None for r in kept):
            kept.sort(key=self._key)
        self.num_images = len(kept)
        scores = np.stack([r['score'] for r in kept])
        targets = np.stack([r['target'] for r in kept])
        metrics = self.compute(scores, targets)
        self._dump()
        return metrics

    def compute(self, scores: np.ndarray,
                targets: np.ndarray) -> Dict[str, float]:
        """All metrics (percent) of (N, C) scores and {+1, -1, 0} targets;
        stores :attr:`per_class_ap`."""
        scores, targets = np.asarray(scores), np.asarray(targets)
        ap = np.array([
            average_precision(scores[:, c], targets[:, c], self.ap_style)
            for c in range(scores.shape[1])
        ]) * 100
        empty = np.isnan(ap)
        if self.no_positive == 'zero':
            ap[empty] = 0.0
        self.per_class_ap = ap
        classes = (self.dataset_meta or {}).get('classes')
        self.per_class_names = list(classes) if classes is not None and \
            len(classes) == len(ap) else [str(c) for c in range(len(ap))]
        if empty.any():
            print_log(
                f'MultiLabelMAP: {int(empty.sum())} class(es) without '
                f'a positive ({self.no_positive})',
                logger='current')
        valid = ap[~np.isnan(ap)]
        metrics = {
            f'mAP_{self.ap_style}': float(valid.mean()) if valid.size else 0.0
        }
        for k, v in multilabel_prf(scores, targets, thr=self.thr).items():
            metrics[k] = v * 100
        if self.topk:
            for k, v in multilabel_prf(
                    scores, targets, topk=self.topk).items():
                metrics[f'{k}_top{self.topk}'] = v * 100
        return metrics

    def _dump(self) -> None:
        path = self.per_class_ap_file
        if path is None and self.dump_per_class_ap:
            log_file = getattr(MMLogger.get_current_instance(), 'log_file',
                               None)
            if log_file:
                path = osp.join(
                    osp.dirname(log_file),
                    f'per_class_ap_{self.ap_style}.json')
        if path is None or self.per_class_ap is None:
            return
        if osp.dirname(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
        ap = [None if np.isnan(v) else float(v) for v in self.per_class_ap]
        with open(path, 'w') as f:
            json.dump(
                dict(
                    ap_style=self.ap_style,
                    classes=self.per_class_names,
                    ap=ap),
                f,
                indent=1)
