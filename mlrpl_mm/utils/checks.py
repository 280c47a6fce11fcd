"""Argument checks shared by datasets, losses, metrics, hooks and tools."""
from typing import Any, Optional, Sequence


def choices_text(choices: Sequence[Any]) -> str:
    """The choices as prose: ``'a', 'b' or 'c'`` (each one's ``repr``, so
    None reads ``None``), ``'a' or 'b'``, or ``'a'`` for a single one."""
    reprs = [repr(c) for c in choices]
    if len(reprs) < 2:
        return ''.join(reprs)
    return ', '.join(reprs[:-1]) + ' or ' + reprs[-1]


def check_choice(name: str,
                 value: Any,
                 choices: Sequence[Any],
                 owner: Optional[str] = None,
                 one_of: bool = False) -> None:
    """Raise ``ValueError`` unless ``value in choices``.

    The message is ``'<owner>: <name> must be <choices>, got <value!r>'``
    (no ``'<owner>: '`` when ``owner`` is empty), with ``<choices>`` written
    by :func:`choices_text` (``'a', 'b' or 'c'``) or, with ``one_of``, as
    ``one of <repr(choices)>`` (``one of ('a', 'b', 'c')``).

    Args:
        name: The argument's name as the user writes it (``'split'``).
        value: The value given.
        choices: The allowed values (a tuple, list, or any container that
            supports ``in`` and iteration).
        owner: Who checks, e.g. the registered class name. Defaults to None.
        one_of: Write the choices as ``one of <repr(choices)>``. Defaults to
            False.

    Raises:
        ValueError: ``value`` is not one of ``choices``.
    """
    if value in choices:
        return
    allowed = f'one of {choices}' if one_of else choices_text(choices)
    prefix = f'{owner}: ' if owner else ''
    raise ValueError(f'{prefix}{name} must be {allowed}, got {value!r}')
