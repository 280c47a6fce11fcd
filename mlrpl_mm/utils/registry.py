"""Distinctive registry names, with the old generic names kept as aliases.

mmpretrain's ``MODELS`` is one global registry shared by every plugin that a
config imports, so a generic name (``GMC``, ``EMLoss``) can collide with
another plugin's. Our classes register under distinctive names
(``SigRLGMC``, ``SPMLEMLoss``); the old names stay loadable from existing
configs through :func:`register_alias`, which registers an alias only while
the name is free and never replaces another plugin's class.
"""
from typing import Dict, Type

from mmengine.registry import Registry

#: old (generic) name -> new (distinctive) name, per registry, for the docs
ALIASES: Dict[str, str] = {}


def register_alias(registry: Registry, old_name: str, cls: Type) -> bool:
    """Register ``cls`` under ``old_name`` too, if that name is free.

    Args:
        registry (Registry): e.g. mmpretrain's ``MODELS``.
        old_name (str): The generic name older configs use.
        cls (type): The class, already registered under its new name.

    Returns:
        bool: True when the alias was registered (or already pointed at
        ``cls``); False when another class holds the name (that plugin's
        class is left untouched; configs of ours use the new name).
    """
    ALIASES[old_name] = cls.__name__
    held = registry.get(old_name) if old_name in registry.module_dict else None
    if held is cls:
        return True
    if held is not None:
        return False
    registry.register_module(name=old_name, module=cls)
    return True
