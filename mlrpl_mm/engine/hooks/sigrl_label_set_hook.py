"""Give SigRL heads the label sets of the datasets (seen / unseen classes)."""
from typing import Optional, Sequence, Tuple

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mlrpl_mm.utils import check_choice, unwrap_model


def _sigrl_heads(model):
    from mlrpl_mm.models.heads import SigRLHead
    model = unwrap_model(model)
    return [m for m in model.modules() if isinstance(m, SigRLHead)]


def _classes(dataset) -> Tuple[str, ...]:
    meta = getattr(dataset, 'metainfo', None) or {}
    if 'classes' not in meta:
        raise KeyError(f'SigRLLabelSetHook: {type(dataset).__name__} has no '
                       "metainfo['classes']")
    return tuple(meta['classes'])


@HOOKS.register_module()
class SigRLLabelSetHook(Hook):
    """Set the label embeddings of :class:`SigRLHead` from the datasets.

    - ``before_train``: the training classes = ``metainfo['classes']`` of the
      training dataset (e.g. the 925 seen NUS-WIDE tags), when the head was
      built without class names (their count must be ``num_classes``).
    - ``before_val`` / ``before_test``: the evaluation classes = those of the
      val / test dataset, embedded by the frozen text tower without
      retraining (e.g. the 81 unseen concepts for ZSL, or seen + unseen for
      GZSL). With ``zsl='auto'`` and a dataset whose metainfo lists
      ``unseen_classes`` that are a strict subset of its classes, the head
      also scores the unseen subset alone (``zsl_pred_score``) so that
      :class:`ZeroShotMultiLabelMetric` reports ZSL and GZSL in one pass.
      When the evaluation set has ``num_classes`` classes and declares no
      unseen classes, it is the training label set and the training
      embeddings are used (set from its names if the head has none yet,
      e.g. in ``tools/test.py``).

    Args:
        zsl (str, optional): ``'auto'`` (default) or None (never score a
            subset).
    """

    # before ClassCountCheckHook (VERY_HIGH), whose check forward needs the
    # label embeddings
    priority = 'HIGHEST'

    def __init__(self, zsl: Optional[str] = 'auto') -> None:
        check_choice('zsl', zsl, ('auto', None))
        self.zsl = zsl
        self._eval_key = None

    def before_train(self, runner) -> None:
        names = _classes(runner.train_dataloader.dataset)
        for head in _sigrl_heads(runner.model):
            if len(names) != head.num_classes:
                raise ValueError(
                    f'SigRLLabelSetHook: the training dataset has '
                    f'{len(names)} classes but SigRLHead.num_classes is '
                    f'{head.num_classes}')
            if not head._has_train_classes:
                head.set_train_classes(list(names))
            runner.logger.info(f'SigRLLabelSetHook: {len(names)} training '
                               'classes')

    def _set_eval(self, runner, dataset) -> None:
        names = _classes(dataset)
        meta = dataset.metainfo
        unseen: Sequence[str] = meta.get('unseen_classes') or ()
        zsl_idx = None
        if self.zsl == 'auto' and unseen and len(unseen) < len(names) and \
                set(unseen) <= set(names):
            pos = {n: i for i, n in enumerate(names)}
            zsl_idx = [pos[n] for n in unseen]
        key = (names, tuple(zsl_idx or ()))
        for head in _sigrl_heads(runner.model):
            if len(names) == head.num_classes and zsl_idx is None and \
                    not unseen:
                # the training label set (names may be spelled differently,
                # e.g. prompt-friendly names in the config)
                if not head._has_train_classes:
                    head.set_train_classes(list(names))
                head.set_test_classes(None)
            elif key != self._eval_key or head.test_embed is None:
                head.set_test_classes(list(names),
                                      zsl_class_indices=zsl_idx)
                runner.logger.info(
                    f'SigRLLabelSetHook: evaluating on {len(names)} classes'
                    + (f' ({len(zsl_idx)} unseen scored alone)'
                       if zsl_idx else ''))
        self._eval_key = key

    def before_val(self, runner) -> None:
        self._set_eval(runner, runner.val_dataloader.dataset)

    def before_test(self, runner) -> None:
        self._set_eval(runner, runner.test_dataloader.dataset)
