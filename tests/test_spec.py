import pytest

from msda_arena import SpecError, get_method
from msda_arena.api.spec import parse_spec, slug


@pytest.mark.parametrize(
    ("text", "name", "params"),
    [
        ("hmix", "hmix", {}),
        ("hmix(r=0.25)", "hmix", {"r": 0.25}),
        (" mixup ( alpha = 0.4 ) ", "mixup", {"alpha": 0.4}),
        ("stripes(period=4,vertical=false)", "stripes", {"period": 4, "vertical": False}),
        ("MixUp-CutMix(p=1)", "mixup-cutmix", {"p": 1}),
    ],
)
def test_parse_spec(text, name, params):
    parsed = parse_spec(text)
    assert parsed.name == name
    assert parsed.params == params


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("hmix(r)", "key=value"),
        ("hmix(r=0.2, r=0.3)", "twice"),
        ("hmix(r=[1])", "number"),
        ("hmix(r=0.2", "malformed"),
        ("Hm!x", "not a method name"),
    ],
)
def test_malformed_specs_say_what_is_wrong(text, fragment):
    with pytest.raises(SpecError, match=fragment):
        parse_spec(text)


def test_canonical_spec_is_unique_per_method_and_parameters():
    assert get_method("hmix").spec == "hmix"
    assert get_method("hmix(r=0.5)").spec == "hmix"  # the default is not written
    assert get_method("hmix(r=0.25)").spec == "hmix(r=0.25)"
    assert get_method("hmix(alpha=1, r=0.25)").spec == "hmix(r=0.25)"
    assert get_method("hmix( r = .25 , alpha=2)").spec == "hmix(alpha=2.0,r=0.25)"
    assert get_method("mixup(alpha=0.4)").spec == "mixup(alpha=0.4)"


def test_method_parameters_are_checked_strictly():
    with pytest.raises(SpecError, match=r"unknown parameter 'q'.*alpha, r"):
        get_method("hmix(q=1)")
    with pytest.raises(SpecError, match="must be float"):
        get_method("hmix(r=big)")
    with pytest.raises(SpecError, match="0 < r <= 1"):
        get_method("hmix(r=1.5)")
    with pytest.raises(SpecError, match="alpha > 0"):
        get_method("mixup(alpha=0)")
    with pytest.raises(SpecError, match=r"unknown method 'cutmx'.*cutmix"):
        get_method("cutmx")


def test_slug_is_file_name_safe():
    for spec in ("hmix(r=0.25)", "mixup-cutmix(alpha=2.0,p=0.3)", "stripes(vertical=false)"):
        s = slug(spec)
        assert all(c.isalnum() or c in "_.=-" for c in s), s
    assert slug("hmix(r=0.25)") != slug("hmix(r=0.5)")


def test_word_values_are_bare_words_so_the_canonical_form_parses_back():
    assert parse_spec("m(mode=batch)").params == {"mode": "batch"}
    for bad in ("m(mode='a b')", "m(mode=a-b)"):
        with pytest.raises(SpecError):
            parse_spec(bad)
