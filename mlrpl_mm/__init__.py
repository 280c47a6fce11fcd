"""mlrpl-mm: multi-label recognition with partial labels for OpenMMLab.

``import mlrpl_mm`` (or ``custom_imports=dict(imports=['mlrpl_mm'])`` in a
config) registers every component into the OpenMMLab registries and
changes nothing else of mmengine / torch. Safe checkpoint loading for
torch >= 2.6, atomic saving and a resume that executes nothing from a
checkpoint come with :class:`mlrpl_mm.engine.MLRPLRunner`
(``runner_type='MLRPLRunner'`` in ``configs/_base_/default_runtime.py``),
see :mod:`mlrpl_mm.utils.checkpoint`.
"""
from .version import __version__
from .utils.packaged_configs import install as _install_packaged_configs  # noqa: E402,E501

_install_packaged_configs()  # `mlrpl_mm::hst_demo.py` config paths

from . import datasets, engine, evaluation, models  # noqa: E402,F401

__all__ = ['__version__', 'datasets', 'engine', 'evaluation', 'models']
