"""ZSL / GZSL metrics of zero-shot multi-label recognition (mAP, F1@k)."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from mlrpl_mm.utils.checks import check_choice
from .multi_label_map import _to_numpy, average_precision, multilabel_prf


def zero_shot_scores(scores: np.ndarray, targets: np.ndarray,
                     topks: Sequence[int] = (3, 5), ap_style: str = 'sklearn',
                     no_positive: str = 'zero') -> Dict[str, float]:
    r"""mAP and top-k precision / recall / F1 (percent) of (N, C) scores.

    mAP: mean over classes of AP (``ap_style``; entries with target 0
    ignored). A class without any positive: ``no_positive='zero'``
    (default, the SigRL reference's ``compute_AP``: AP 0, still in the
    mean over all C classes) or ``'exclude'`` (left out of the mean). F1@k (the
    zero-shot MLR protocol of Huynh & Elhamifar / LESA / BiAM): the k
    top-scored classes of each image are predicted positive;
    :math:`P@k = \sum TP / \sum \#pred`, :math:`R@k = \sum TP / \sum \#gt`
    over all images, :math:`F1@k = 2PR / (P + R)`.
    """
    ap = np.array([average_precision(scores[:, c], targets[:, c], ap_style)
                   for c in range(scores.shape[1])]) * 100
    if no_positive == 'zero':
        ap = np.nan_to_num(ap, nan=0.0)
    valid = ap[~np.isnan(ap)]
    out = {'mAP': float(valid.mean()) if valid.size else 0.0}
    for k in topks:
        prf = multilabel_prf(scores, targets, topk=k)
        out[f'P@{k}'] = prf['OP'] * 100
        out[f'R@{k}'] = prf['OR'] * 100
        out[f'F1@{k}'] = prf['OF1'] * 100
    return out


@METRICS.register_module()
class ZeroShotMultiLabelMetric(BaseMetric):
    """ZSL and GZSL evaluation in one pass.

    Reads ``full_label`` (C_test,) and ``pred_score`` (C_test,) of every
    sample, and for ``mode='both'`` also ``zsl_pred_score`` (|U|,), the
    scores of :class:`SigRLHead` over the unseen classes alone
    (``zsl_class_indices``):

    - ``'zsl'``: the test label set is the unseen classes; ``pred_score`` is
      the ZSL score. Keys ``ZSL_mAP``, ``ZSL_F1@3``...
    - ``'gzsl'``: the test label set is seen + unseen. Keys ``GZSL_*``.
    - ``'both'``: GZSL from ``pred_score`` and ZSL from ``zsl_pred_score``
      against the ``zsl_indices`` columns of ``full_label``.

    Args:
        mode (str): ``'zsl'``, ``'gzsl'`` or ``'both'``. Defaults to
            ``'both'``.
        zsl_indices (list[int], optional): Unseen columns of the test labels
            (``mode='both'``; the same list as the head's
            ``zsl_class_indices``). Defaults to None: the positions of the
            dataset's ``metainfo['unseen_classes']`` in its ``classes``.
        topks (list[int]): k of F1@k. Defaults to (3, 5).
        ap_style (str): ``'sklearn'`` (default) or ``'voc'``.
        no_positive (str): A test class without positive: ``'zero'``
            (default, the reference: AP 0 averaged into ZSL / GZSL mAP) or
            ``'exclude'`` (left out of the mean).
        collect_device (str): Defaults to ``'cpu'``.
        prefix (str, optional): Defaults to ``'zero-shot'``.
    """
    default_prefix: Optional[str] = 'zero-shot'

    def __init__(self, mode: str = 'both',
                 zsl_indices: Optional[Sequence[int]] = None,
                 topks: Sequence[int] = (3, 5), ap_style: str = 'sklearn',
                 no_positive: str = 'zero', collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        check_choice('mode', mode, ('zsl', 'gzsl', 'both'),
                     'ZeroShotMultiLabelMetric')
        check_choice('no_positive', no_positive, ('zero', 'exclude'))
        self.mode = mode
        self.zsl_indices = None if zsl_indices is None else \
            [int(i) for i in zsl_indices]
        self.topks = tuple(int(k) for k in topks)
        self.ap_style = ap_style
        self.no_positive = no_positive

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for ds in data_samples:
            for key in ('pred_score', 'full_label'):
                if key not in ds:
                    raise KeyError(f'ZeroShotMultiLabelMetric: a data sample '
                                   f'has no {key!r}')
            score = _to_numpy(ds['pred_score']).astype(np.float32)
            target = _to_numpy(ds['full_label']).astype(np.int8)
            if score.shape != target.shape:
                raise ValueError(
                    f'ZeroShotMultiLabelMetric: pred_score {score.shape} vs '
                    f'full_label {target.shape}: the head\'s test classes '
                    'must be the test dataset\'s classes')
            res = dict(score=score, target=target,
                       sample_idx=ds.get('sample_idx'))
            if self.mode == 'both':
                if 'zsl_pred_score' not in ds:
                    raise KeyError("ZeroShotMultiLabelMetric(mode='both') "
                                   "needs 'zsl_pred_score': set the head's "
                                   'zsl_class_indices')
                res['zsl_score'] = _to_numpy(ds['zsl_pred_score']).astype(
                    np.float32)
            self.results.append(res)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        seen, kept = set(), []
        for r in results:
            key = r.get('sample_idx')
            if key is not None and key in seen:
                continue
            seen.add(key)
            kept.append(r)
        scores = np.stack([r['score'] for r in kept])
        targets = np.stack([r['target'] for r in kept])
        kw = dict(topks=self.topks, ap_style=self.ap_style,
                  no_positive=self.no_positive)
        out = {}
        if self.mode == 'zsl':
            sets = {'ZSL': (scores, targets)}
        elif self.mode == 'gzsl':
            sets = {'GZSL': (scores, targets)}
        else:
            zsl = np.stack([r['zsl_score'] for r in kept])
            zsl_indices = self._zsl_indices()
            if zsl.shape[1] != len(zsl_indices):
                raise ValueError(
                    f'ZeroShotMultiLabelMetric: zsl_pred_score has '
                    f'{zsl.shape[1]} classes but zsl_indices '
                    f'{len(zsl_indices)}')
            sets = {'ZSL': (zsl, targets[:, zsl_indices]),
                    'GZSL': (scores, targets)}
        for name, (s, t) in sets.items():
            for k, v in zero_shot_scores(s, t, **kw).items():
                out[f'{name}_{k}'] = v
        return out

    def _zsl_indices(self) -> List[int]:
        if self.zsl_indices is not None:
            return self.zsl_indices
        meta = self.dataset_meta or {}
        classes, unseen = meta.get('classes'), meta.get('unseen_classes')
        if not classes or not unseen:
            raise ValueError("ZeroShotMultiLabelMetric(mode='both'): give "
                             'zsl_indices, or evaluate a dataset whose '
                             "metainfo has 'classes' and 'unseen_classes'")
        pos = {n: i for i, n in enumerate(classes)}
        missing = [n for n in unseen if n not in pos]
        if missing:
            raise ValueError(f'ZeroShotMultiLabelMetric: unseen classes '
                             f'{missing[:3]} are not among the test classes')
        return [pos[n] for n in unseen]
