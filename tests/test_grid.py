import re

import pytest
from conftest import TINY_TOML

from msda_arena.api.errors import ConfigError, UsageError
from msda_arena.execute.plan import plan_run
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


def test_threads_and_determinism_are_part_of_the_recipe_so_never_averaged(tiny_config):
    """Issue 15: one quick cell gave 47.85 top-1 with one torch thread and 46.68 with
    two; the settings enter the recipe hash, so results under other settings are other
    cells (the report keeps the latest recipe per scenario), whatever the executor."""
    def planned(**recipe):
        ex, cells = plan_run(["hmix"], "cpu", tiny_config, "tiny", dry_run=True, recipe=recipe)
        return ex.settings.recipe, {c.key for c in cells}

    default, keys = planned()
    assert (default.threads, default.deterministic) == (1, False)
    two, keys_two = planned(threads=2)
    det, keys_det = planned(deterministic=True)
    assert (two.threads, det.deterministic) == (2, True)
    assert not keys & keys_two and not keys & keys_det and not keys_two & keys_det
    assert planned(threads=None)[1] == keys  # not given: the recipe's
    changed = cfg(TINY_TOML.replace("lr = 0.05", "lr = 0.05\nthreads = 2"))
    assert build_cells(changed, changed.profiles["tiny"], ["hmix"])[0].key in keys_two
    with pytest.raises(ConfigError, match="threads = 0 is out of range"):
        cfg(TINY_TOML.replace("lr = 0.05", "lr = 0.05\nthreads = 0"))
