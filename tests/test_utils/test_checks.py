"""mlrpl_mm.utils.checks: the choice check and its two message styles."""
import pytest

from mlrpl_mm.utils import check_choice, choices_text


def test_choices_text():
    assert choices_text(('a', )) == "'a'"
    assert choices_text(('a', 'b')) == "'a' or 'b'"
    assert choices_text((None, 'train', 'val')) == "None, 'train' or 'val'"


def test_check_choice_passes_and_messages():
    check_choice('split', 'train', ('train', 'test'), 'X')
    check_choice('mode', None, (None, 'a'))
    with pytest.raises(ValueError) as e:
        check_choice('split', 'val', ('train', 'test'), 'NUSWideMultiLabel')
    assert str(e.value) == ("NUSWideMultiLabel: split must be 'train' or "
                            "'test', got 'val'")
    with pytest.raises(ValueError) as e:
        check_choice('on_conflict', 'x', ('error', 'unknown'),
                     'OpenImagesMultiLabel', one_of=True)
    assert str(e.value) == ("OpenImagesMultiLabel: on_conflict must be one "
                            "of ('error', 'unknown'), got 'x'")
    with pytest.raises(ValueError) as e:
        check_choice('dataset', 'z', ['coco', 'voc'], one_of=True)
    assert str(e.value) == "dataset must be one of ['coco', 'voc'], got 'z'"
