"""Refuse to train when a hook that provides model state is not registered.

Some modules of a model depend on state that a hook computes outside the
forward pass: the label graph of :class:`SemanticTrunk` (``LabelGraphHook``),
the CST prototypes of HST (``CSTPrototypeHook``), the PPRB prototypes and the
blend-weight clamp of DSRB (``PPRBPrototypeHook``, ``BlendWeightClampHook``),
the label embeddings of a SigRL head built without class names
(``SigRLLabelSetHook``) and the APL label updates of ``EMAPLLoss``
(``APLHook``). Without the hook such a run either trains silently wrong (an
all-zero label graph, EM without pseudo labels) or fails hours later (the
prototypes at epoch 5).

Protocol: any module of the model may define

.. code-block:: python

    def required_hooks(self, max_epochs: Optional[int]) -> Dict[str, str]:
        '''Hook type name -> what it provides, for a run of max_epochs
        epochs (None: unknown). Only hooks whose state is still missing
        (e.g. not restored by --resume) and needed within the run.'''

:class:`RequiredHooksCheckHook` (in ``default_hooks`` of
``configs/_base_/default_runtime.py``) collects these from every module in
``before_train`` (after ``--resume`` / ``load_from`` restored the model) and
raises one ``ValueError`` that names every missing hook, the module that needs
it and the ``custom_hooks`` entry to add.
"""
from typing import Iterable, List, Optional, Tuple

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from torch import nn

from mlrpl_mm.utils import unwrap_model

#: (module name in the model, module type, hook type, what the hook provides)
Requirement = Tuple[str, str, str, str]


def registered_hook_names(hooks: Iterable) -> set:
    """Class names of every registered hook and of its base classes (a
    subclass of a required hook satisfies the requirement)."""
    names = set()
    for hook in hooks:
        names.update(cls.__name__ for cls in type(hook).__mro__)
    return names


def collect_requirements(model: nn.Module,
                         max_epochs: Optional[int]) -> List[Requirement]:
    """The ``required_hooks(max_epochs)`` of every module of ``model``."""
    out = []
    for name, module in model.named_modules():
        fn = getattr(module, 'required_hooks', None)
        if not callable(fn):
            continue
        for hook, what in fn(max_epochs).items():
            out.append((name or 'model', type(module).__name__, hook, what))
    return out


def missing_hooks(model: nn.Module, hooks: Iterable,
                  max_epochs: Optional[int]) -> List[Requirement]:
    """Requirements of ``model`` that no hook of ``hooks`` satisfies."""
    have = registered_hook_names(hooks)
    return [r for r in collect_requirements(model, max_epochs)
            if r[2] not in have]


def format_missing(missing: List[Requirement]) -> str:
    """The error text for :func:`missing_hooks`' result."""
    hooks = sorted({r[2] for r in missing})
    lines = [f'  - {hook}: provides {what} for model.{name} ({mtype})'
             for name, mtype, hook, what in missing]
    add = ', '.join(f"dict(type='{h}')" for h in hooks)
    return ('RequiredHooksCheckHook: the model needs hook(s) that the config '
            f'does not register: {", ".join(hooks)}.\n' + '\n'.join(lines) +
            f'\nAdd {add} to custom_hooks of the config (see the method '
            'configs in configs/ for their arguments). Training without them '
            'would use missing state (e.g. an all-zero label graph) or fail '
            'epochs later.')


@HOOKS.register_module()
class RequiredHooksCheckHook(Hook):
    """Check in ``before_train`` that every hook the model needs is
    registered (module docstring); raises ``ValueError`` naming them.

    Runs after ``--resume`` / ``load_from``, so state restored from a
    checkpoint (e.g. the label graph) counts as present. It lives in
    ``default_hooks`` (``required_hooks``), so method configs that set their
    own ``custom_hooks`` keep it; ``default_hooks.required_hooks=None``
    disables it.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        max_epochs = getattr(runner, 'max_epochs', None)
        missing = missing_hooks(model, runner.hooks, max_epochs)
        if missing:
            raise ValueError(format_missing(missing))
        needed = sorted({r[2] for r in collect_requirements(model,
                                                            max_epochs)})
        if needed:
            runner.logger.info('RequiredHooksCheckHook: registered: '
                               f'{", ".join(needed)}')
