"""The swappable label set of :class:`~mlrpl_mm.models.heads.SigRLHead`.

Every SigRL parameter is shared across classes, so the classes are only the
label embeddings E (C, D): the training set (``train_embed``), an optional
eval-mode set (``test_embed``, e.g. the unseen classes of a zero-shot split,
with ``zsl_class_indices``) and the (C, C) GMC label graph of the training
classes (``adjacency``, persistent: it reaches checkpoints).
"""
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from mlrpl_mm.models.utils.clip_text import build_label_embed


class SigRLLabelSetMixin:
    """Label-set state and its setters for an ``nn.Module`` head with
    ``num_classes``, ``embed_dims`` and ``text_encoder``."""

    def _init_label_set(self, train_embed: torch.Tensor,
                        class_names: Optional[Sequence[str]],
                        test_class_names: Optional[Sequence[str]],
                        test_label_embed_file: Optional[str],
                        text_encoder: Optional[Dict],
                        zsl_class_indices: Optional[Sequence[int]],
                        adjacency: Optional[Union[str, np.ndarray]]) -> None:
        """Buffers ``train_embed`` (C, D), ``test_embed`` (C', D) or None
        (both non-persistent: rebuilt from the config) and ``adjacency``."""
        self.class_names = list(class_names) if class_names else None
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
