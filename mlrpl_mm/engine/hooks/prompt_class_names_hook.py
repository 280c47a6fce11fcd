"""Give prompt-learning heads (DualCoOp) the class names of the dataset."""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from mlrpl_mm.utils import unwrap_model


def _prompt_heads(model):
    model = unwrap_model(model)
    return [m for m in model.modules()
            if hasattr(m, 'set_class_names') and hasattr(m, 'has_class_names')
            and hasattr(m, 'prompt_learner')]


@HOOKS.register_module()
class PromptClassNamesHook(Hook):
    """Tokenise the prompts of heads built without ``class_names`` (e.g.
    :class:`~mlrpl_mm.models.heads.DualCoOpHead`) from
    ``metainfo['classes']`` of the training dataset (``before_train``), or of
    the val / test dataset (``before_val`` / ``before_test``) when the head
    still has none (``tools/test.py`` with a model whose checkpoint was not
    loaded). Heads that have names (given in the config, or restored from a
    checkpoint, whose token ids are a persistent buffer) are left alone.
    Runs before ``ClassCountCheckHook`` (its check forward needs prompts).
    """

    priority = 'HIGHEST'

    def _set(self, runner, dataset, stage: str) -> None:
        meta = getattr(dataset, 'metainfo', None) or {}
        for head in _prompt_heads(runner.model):
            if head.has_class_names:
                continue
            if 'classes' not in meta:
                raise KeyError(
                    f'PromptClassNamesHook: the {stage} dataset '
                    f"{type(dataset).__name__} has no metainfo['classes']; "
                    'set model.head.class_names')
            names = list(meta['classes'])
            if len(names) != head.num_classes:
                raise ValueError(
                    f'PromptClassNamesHook: the {stage} dataset has '
                    f'{len(names)} classes but {type(head).__name__}.'
                    f'num_classes={head.num_classes}; set '
                    f'model.head.num_classes={len(names)}')
            head.set_class_names(names)
            runner.logger.info(f'PromptClassNamesHook: {len(names)} class '
                               f'names from the {stage} dataset')

    def before_train(self, runner) -> None:
        self._set(runner, runner.train_dataloader.dataset, 'training')

    def before_val(self, runner) -> None:
        self._set(runner, runner.val_dataloader.dataset, 'validation')

    def before_test(self, runner) -> None:
        self._set(runner, runner.test_dataloader.dataset, 'test')
