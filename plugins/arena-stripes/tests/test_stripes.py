"""A plugin's own test suite, using the conformance checks msda-arena exports."""

from msda_arena.testing import assert_conforms


def test_stripes_conforms_to_the_mask_contract():
    assert_conforms("stripes")
    assert_conforms("stripes(period=4,vertical=false)")
