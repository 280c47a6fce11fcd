"""mlrpl-mm: multi-label recognition with partial labels for OpenMMLab.

``import mlrpl_mm`` (or ``custom_imports=dict(imports=['mlrpl_mm'])`` in a
config) registers every component into mmpretrain's registries and installs
safe checkpoint loading for torch >= 2.6 (see :mod:`mlrpl_mm.utils.checkpoint`).
"""
from .version import __version__
from .utils.checkpoint import install as _install_checkpoint_safety

_install_checkpoint_safety()
from .utils.atomic_save import install as _install_atomic_save  # noqa: E402

_install_atomic_save()  # atomic checkpoint writes (mlrpl_mm/utils/atomic_save.py)
from .utils.packaged_configs import install as _install_packaged_configs  # noqa: E402,E501

_install_packaged_configs()  # `mlrpl_mm::hst_demo.py` config paths

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models']
