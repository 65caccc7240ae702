import re

import pytest
from conftest import TINY_TOML

from msda_arena.api.errors import UsageError
from msda_arena.grid.cells import build_cells, parse_seeds, validate_archs
from msda_arena.grid.config import parse_config


def cfg(text=TINY_TOML):
    return parse_config(text, "arena.toml")


def test_the_grid_is_methods_times_archs_times_scenarios_times_seeds():
    c = cfg()
    prof = c.profiles["tiny"]
    cells = build_cells(c, prof, ["hmix(r=0.25)"], seeds=(0, 1, 2), baselines=["vanilla", "cutmix"])
    assert len(cells) == 3 * 1 * 2 * 3
    assert [x.method for x in cells[:6]] == ["hmix(r=0.25)"] * 6
    assert len({x.key for x in cells}) == len(cells)
    # a method that is also a baseline runs once
    assert len(build_cells(c, prof, ["cutmix"], baselines=["vanilla", "cutmix"])) == 2 * 2


def test_keys_are_stable_file_names_and_track_the_recipe():
    c = cfg()
    prof = c.profiles["tiny"]
    key = build_cells(c, prof, ["hmix(r=0.25)"])[0].key
    assert key == build_cells(cfg(), prof, ["hmix(r=0.25)"])[0].key
    assert all(ch.isalnum() or ch in "_.=-" for ch in key)
    assert re.fullmatch(r"tiny__resnet8_cifar__large-crop__hmix_r=0\.25-[0-9a-f]{10}__s0__\w+", key)
    changed = cfg(TINY_TOML.replace("lr = 0.05", "lr = 0.02"))
    assert build_cells(changed, changed.profiles["tiny"], ["hmix(r=0.25)"])[0].key != key
    extra = cfg(
        TINY_TOML
        + '\n[profiles.other]\ndataset = "procedural"\narchs = ["x"]\n'
        + 'scenarios = ["large-crop"]\nseeds = [0]\nrecipe = "tiny"\n'
    )
    assert build_cells(extra, extra.profiles["tiny"], ["hmix(r=0.25)"])[0].key == key


def test_seeds_and_filters():
    assert parse_seeds("0,1,2") == (0, 1, 2)
    assert parse_seeds("0-3,5") == (0, 1, 2, 3, 5)
    for bad in ("a", "3-1", "1,,2"):
        with pytest.raises(UsageError, match="--seeds"):
            parse_seeds(bad)
    c = cfg()
    with pytest.raises(UsageError, match="unknown scenario 'standard'"):
        build_cells(c, c.profiles["tiny"], ["mixup"], scenarios=("standard",))


def test_unknown_architecture_suggests_timm_names():
    with pytest.raises(UsageError, match=r"unknown architecture 'resnet8_cfar'.*resnet8_cifar"):
        validate_archs(("resnet8_cfar",))
    validate_archs(("resnet8_cifar", "resnet50"))


def test_a_scenario_description_edit_keeps_every_key():
    c = cfg()
    edited = cfg(
        TINY_TOML.replace("scale = [2.0, 4.0]", 'scale = [2.0, 4.0]\ndescription = "zoom out"')
    )
    assert [x.key for x in build_cells(c, c.profiles["tiny"], ["mixup"])] == [
        x.key for x in build_cells(edited, edited.profiles["tiny"], ["mixup"])
    ]
    moved = cfg(TINY_TOML.replace("scale = [2.0, 4.0]", "scale = [2.0, 3.0]"))
    assert (
        build_cells(moved, moved.profiles["tiny"], ["mixup"])[0].key
        != build_cells(c, c.profiles["tiny"], ["mixup"])[0].key
    )


def test_two_specs_with_one_slug_never_share_a_file(tiny_config):
    """Before the spec hash in the key, `coll(a_b=2)` and `coll_a(b=2)` both became
    `coll_a_b=2` and `--force` on one destroyed the other's result."""
    from msda_arena.api.record import cell_key

    one = cell_key("p", "resnet8_cifar", "standard", "coll(a_b=2)", 0, "r")
    two = cell_key("p", "resnet8_cifar", "standard", "coll_a(b=2)", 0, "r")
    assert one != two
    assert one.lower() != two.lower()  # case-insensitive file systems too
    upper = cell_key("p", "resnet8_cifar", "standard", "m(mode=Batch)", 0, "r")
    lower = cell_key("p", "resnet8_cifar", "standard", "m(mode=batch)", 0, "r")
    assert upper.lower() != lower.lower()
