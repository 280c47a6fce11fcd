"""SigRL head: GMC + SVFR + local/global scores over CLIP label embeddings."""
import logging
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mlrpl_mm.models.utils import DEFAULT_TEMPLATE, encode_class_names
from .base_partial_head import BasePartialLabelHead


def load_embedding_file(path: str) -> torch.Tensor:
    """(C, D) float32 embeddings from a ``.npy`` or ``.pt``/``.pth`` file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'label embedding file not found: {path}')
    if path.endswith('.npy'):
        arr = torch.from_numpy(np.load(path))
    elif path.endswith(('.pt', '.pth')):
        arr = torch.load(path, map_location='cpu', weights_only=True)
        if not torch.is_tensor(arr):
            raise TypeError(f'{path}: expected a tensor, got {type(arr)}')
    else:
        raise ValueError(f'{path}: label embeddings must be .npy, .pt or .pth')
    if arr.dim() != 2:
        raise ValueError(f'{path}: expected (C, D) embeddings, got shape '
                         f'{tuple(arr.shape)}')
    return arr.float()


def build_label_embed(class_names: Optional[Sequence[str]] = None,
                      embed_file: Optional[str] = None,
                      text_encoder: Optional[Dict] = None) -> torch.Tensor:
    """L2-normalised label embeddings E (C, D).

    Either loaded from ``embed_file`` or computed by the frozen open_clip
    text tower described by ``text_encoder`` (keys: ``model_name``,
    ``pretrained``, ``model_cfg``, ``template``, ``cache_dir``, ``seed``,
    ``quick_gelu`` (None = auto: QuickGELU for weights trained with it, e.g.
    ``'openai'``), ``fallback_to_random``)
    through :func:`mlrpl_mm.models.utils.encode_class_names` (disk cache
    keyed by model, weights, template and class names). A random-init text
    tower (``pretrained=None``, offline tests) is built under the fixed
    ``seed`` so training and testing see the same embeddings.
    """
    if embed_file is not None:
        emb = load_embedding_file(embed_file)
        if class_names is not None and emb.shape[0] != len(class_names):
            raise ValueError(f'{embed_file}: {emb.shape[0]} rows but '
                             f'{len(class_names)} class names')
        return F.normalize(emb, dim=-1)
    if class_names is None:
        raise ValueError('SigRLHead: give class_names (with text_encoder) '
                         'or a label embedding file')
    cfg = dict(text_encoder or {})
    unknown = set(cfg) - {'model_name', 'pretrained', 'model_cfg', 'template',
                          'cache_dir', 'seed', 'quick_gelu',
                          'fallback_to_random'}
    if unknown:
        raise KeyError('SigRLHead.text_encoder: unknown keys '
                       f'{sorted(unknown)}')
    model_name = cfg.get('model_name', 'ViT-B-16')
    pretrained = cfg.get('pretrained', None)
    model_cfg = cfg.get('model_cfg', None)
    template = cfg.get('template', DEFAULT_TEMPLATE)
    kwargs = {}
    if 'cache_dir' in cfg:
        kwargs['cache_dir'] = cfg['cache_dir']
    try:
        return _encode(class_names, cfg, model_name, pretrained, model_cfg,
                       template, kwargs)
    except (RuntimeError, OSError) as err:
        if pretrained is None:
            raise
        if not cfg.get('fallback_to_random', False):
            from mlrpl_mm.models.backbones.open_clip_backbone import \
                weights_unavailable_message
            raise RuntimeError(weights_unavailable_message(
                'SigRLHead text tower', model_name, pretrained,
                cfg.get('cache_dir'), err, 'model.head.text_encoder')) from err
        print_log(f'SigRLHead: could not load the {model_name} text tower '
                  f'{pretrained!r} ({err}); RANDOM text tower instead '
                  '(fallback_to_random=True): the label embeddings carry no '
                  'semantics', logger='current', level=logging.WARNING)
        return _encode(class_names, cfg, model_name, None, model_cfg,
                       template, kwargs)


def _encode(class_names, cfg, model_name, pretrained, model_cfg, template,
            kwargs) -> torch.Tensor:
    from mlrpl_mm.models.backbones.open_clip_backbone import (
        config_uses_quick_gelu, register_open_clip_configs,
        resolve_quick_gelu)
    register_open_clip_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(cfg.get('seed', 0)))
        model = None
        key_weights = pretrained
        if model_cfg is not None:
            if pretrained is not None:
                raise ValueError('text_encoder: pretrained weights need a '
                                 'model_name, not a model_cfg')
            from open_clip.model import CLIP
            model = CLIP(**model_cfg,
                         quick_gelu=bool(cfg.get('quick_gelu', False)))
            model_name = 'custom'
        else:
            # QuickGELU for the OpenAI weights (auto, as the image tower)
            quick = resolve_quick_gelu(model_name, pretrained,
                                       cfg.get('quick_gelu', None),
                                       'SigRLHead.text_encoder')
            if quick:
                import open_clip
                variant = f'{model_name}-quickgelu'
                if config_uses_quick_gelu(model_name):
                    pass  # the config already uses QuickGELU
                elif variant in open_clip.list_models() and (
                        pretrained is None or osp.isfile(pretrained) or
                        open_clip.get_pretrained_cfg(variant, pretrained)):
                    # same weights, QuickGELU config: built lazily by
                    # encode_class_names (after its disk-cache look-up),
                    # cached under the variant's name
                    model_name = variant
                else:
                    model = open_clip.create_model(model_name,
                                                   pretrained=pretrained,
                                                   force_quick_gelu=True)
                    if pretrained is not None:
                        # a forced activation must not share the cache key
                        # of the model's own (GELU) config
                        key_weights = f'{pretrained}+force_quick_gelu'
        emb = encode_class_names(class_names, model_name=model_name,
                                 pretrained=key_weights, template=template,
                                 model=model, **kwargs)
    return F.normalize(emb.float(), dim=-1)


@MODELS.register_module()
class SigRLHead(BasePartialLabelHead):
    r"""Semantic-guided representation learning head.

    `Semantic-guided Representation Learning for Multi-Label Recognition
    <https://arxiv.org/abs/2504.03801>`_ (ICME 2025).

    Input ``feats`` from :class:`OpenCLIPBackbone`: ``(P, g)`` or, with a
    teacher in training, ``(g_teacher, P, g)``; P (B, L, D) patch tokens,
    g (B, D) global feature. With label embeddings E (C, D):
    :math:`\hat H = \mathrm{GMC}(E)`, :math:`\hat P = \mathrm{SVFR}(P, E,
    \hat H)` and

    .. math::
        \mathrm{local}_{bc} = \frac1k \mathrm{top}k_l \langle \hat P_{bl},
        E_c\rangle, \quad \mathrm{global}_{bc} = \langle g_b, E_c \rangle,
        \quad s_b = \tau\,\frac12\Big(\frac{\mathrm{local}_b}
        {\|\mathrm{local}_b\|_2} + \frac{\mathrm{global}_b}
        {\|\mathrm{global}_b\|_2}\Big)

    (norms across the C classes of each image; k = ``topk`` capped at L;
    :math:`\tau` = ``logit_scale``, 1 in the reference). ``predict`` returns
    sigmoid(s) (SPML) or s (``score_activation='none'``, zero-shot).

    The label set is swappable without retraining: every parameter is
    shared across classes. ``test_class_names`` (or
    ``test_label_embed_file``) replaces the training classes in eval mode,
    e.g. the unseen classes of a zero-shot split; with
    ``zsl_class_indices`` (indices into the test classes) ``predict`` also
    stores ``zsl_pred_score``, the scores computed over that subset alone
    (ZSL), next to ``pred_score`` over all test classes (GZSL).

    Args:
        class_names (list[str], optional): Training class names.
        label_embed_file (str, optional): (C, D) ``.npy``/``.pt`` instead of
            the text tower.
        text_encoder (dict, optional): open_clip text tower, see
            :func:`build_label_embed`. Defaults to ViT-B-16, random init,
            template "There is a {} in the scene".
        test_class_names (list[str], optional): Classes used in eval mode.
        test_label_embed_file (str, optional): Their embeddings from a file.
        zsl_class_indices (list[int], optional): Subset of the test classes
            scored separately (``zsl_pred_score``).
        num_classes (int, optional): If given, must equal the number of
            training classes (a config check). Without class names or file,
            the classes come later from :meth:`set_train_classes` (e.g. by
            :class:`SigRLLabelSetHook` from the dataset's metainfo).
        embed_dims (int): D. Defaults to 512.
        topk (int): k of the local score. Defaults to 16.
        logit_scale (float): :math:`\tau`. Defaults to 1.0.
        adjacency (str | array, optional): (C, C) label graph for GMC on the
            training classes (``.npy`` path or array); None = complete graph
            (the reference). Also settable by ``LabelGraphHook`` (the
            co-occurrence graph of the known training labels) through
            :meth:`set_label_graph`. Not used for another test label set.
        gmc (dict): GMC config. Defaults to ``dict(type='GMC')``.
        svfr (dict): SVFR config. Defaults to ``dict(type='SVFR')``.
        loss (dict): Classification loss on the scores (partial labels).
            Defaults to ``dict(type='EMLoss', alpha=0.2)``.
        distill_loss (dict, optional): Loss between g and the teacher's g
            (e.g. ``dict(type='L1DistillLoss')``); needs a backbone with
            ``with_teacher=True``.
        score_activation (str): ``'sigmoid'`` or ``'none'``.
        drop_no_positive (bool): In training, leave out the images of the
            batch without any known positive (``partial_label`` +1) before
            the scores and the losses, as the SigRL zero-shot reference does
            before its forward pass (``configs/sigrl_nus_zsl.py`` sets it):
            the losses are then means over the kept images only. Defaults
            to False (every image counts). See :meth:`loss`.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 class_names: Optional[Sequence[str]] = None,
                 label_embed_file: Optional[str] = None,
                 text_encoder: Optional[Dict] = None,
                 test_class_names: Optional[Sequence[str]] = None,
                 test_label_embed_file: Optional[str] = None,
                 zsl_class_indices: Optional[Sequence[int]] = None,
                 num_classes: Optional[int] = None,
                 embed_dims: int = 512,
                 topk: int = 16,
                 logit_scale: float = 1.0,
                 adjacency: Optional[Union[str, np.ndarray]] = None,
                 gmc: Dict = dict(type='GMC'),
                 svfr: Dict = dict(type='SVFR'),
                 loss: Dict = dict(type='EMLoss', alpha=0.2),
                 distill_loss: Optional[Dict] = None,
                 score_activation: str = 'sigmoid',
                 drop_no_positive: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        self.drop_no_positive = bool(drop_no_positive)
        self._has_train_classes = class_names is not None or \
            label_embed_file is not None
        if self._has_train_classes:
            train_embed = build_label_embed(class_names, label_embed_file,
                                            text_encoder)
            if num_classes is not None and num_classes != train_embed.shape[0]:
                raise ValueError(f'SigRLHead: num_classes={num_classes} but '
                                 f'{train_embed.shape[0]} training classes')
        elif num_classes is None:
            raise ValueError('SigRLHead: give class_names, label_embed_file '
                             'or num_classes (classes then set from the '
                             'dataset by SigRLLabelSetHook)')
        else:
            train_embed = torch.zeros(num_classes, embed_dims)
        super().__init__(num_classes=train_embed.shape[0],
                         score_activation=score_activation, init_cfg=init_cfg)
        self.text_encoder = dict(text_encoder or {})
        if train_embed.shape[1] != embed_dims:
            raise ValueError(f'SigRLHead: label embeddings are '
                             f'{train_embed.shape[1]}-d but embed_dims='
                             f'{embed_dims}; match the text tower to the '
                             'image tower')
        if topk <= 0:
            raise ValueError(f'topk must be positive, got {topk}')
        self.class_names = list(class_names) if class_names else None
        self.embed_dims = embed_dims
        self.topk = topk
        self.logit_scale = logit_scale
        self.register_buffer('train_embed', train_embed, persistent=False)
        test_embed = None
        if test_class_names is not None or test_label_embed_file is not None:
            test_embed = build_label_embed(test_class_names,
                                           test_label_embed_file, text_encoder)
        self.register_buffer('test_embed', test_embed, persistent=False)
        n_test = (test_embed if test_embed is not None
                  else train_embed).shape[0]
        self.zsl_class_indices = None
        if zsl_class_indices is not None:
            idx = [int(i) for i in zsl_class_indices]
            if not idx or min(idx) < 0 or max(idx) >= n_test:
                raise ValueError(f'zsl_class_indices must be non-empty '
                                 f'indices in [0, {n_test}), got {idx[:5]}...')
            self.zsl_class_indices = idx
        # (C, C) label graph of GMC; an empty (0, 0) tensor = complete graph.
        # Persistent (a graph set by LabelGraphHook reaches checkpoints);
        # resized on load.
        self.register_buffer('adjacency', torch.zeros(0, 0))
        self._register_load_state_dict_pre_hook(self._resize_adjacency)
        if adjacency is not None:
            self.set_label_graph(torch.as_tensor(
                np.load(adjacency) if isinstance(adjacency, str)
                else np.asarray(adjacency)))
        self.gmc = MODELS.build(gmc)
        self.svfr = MODELS.build(svfr)
        self.loss_module = MODELS.build(loss)
        self.distill_loss = MODELS.build(distill_loss) \
            if distill_loss else None

    # ------------------------------------------------------------------
    def _resize_adjacency(self, state_dict, prefix, *args, **kwargs) -> None:
        key = prefix + 'adjacency'
        if key in state_dict:
            self.adjacency = self.adjacency.new_zeros(state_dict[key].shape)

    def set_label_graph(self, graph: Optional[torch.Tensor]) -> None:
        """Use a (C, C) label graph in GMC (edge j -> i where
        ``graph[i, j] > 0``, self-loops always), e.g. the co-occurrence graph
        set by ``LabelGraphHook``; None restores the complete graph. Used for
        the training label set only."""
        if graph is None:
            self.adjacency = self.adjacency.new_zeros(0, 0)
            return
        graph = torch.as_tensor(graph).float()
        if graph.shape != (self.num_classes, self.num_classes):
            raise ValueError(f'SigRLHead: the label graph must be '
                             f'({self.num_classes}, {self.num_classes}), got '
                             f'{tuple(graph.shape)}')
        self.adjacency = graph.to(self.adjacency.device)

    def required_hooks(self, max_epochs: Optional[int] = None
                       ) -> Dict[str, str]:
        """``SigRLLabelSetHook`` while the head has no training label
        embeddings (built without class names / file). Checked by
        ``RequiredHooksCheckHook``."""
        if self._has_train_classes:
            return {}
        return {'SigRLLabelSetHook': 'the training label embeddings from the '
                "dataset's metainfo classes (the head has no class_names / "
                'label_embed_file)'}

    def set_train_classes(self, class_names: Optional[Sequence[str]] = None,
                          label_embed: Optional[torch.Tensor] = None) -> None:
        """Set the training label set (C must equal ``num_classes``)."""
        emb = label_embed if label_embed is not None else build_label_embed(
            class_names, None, self.text_encoder)
        if emb.shape != (self.num_classes, self.embed_dims):
            raise ValueError(f'SigRLHead: training embeddings must be '
                             f'({self.num_classes}, {self.embed_dims}), got '
                             f'{tuple(emb.shape)}')
        self.train_embed = F.normalize(emb.float(), dim=-1).to(
            self.train_embed.device)
        self.class_names = list(class_names) if class_names else None
        self._has_train_classes = True

    def set_test_classes(self, class_names: Optional[Sequence[str]] = None,
                         label_embed: Optional[torch.Tensor] = None,
                         text_encoder: Optional[Dict] = None,
                         zsl_class_indices: Optional[Sequence[int]] = None
                         ) -> None:
        """Swap the label set used in eval mode (no retraining).
        ``class_names=None`` and ``label_embed=None`` restore the training
        classes."""
        if class_names is None and label_embed is None:
            self.test_embed = None
            self.zsl_class_indices = None
            return
        emb = label_embed if label_embed is not None else build_label_embed(
            class_names, None, text_encoder or self.text_encoder)
        if emb.shape[1] != self.embed_dims:
            raise ValueError(f'test embeddings are {emb.shape[1]}-d, '
                             f'expected {self.embed_dims}')
        self.test_embed = F.normalize(emb.float(), dim=-1).to(
            self.train_embed.device)
        self.zsl_class_indices = None if zsl_class_indices is None else \
            [int(i) for i in zsl_class_indices]

    def _split_feats(self, feats: Tuple[torch.Tensor, ...]):
        if not isinstance(feats, (tuple, list)) or len(feats) < 2:
            raise ValueError('SigRLHead expects (patch tokens, global) '
                             'features from OpenCLIPBackbone')
        tokens, glob = feats[-2], feats[-1]
        if tokens.dim() != 3 or glob.dim() != 2:
            raise ValueError(f'SigRLHead: expected P (B, L, D) and g (B, D), '
                             f'got {tuple(tokens.shape)} and '
                             f'{tuple(glob.shape)}')
        teacher = feats[-3] if len(feats) >= 3 else None
        return tokens, glob, teacher

    def current_embed(self) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(E, adjacency) for the current mode (train / eval)."""
        if not self.training and self.test_embed is not None:
            return self.test_embed, None
        self._check_train_classes()
        return self.train_embed, self._graph()

    def _graph(self) -> Optional[torch.Tensor]:
        return self.adjacency if self.adjacency.numel() else None

    def _check_train_classes(self) -> None:
        if not self._has_train_classes:
            raise RuntimeError(
                'SigRLHead has no label embeddings yet: give class_names or '
                'label_embed_file, or add dict(type="SigRLLabelSetHook") to '
                'custom_hooks to take the classes from the dataset')

    def scores(self, tokens: torch.Tensor, glob: torch.Tensor,
               label_embed: torch.Tensor,
               adjacency: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores s (B, C) for label embeddings E (C, D)."""
        label_embed = label_embed.to(tokens.dtype)
        graph = self.gmc(label_embed, adjacency)
        rec = self.svfr(tokens, label_embed, graph)              # (B, L, D)
        sim = torch.einsum('bld,cd->bcl', rec, label_embed)      # (B, C, L)
        k = min(self.topk, sim.shape[-1])
        local = sim.topk(k, dim=-1).values.mean(-1)                  # (B, C)
        glob_s = glob @ label_embed.t()                              # (B, C)
        local = local / local.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        glob_s = glob_s / glob_s.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.logit_scale * (local + glob_s) / 2

    def forward(self, feats: Tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Scores (B, C) over the current label set."""
        tokens, glob, _ = self._split_feats(feats)
        emb, adj = self.current_embed()
        return self.scores(tokens, glob, emb, adj)

    def loss(self, feats: Tuple[torch.Tensor, ...],
             data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """Loss terms: ``loss_cls`` (partial-label loss on the scores) and,
        with ``distill_loss``, ``loss_distill``.

        With ``drop_no_positive``, the images without a known positive are
        removed from P, g, the teacher's g, the targets and the sample
        indices before anything else: every loss is the one of the batch of
        the kept images, exactly the reference's (it drops them before its
        forward pass; the image tower, SVFR and the scores are per image, so
        only the tower's compute for the dropped images differs). A batch
        in which no image has a positive gives losses 0 (connected to the
        graph, so DDP and the optimizer step run on every rank; the
        reference skips such a batch: with AdamW the moments and the weight
        decay still move here). The number kept is logged as
        ``kept_images``.
        """
        tokens, glob, teacher = self._split_feats(feats)
        self._check_train_classes()
        target = self.get_targets(data_samples, device=glob.device)
        idx = self.get_sample_indices(data_samples, device=glob.device)
        empty = None
        if self.drop_no_positive:
            keep = (target > 0).any(1)
            if not bool(keep.any()):
                empty = keep
            elif not bool(keep.all()):
                tokens, glob, target = tokens[keep], glob[keep], target[keep]
                teacher = None if teacher is None else teacher[keep]
                idx = None if idx is None else idx[keep]
        score = self.scores(tokens, glob, self.train_embed, self._graph())
        if empty is not None:  # nothing to learn from: zero, with a graph
            zero = score.sum() * 0.0 + glob.sum() * 0.0
            losses = dict(loss_cls=zero)
            if self.distill_loss is not None:
                losses['loss_distill'] = zero.clone()
            losses['kept_images'] = torch.zeros((), device=glob.device)
            return losses
        losses = dict(loss_cls=self.loss_module(score, target, sample_idx=idx))
        if self.drop_no_positive:
            losses['kept_images'] = torch.tensor(float(target.shape[0]),
                                                 device=glob.device)
        if self.distill_loss is not None:
            if teacher is None:
                raise ValueError('SigRLHead.distill_loss needs teacher '
                                 'features: set with_teacher=True in '
                                 'OpenCLIPBackbone')
            losses['loss_distill'] = self.distill_loss(glob, teacher)
        return losses

    def predict(self, feats: Tuple[torch.Tensor, ...],
                data_samples: Optional[List[Optional[DataSample]]] = None
                ) -> List[DataSample]:
        """``pred_score`` (C,) per sample over the eval label set, plus
        ``zsl_pred_score`` over ``zsl_class_indices`` when set."""
        tokens, glob, _ = self._split_feats(feats)
        emb, adj = self.current_embed()
        act = torch.sigmoid if self.score_activation == 'sigmoid' else \
            (lambda x: x)
        scores = act(self.scores(tokens, glob, emb, adj)).detach()
        zsl = None
        if self.zsl_class_indices is not None:
            sub = emb[self.zsl_class_indices]
            zsl = act(self.scores(tokens, glob, sub, None)).detach()
        if data_samples is None:
            data_samples = [None] * scores.shape[0]
        out = []
        for i, ds in enumerate(data_samples):
            ds = self.set_prediction(DataSample() if ds is None else ds,
                                     scores[i])
            if zsl is not None:
                ds.set_field(zsl[i], 'zsl_pred_score', field_type='data')
            out.append(ds)
        return out
