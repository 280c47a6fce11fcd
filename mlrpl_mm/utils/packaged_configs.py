"""Configs shipped inside the package (``mlrpl_mm/.mim/configs``).

Like OpenMMLab packages, mlrpl-mm installs its ``configs/``, ``tools/`` and
``model-index.yml`` under ``mlrpl_mm/.mim/`` (symlinks to the top-level
folders in a source checkout, copies in the wheel), so that an installed
wheel works without the repository:

* ``_base_ = ['mlrpl_mm::hst_demo.py']`` in a user config (once
  ``mlrpl_mm`` is imported: the tools import it, and so does
  ``custom_imports``-free Python code that does ``import mlrpl_mm``);
* ``mim train mlrpl_mm hst_demo.py`` (mim finds ``.mim/tools/train.py`` and
  ``.mim/configs``);
* ``MultiLabelInferencer('hst_demo', ckpt)`` and the tools' ``CONFIG``
  argument take a packaged config name.

mmengine 0.10.7 resolves ``pkg::path`` only for the packages of its
``MODULE2PACKAGE`` table and only for paths with a sub-folder
(``mmpretrain::resnet/resnet50_8xb32_in1k.py``); mlrpl-mm's configs are
flat (``configs/hst_demo.py``), so :func:`install` resolves the
``mlrpl_mm::`` prefix itself (every other prefix keeps mmengine's code) and
registers the package in ``MODULE2PACKAGE``.
"""
import glob
import os.path as osp
from typing import List

#: Prefix of the package's config paths, ``mlrpl_mm::hst_demo.py``.
PREFIX = 'mlrpl_mm::'

_PKG_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def packaged_config_dir() -> str:
    """``mlrpl_mm/.mim/configs`` (the repo's ``configs/`` in a checkout)."""
    mim = osp.join(_PKG_DIR, '.mim', 'configs')
    if osp.isdir(mim):
        return mim
    # a checkout whose symlinks were not created (e.g. git on Windows
    # without core.symlinks): the top-level folder itself
    return osp.join(osp.dirname(_PKG_DIR), 'configs')


def packaged_configs() -> List[str]:
    """Names of the shipped configs (``'hst_demo.py'``, ...), sorted."""
    root = packaged_config_dir()
    return sorted(osp.relpath(p, root)
                  for p in glob.glob(osp.join(root, '*.py')))


def packaged_config_path(name: str) -> str:
    """Absolute path of a shipped config.

    Args:
        name (str): ``'mlrpl_mm::hst_demo.py'``, ``'hst_demo.py'`` or
            ``'hst_demo'`` (also ``'_base_/default_runtime.py'``).

    Raises:
        FileNotFoundError: no such config in the package; the message
            lists the closest names.
    """
    rel = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not rel.endswith('.py'):
        rel += '.py'
    root = packaged_config_dir()
    path = osp.join(root, rel)
    if osp.isfile(path):
        return path
    raise FileNotFoundError(
        f'config {name!r}: no file {rel!r} in the configs shipped with '
        f'mlrpl_mm ({root}){_suggest(rel)}')


def _suggest(rel: str) -> str:
    import difflib
    close = difflib.get_close_matches(rel, packaged_configs(), n=3,
                                      cutoff=0.5)
    return f' (did you mean {", ".join(close)}?)' if close else ''


def resolve_config(config: str) -> str:
    """A config argument as a file path.

    An existing file is returned as is; ``mlrpl_mm::NAME`` or a bare
    ``NAME`` / ``NAME.py`` that is not a file is looked up among the shipped
    configs (:func:`packaged_config_path`).

    Raises:
        FileNotFoundError: neither a file nor a shipped config.
    """
    if not config.startswith(PREFIX) and osp.isfile(config):
        return config
    if config.startswith(PREFIX):
        return packaged_config_path(config)
    if osp.dirname(config) == '':
        try:
            return packaged_config_path(config)
        except FileNotFoundError:
            rel = config if config.endswith('.py') else config + '.py'
            raise FileNotFoundError(
                f'config not found: {config!r} is neither a file nor a '
                f'config shipped with mlrpl_mm{_suggest(rel)}') from None
    raise FileNotFoundError(f'config not found: {config!r}')


def install() -> None:
    """Let mmengine's ``Config`` resolve ``mlrpl_mm::NAME.py`` (idempotent).

    ``_base_`` entries with the prefix load the shipped file with no scope
    (exactly like a local ``_base_`` file: every mlrpl-mm component lives in
    mmpretrain's registries); other prefixes go to mmengine unchanged.
    """
    from mmengine.config import Config
    from mmengine.config import utils as cfg_utils

    cfg_utils.MODULE2PACKAGE.setdefault('mlrpl_mm', 'mlrpl-mm')
    current = Config.__dict__['_get_cfg_path']
    original = current.__func__ if isinstance(current, staticmethod) \
        else current
    if getattr(original, '_mlrpl_mm', False):
        return

    def _get_cfg_path(cfg_path: str, filename: str):
        if cfg_path.startswith(PREFIX):
            return packaged_config_path(cfg_path), None
        return original(cfg_path, filename)

    _get_cfg_path._mlrpl_mm = True  # type: ignore[attr-defined]
    Config._get_cfg_path = staticmethod(_get_cfg_path)
