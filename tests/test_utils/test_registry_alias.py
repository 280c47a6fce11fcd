"""register_alias: old generic names stay loadable, never steal a name."""
from mmengine.registry import Registry

from mlrpl_mm.utils.registry import register_alias


def test_alias_registers_free_name_and_is_idempotent():
    reg = Registry('alias_test_a')

    @reg.register_module(name='DistinctiveA')
    class A:
        pass

    assert register_alias(reg, 'A', A)
    assert reg.get('A') is A and reg.get('DistinctiveA') is A
    assert register_alias(reg, 'A', A)  # second import: still fine
    assert reg.build(dict(type='A')).__class__ is A


def test_alias_never_replaces_another_plugins_class():
    reg = Registry('alias_test_b')

    class Theirs:
        pass

    class Ours:
        pass

    reg.register_module(name='GMC', module=Theirs)
    assert not register_alias(reg, 'GMC', Ours)
    assert reg.get('GMC') is Theirs
