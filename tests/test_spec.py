import pytest

from msda_arena import MaskMethod, Param, SpecError, get_method
from msda_arena.api.spec import parse_spec, slug


@pytest.mark.parametrize(
    ("text", "name", "params"),
    [
        ("hmix", "hmix", {}),
        ("hmix(r=0.25)", "hmix", {"r": 0.25}),
        (" mixup ( alpha = 0.4 ) ", "mixup", {"alpha": 0.4}),
        ("stripes(period=4,vertical=false)", "stripes", {"period": 4, "vertical": False}),
        ("MixUp-CutMix(p=1)", "mixup-cutmix", {"p": 1}),
        ("gridmix(grids=(2,4,8), mode=batch)", "gridmix", {"grids": (2, 4, 8), "mode": "batch"}),
        (
            "gridmix(grids=[2, 4.5], one=(2,), empty=())",
            "gridmix",
            {"grids": (2, 4.5), "one": (2,), "empty": ()},
        ),
        (
            "gridmix(grids=2_4_8, words=(a,'b,c'))",
            "gridmix",
            {"grids": "2_4_8", "words": ("a", "b,c")},
        ),
        (
            "m(a='24', b=\"true\", c=True, d=1e3)",
            "m",
            {"a": "24", "b": "true", "c": True, "d": 1000.0},
        ),
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
        ("hmix(r=[[1]])", "number"),
        ("hmix(r=1e999)", "finite"),
        ("g(grids=(2,,4))", "no value"),
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


class GridMix(MaskMethod):
    """A method with tuple and string parameters, as GridMix's author wanted."""

    name = "gridmix"
    params = (
        Param("grids", tuple[int, ...], (2, 4, 8), "grid sizes", lambda g: all(g), "sizes > 0"),
        Param("scales", tuple[float, ...], (0.5,)),
        Param("mode", str, "batch"),
    )


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("gridmix", "gridmix"),
        ("gridmix(grids=[2,4,8], scales=(0.5))", "gridmix"),  # the defaults, as a list too
        ("gridmix(grids=(4,2))", "gridmix(grids=(4,2))"),
        ("gridmix(grids=(16,))", "gridmix(grids=(16,))"),
        ("gridmix(grids=[], scales=(1, 2))", "gridmix(grids=(),scales=(1.0,2.0))"),
        ("gridmix(mode=2_4)", "gridmix(mode=2_4)"),  # a str stays the str typed
        ("gridmix(mode='2,4')", "gridmix(mode='2,4')"),
        ("gridmix(mode='24')", "gridmix(mode='24')"),  # quoted: it would read as a number
        ("gridmix(mode='true')", "gridmix(mode='true')"),
        ('gridmix(mode="x")', "gridmix(mode=x)"),
    ],
)
def test_tuple_and_string_values_have_one_canonical_form_that_parses_back(given, canonical):
    method = GridMix(**parse_spec(given).params)
    assert method.spec == canonical
    assert GridMix(**parse_spec(canonical).params).values == method.values
    assert all(c.isalnum() or c in "_.=-" for c in slug(canonical))


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("gridmix(grids=2)", "must be tuple[int, ...], got 2"),
        ("gridmix(grids=(2,x))", "must be tuple[int, ...]"),
        ("gridmix(grids=(2,0))", "sizes > 0"),
        ("gridmix(mode=24)", "must be str, got 24 (quote a string: mode='24')"),
        ("gridmix(mode=(a,b))", "must be str"),
    ],
)
def test_tuple_and_string_parameters_are_checked(given, fragment):
    with pytest.raises(SpecError) as info:
        GridMix(**parse_spec(given).params)
    assert fragment in str(info.value)


def test_existing_specs_keep_their_canonical_form():
    """The canonical spec is part of every result key: stored results stay current."""
    for spec in ("hmix(alpha=2.0,r=0.25)", "mixup(alpha=0.4)", "mixup-cutmix(p=0.3)", "cutmix"):
        assert get_method(spec).spec == spec
    assert get_method("hmix(r=.25,alpha=2)").spec == "hmix(alpha=2.0,r=0.25)"
