"""Pre-training consistency checks: class counts and backbone/head fit."""
import random
from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS
from torch import nn

from mlrpl_mm.utils import unwrap_model


def _dataset_classes(dataset: Any) -> Optional[Tuple[str, ...]]:
    meta = getattr(dataset, 'metainfo', None) or {}
    classes = meta.get('classes')
    return tuple(classes) if classes is not None else None


def _type_name(module: Optional[nn.Module]) -> str:
    return 'None' if module is None else type(module).__name__


def _head_in_channels(head: nn.Module) -> Optional[int]:
    """The channels the head expects from the backbone: ``head.in_channels``,
    else its ``SemanticTrunk``'s (HSTHead / SSGRLHead keep it there)."""
    for owner in (head, getattr(head, 'trunk', None)):
        value = getattr(owner, 'in_channels', None)
        if isinstance(value, int):
            return value
    return None


@HOOKS.register_module()
class ClassCountCheckHook(Hook):
    """Refuse to start training when dataset, head and class embeddings
    disagree, or when the head cannot consume the backbone's features.

    Runs once in ``before_train`` (after ``--resume`` has loaded the
    checkpoint), before the first iteration, and raises a ``ValueError`` that
    names the offending config field and both values:

    1. **Class counts.** C_data = ``len(metainfo['classes'])`` of the training
       dataset (and of the validation dataset, if any) must equal the head's
       ``num_classes`` and the row count of every class-embedding module in
       the head (any sub-module with an ``embedding`` tensor of shape (C, E),
       e.g. ``NpyClassEmbedding``, ``CLIPClassEmbedding``,
       ``LearnableClassEmbedding``) and of a SigRL ``train_embed`` buffer.
       Without this check the mismatch surfaces only at the first loss
       (``BasePartialLabelHead.get_targets``) or, worse, silently in the
       metric. The data preprocessor's ``num_classes`` (used by batch
       augments) is compared too; a mismatch there is only warned about
       unless ``batch_augments`` are configured.
    2. **Feature fit** (``check_features=True``). One training sample goes
       through the pipeline, the data preprocessor, ``extract_feat`` and the
       head's ``forward`` in eval mode without gradients. If the head declares
       ``in_channels`` it must equal the channel dimension of the last feature
       (dim 1); any exception of the forward is re-raised with the backbone /
       neck / head types and the feature shapes, so "a config naming a
       backbone whose feature map the head cannot use" fails before training
       with a message saying which. Random states (python, numpy, torch) are
       restored afterwards so the probe does not change the training run, and
       the model's train/eval mode is restored.

    Args:
        check_features (bool): Run the one-sample feature probe.
            Defaults to True.
        check_val (bool): Also compare the validation dataset's class count.
            Defaults to True.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_features: bool = True,
                 check_val: bool = True) -> None:
        self.check_features = check_features
        self.check_val = check_val

    # ------------------------------------------------------------ class count
    @staticmethod
    def _embedding_rows(head: nn.Module) -> List[Tuple[str, int]]:
        rows = []
        for name, mod in head.named_modules():
            emb = getattr(mod, 'embedding', None)
            if isinstance(emb, torch.Tensor) and emb.dim() == 2:
                rows.append((f'head.{name}' if name else 'head',
                             int(emb.shape[0])))
        train_embed = getattr(head, 'train_embed', None)
        if isinstance(train_embed, torch.Tensor) and train_embed.dim() == 2:
            rows.append(('head.train_embed', int(train_embed.shape[0])))
        return rows

    def check_class_counts(self, model: nn.Module, train_set: Any,
                           val_set: Any = None) -> int:
        """Compare class counts; return C_data. Raises ValueError."""
        classes = _dataset_classes(train_set)
        if classes is None:
            raise ValueError(
                f'train dataset {type(train_set).__name__} has no '
                "metainfo['classes']: set it (train_dataloader.dataset."
                'metainfo=dict(classes=[...])) so the class count can be '
                'checked against the head')
        num = len(classes)
        head = getattr(model, 'head', None)
        # heads that score another label set at evaluation (zero-shot,
        # e.g. SigRLHead.set_test_classes) legitimately differ there
        swaps_label_set = hasattr(head, 'set_test_classes')
        if val_set is not None and self.check_val and not swaps_label_set:
            val_classes = _dataset_classes(val_set)
            if val_classes is not None and len(val_classes) != num:
                raise ValueError(
                    f'class-count mismatch: train dataset '
                    f'{type(train_set).__name__} has {num} classes but val '
                    f'dataset {type(val_set).__name__} has {len(val_classes)}')
        if head is None:
            return num
        head_num = getattr(head, 'num_classes', None)
        if head_num is not None and int(head_num) != num:
            raise ValueError(
                f'class-count mismatch: the training dataset '
                f'{type(train_set).__name__} has {num} classes '
                f'(metainfo classes {list(classes[:5])}...) but '
                f'model.head ({type(head).__name__}) has num_classes='
                f'{head_num}; set model.head.num_classes={num}')
        for name, rows in self._embedding_rows(head):
            if rows != num:
                raise ValueError(
                    f'class-count mismatch: {name} holds {rows} class '
                    f'embedding rows but the training dataset has {num} '
                    'classes; the class-embedding file / config must have one '
                    'row per dataset class, in dataset class order')
        pre = getattr(model, 'data_preprocessor', None)
        pre_num = getattr(pre, 'num_classes', None)
        if pre_num is not None and int(pre_num) != num:
            msg = (f'model.data_preprocessor.num_classes={pre_num} but the '
                   f'training dataset has {num} classes')
            if getattr(pre, 'batch_augments', None) is not None:
                raise ValueError(f'class-count mismatch: {msg} (used by the '
                                 'batch augments)')
            print_log(msg + ' (unused: no batch augments)', logger='current',
                      level=30)
        return num

    # ------------------------------------------------------------ feature fit
    def check_feature_fit(self, model: nn.Module, train_set: Any) -> None:
        """One-sample forward through backbone, neck and head. Raises
        ValueError naming the parts and shapes when the head cannot use the
        features."""
        if len(train_set) == 0:
            raise ValueError(f'train dataset {type(train_set).__name__} is '
                             'empty')
        head = getattr(model, 'head', None)
        if head is None or not hasattr(model, 'extract_feat'):
            return
        states = (random.getstate(), np.random.get_state(),
                  torch.get_rng_state())
        was_training = model.training
        try:
            sample = train_set[0]
            model.eval()
            with torch.no_grad():
                data = model.data_preprocessor(pseudo_collate([sample]), False)
                feats = model.extract_feat(data['inputs'])
                shapes = [tuple(f.shape) for f in feats] \
                    if isinstance(feats, (tuple, list)) else [tuple(feats.shape)]
                backbone = _type_name(getattr(model, 'backbone', None))
                neck = _type_name(getattr(model, 'neck', None))
                parts = (f'backbone {backbone}, neck {neck}, '
                         f'head {type(head).__name__}')
                in_ch = _head_in_channels(head)
                last = shapes[-1]
                if isinstance(in_ch, int) and len(last) >= 2 \
                        and last[1] != in_ch:
                    raise ValueError(
                        f'feature mismatch ({parts}): the last feature has '
                        f'shape {last} ({last[1]} channels) but '
                        f'model.head.in_channels={in_ch}; set '
                        f'model.head.in_channels={last[1]} or pick a '
                        'backbone/neck giving that many channels')
                try:
                    head(feats)
                except Exception as err:
                    raise ValueError(
                        f'feature mismatch ({parts}): the head cannot use '
                        f'the features of shapes {shapes} '
                        f'({type(err).__name__}: {err}). A head on spatial '
                        'maps needs a (B, C, H, W) feature (neck=None); a '
                        'linear head needs pooled (B, C) features.') from err
        finally:
            model.train(was_training)
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        train_set = runner.train_dataloader.dataset
        val_set = None
        if self.check_val and runner._val_loop is not None:
            val_set = runner.val_loop.dataloader.dataset
        num = self.check_class_counts(model, train_set, val_set)
        if self.check_features:
            self.check_feature_fit(model, train_set)
        runner.logger.info(f'ClassCountCheckHook: {num} classes; dataset, '
                           'head and class embeddings agree')
