"""Class lists given as a list of names or a text file (one name per line),
as the ``classes`` of :class:`PartialLabelAnnotations` and
:class:`OpenImagesMultiLabel` take them."""
import os.path as osp
from typing import List, Optional, Sequence, Union


def read_class_list(classes: Union[str, Sequence[str], None],
                    what: str = 'classes') -> Optional[List[str]]:
    """Class names from a list or a text file (one name per line).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: an empty list, or a name given twice (named).
    """
    if classes is None:
        return None
    if isinstance(classes, str):
        if not osp.isfile(classes):
            raise FileNotFoundError(f'{what}: class list file {classes} not '
                                    'found (one class name per line)')
        with open(classes, encoding='utf-8-sig') as f:
            names = [line.strip() for line in f if line.strip()]
        where = classes
    else:
        names = [str(c) for c in classes]
        where = what
    if not names:
        raise ValueError(f'{where}: the class list is empty')
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f'{where}: class {name!r} is listed twice')
        seen.add(name)
    return names
