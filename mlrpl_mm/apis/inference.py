"""Inference on images with a trained partial-label model.

The pattern of mmpretrain's inferencers: a config + a checkpoint give a
model and the config's test pipeline; calling the inferencer on an image
path, a folder, an array or a list of them returns, for every image, the
score of every class and its top labels.

Example::

    from mlrpl_mm.apis import MultiLabelInferencer

    inferencer = MultiLabelInferencer('configs/pbce_demo.py',
                                      'work_dirs/demo/epoch_10.pth')
    for r in inferencer('data/demo/val2014', topk=3):
        print(r['img_path'], r['pred_class'], r['topk'])

    # a zero-shot model (SigRLHead) scores classes it was not trained on
    zs = MultiLabelInferencer('configs/sigrl_coco_spml.py', 'sigrl.pth')
    zs('street.jpg', class_names=['bicycle', 'traffic cone', 'puddle'])
"""
import copy
import logging
import os
import os.path as osp
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

#: File extensions read when a folder is given.
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')

InputType = Union[str, np.ndarray]
InputsType = Union[InputType, Sequence[InputType]]


def list_images(path: str) -> List[str]:
    """Image files of a folder (sorted, non-recursive), or ``[path]``.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder holds no
            image file with one of :data:`IMG_EXTENSIONS`.
    """
    if osp.isdir(path):
        files = sorted(osp.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(IMG_EXTENSIONS))
        if not files:
            raise FileNotFoundError(
                f'no image file ({", ".join(IMG_EXTENSIONS)}) in the folder '
                f'{path!r}')
        return files
    if not osp.isfile(path):
        raise FileNotFoundError(f'image not found: {path!r}')
    return [path]


def _dataset_cfgs(dataset_cfg) -> Iterator[dict]:
    """A dataset config and the ones it wraps (the ``dataset`` of mmengine's
    wrappers), outermost first; nothing for None."""
    while dataset_cfg is not None:
        yield dataset_cfg
        dataset_cfg = dataset_cfg.get('dataset', None)


def _find_pipeline(dataset_cfg) -> Optional[list]:
    """The ``pipeline`` of a dataset config, looking inside wrappers."""
    for cfg in _dataset_cfgs(dataset_cfg):
        if cfg.get('pipeline', None) is not None:
            return list(cfg['pipeline'])
    return None


def test_pipeline_cfg(cfg: Config) -> List[dict]:
    """The test pipeline of a config without its image-loading step.

    Taken from ``test_dataloader.dataset`` (wrappers unwrapped), else
    ``val_dataloader.dataset``, else the top-level ``test_pipeline``.

    Raises:
        KeyError: the config has no test pipeline.
    """
    pipeline = None
    for key in ('test_dataloader', 'val_dataloader'):
        if cfg.get(key, None) is not None:
            pipeline = _find_pipeline(cfg[key].get('dataset', None))
            if pipeline is not None:
                break
    if pipeline is None and cfg.get('test_pipeline', None) is not None:
        pipeline = list(cfg.test_pipeline)
    if pipeline is None:
        raise KeyError(f'{cfg.filename}: no test pipeline (neither '
                       'test_dataloader.dataset.pipeline nor test_pipeline)')
    return [copy.deepcopy(t) for t in pipeline
            if t.get('type') not in ('LoadImageFromFile', 'mmpretrain.'
                                     'LoadImageFromFile')]


class MultiLabelInferencer:
    """Per-image class scores and top labels from a config + checkpoint.

    The model is built from ``config`` (mmengine registries, scope
    ``mmpretrain``), the checkpoint is loaded with mlrpl-mm's safe loader
    (``weights_only=True`` plus an allow-list; ``trust_checkpoint=True`` for
    files written elsewhere that need more), and images go through the
    config's test pipeline (its ``LoadImageFromFile`` replaced by a loader
    that also accepts arrays) and the model's data preprocessor.

    Class names come from, in order: ``classes``; the checkpoint's
    ``meta.dataset_meta.classes`` (written by mmengine when training); the
    ``metainfo.classes`` of the config's test dataset; otherwise the class
    indices as strings.

    Zero-shot: when the model's head has ``set_test_classes`` (e.g.
    :class:`~mlrpl_mm.models.heads.SigRLHead`), ``class_names`` given at
    call time replaces the label set for that call only (the head's label
    embeddings are recomputed from the names; no retraining).

    Args:
        config (str | Config): Config file or object, or the name of a
            config shipped with the package (``'hst_demo'``,
            ``'mlrpl_mm::hst_demo.py'``).
        checkpoint (str, optional): Checkpoint file. None keeps the random
            initialisation (a warning is printed), for smoke tests.
        device (str): Torch device. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config
            (same syntax as ``--cfg-options``).
        classes (list[str], optional): Class names of the model's outputs.
        trust_checkpoint (bool): Load with ``weights_only=False`` (trusted
            files only). Defaults to False.
        strict (bool): Require every model weight in the checkpoint.
            Defaults to True.
    """

    def __init__(self,
                 config: Union[str, Config],
                 checkpoint: Optional[str] = None,
                 device: Union[str, torch.device] = 'cpu',
                 cfg_options: Optional[Dict] = None,
                 classes: Optional[Sequence[str]] = None,
                 trust_checkpoint: bool = False,
                 strict: bool = True) -> None:
        import mlrpl_mm  # noqa: F401  (registers the components)
        from mmpretrain.registry import MODELS, TRANSFORMS

        if isinstance(config, str):
            from mlrpl_mm.utils.packaged_configs import resolve_config
            cfg = Config.fromfile(resolve_config(config))
        elif isinstance(config, Config):
            cfg = copy.deepcopy(config)
        else:
            raise TypeError(f'config must be a path or a Config, got '
                            f'{type(config).__name__}')
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        self.cfg = cfg
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))

        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor', None) is not None:
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
        model = MODELS.build(model_cfg)
        self.checkpoint_meta: Dict = {}
        if checkpoint is not None:
            # safe loading (weights_only=True + allow-list); a missing,
            # corrupt or unsafe file is one CheckpointError naming it
            from mmengine.runner.checkpoint import _load_checkpoint_to_model

            from mlrpl_mm.utils.checkpoint import safe_torch_load
            ckpt = safe_torch_load(checkpoint, map_location='cpu',
                                   trust=True if trust_checkpoint else None)
            ckpt = _load_checkpoint_to_model(model, ckpt, strict=strict,
                                             logger='silent')
            self.checkpoint_meta = dict(ckpt.get('meta', {}) or {}) \
                if isinstance(ckpt, dict) else {}
        else:
            print_log('MultiLabelInferencer: no checkpoint, the model keeps '
                      'its random initialisation', logger='current',
                      level=logging.WARNING)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.pipeline = Compose([TRANSFORMS.build(t)
                                 for t in test_pipeline_cfg(cfg)])
        self.classes = self._resolve_classes(classes)
        self._init_label_set()

    def _init_label_set(self) -> None:
        """A zero-shot head built without class names (they came from the
        dataset through ``SigRLLabelSetHook`` when training) gets them from
        the checkpoint meta / ``classes``, as the hook would."""
        head = getattr(self.model, 'head', None)
        if head is None or not hasattr(head, 'set_train_classes') or \
                getattr(head, '_has_train_classes', True):
            return
        if self.classes is None or len(self.classes) != head.num_classes:
            raise ValueError(
                f'{type(head).__name__} was built without class names and '
                f'{"no" if self.classes is None else len(self.classes)} class '
                f'names fit its {head.num_classes} classes: pass classes=')
        head.set_train_classes(list(self.classes))

    # ------------------------------------------------------------------
    def _resolve_classes(self, classes: Optional[Sequence[str]]
                         ) -> Optional[List[str]]:
        if classes is not None:
            return [str(c) for c in classes]
        meta = self.checkpoint_meta.get('dataset_meta', None) or {}
        if meta.get('classes', None) is not None:
            return [str(c) for c in meta['classes']]
        loader = self.cfg.get('test_dataloader', {}) or {}
        for ds in _dataset_cfgs(loader.get('dataset', None)):
            info = ds.get('metainfo', None) or {}
            if info.get('classes', None) is not None:
                return [str(c) for c in info['classes']]
        return None

    @property
    def head(self) -> torch.nn.Module:
        """The model's head (``model.head``)."""
        head = getattr(self.model, 'head', None)
        if head is None:
            raise AttributeError(f'{type(self.model).__name__} has no head')
        return head

    @property
    def supports_new_classes(self) -> bool:
        """Whether the head can score class names given at call time."""
        return hasattr(getattr(self.model, 'head', None), 'set_test_classes')

    def _expand(self, inputs: InputsType) -> List[InputType]:
        if isinstance(inputs, (str, np.ndarray)):
            inputs = [inputs]
        out: List[InputType] = []
        for x in inputs:
            if isinstance(x, str):
                out.extend(list_images(x))
            elif isinstance(x, np.ndarray):
                if x.ndim not in (2, 3):
                    raise ValueError(f'an image array must be (H, W) or '
                                     f'(H, W, 3), got shape {x.shape}')
                out.append(x)
            else:
                raise TypeError(f'inputs must be paths or arrays, got '
                                f'{type(x).__name__}')
        if not out:
            raise ValueError('no input image')
        return out

    def _load(self, x: InputType) -> dict:
        """Read one image like ``LoadImageFromFile`` (BGR uint8)."""
        if isinstance(x, str):
            import mmcv
            img = mmcv.imread(x, channel_order='bgr')
            if img is None:
                raise ValueError(f'cannot read the image {x!r}')
            path = x
        else:
            img = x if x.ndim == 3 else np.repeat(x[..., None], 3, axis=2)
            path = None
        results = dict(img=img, img_shape=img.shape[:2],
                       ori_shape=img.shape[:2], sample_idx=0)
        if path is not None:
            results['img_path'] = path
        return self.pipeline(results)

    def _batches(self, inputs: List[InputType], batch_size: int
                 ) -> Iterator[List[dict]]:
        for i in range(0, len(inputs), batch_size):
            yield [self._load(x) for x in inputs[i:i + batch_size]]

    @torch.no_grad()
    def predict_scores(self, inputs: InputsType, batch_size: int = 8
                       ) -> np.ndarray:
        """(N, C) scores of the model's current label set (``pred_score``:
        sigmoid probabilities, or raw scores for a head with
        ``score_activation='none'``)."""
        items = self._expand(inputs)
        scores = []
        for batch in self._batches(items, batch_size):
            data = pseudo_collate(batch)
            preds = self.model.test_step(data)
            for p in preds:
                if 'pred_score' not in p:
                    raise KeyError(f'{type(self.head).__name__}.predict '
                                   'set no pred_score')
                scores.append(p.pred_score.detach().float().cpu().numpy())
        return np.stack(scores)

    def __call__(self,
                 inputs: InputsType,
                 topk: int = 5,
                 thr: Optional[float] = None,
                 class_names: Optional[Sequence[str]] = None,
                 batch_size: int = 8) -> List[Dict]:
        """Class scores and top labels of every image.

        Args:
            inputs: An image path, a folder (its images, sorted), an (H, W, 3)
                BGR uint8 array, or a list of these.
            topk: Number of top-scored classes reported per image (capped at
                C). Defaults to 5.
            thr: If given, ``pred_label`` holds the classes with a score
                ``>= thr`` (sorted by score); otherwise the ``topk`` ones.
            class_names: New label set for a zero-shot head (one call only).
            batch_size: Images per forward pass. Defaults to 8.

        Returns:
            One dict per image: ``img_path`` (str or None), ``pred_scores``
            (np.ndarray (C,)), ``pred_label`` (list[int]), ``pred_class``
            (list[str]), ``topk`` (list of ``dict(label, class, score)``,
            best first).

        Raises:
            ValueError: ``class_names`` for a head without
                ``set_test_classes``; ``topk < 1``; empty ``class_names``.
        """
        if topk < 1:
            raise ValueError(f'topk must be >= 1, got {topk}')
        items = self._expand(inputs)
        names = self.classes
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if not class_names:
                raise ValueError('class_names is empty')
            if not self.supports_new_classes:
                raise ValueError(
                    f'{type(self.head).__name__} cannot score new class names '
                    'at test time (no set_test_classes); only zero-shot heads '
                    'such as SigRLHead can')
            head = self.head
            saved = (getattr(head, 'test_embed', None),
                     getattr(head, 'zsl_class_indices', None))
            head.set_test_classes(class_names=class_names)
            try:
                scores = self.predict_scores(items, batch_size)
            finally:
                head.test_embed, head.zsl_class_indices = saved
            names = class_names
        else:
            scores = self.predict_scores(items, batch_size)
        num_classes = scores.shape[1]
        if names is None or len(names) != num_classes:
            if names is not None:
                print_log(f'MultiLabelInferencer: {len(names)} class names '
                          f'for {num_classes} model outputs; using indices',
                          logger='current', level=logging.WARNING)
            names = [str(i) for i in range(num_classes)]
        k = min(topk, num_classes)
        results = []
        for x, s in zip(items, scores):
            order = np.argsort(-s, kind='stable')
            if thr is None:
                label = [int(i) for i in order[:k]]
            else:
                label = [int(i) for i in order if s[i] >= thr]
            results.append(dict(
                img_path=x if isinstance(x, str) else None,
                pred_scores=s,
                pred_label=label,
                pred_class=[names[i] for i in label],
                topk=[dict(label=int(i), **{'class': names[i]},
                           score=float(s[i])) for i in order[:k]],
            ))
        return results


def inference_multi_label(model_or_config: Union[str, Config,
                                                 MultiLabelInferencer],
                          inputs: InputsType,
                          checkpoint: Optional[str] = None,
                          **kwargs) -> List[Dict]:
    """One-call helper: ``MultiLabelInferencer(config, checkpoint)(inputs,
    **kwargs)``, or an existing inferencer applied to ``inputs``."""
    inferencer = model_or_config if isinstance(
        model_or_config, MultiLabelInferencer) else \
        MultiLabelInferencer(model_or_config, checkpoint)
    return inferencer(inputs, **kwargs)
