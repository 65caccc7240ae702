from pathlib import Path

import pytest
from conftest import REPO

from msda_arena.api.errors import ConfigError, UsageError
from msda_arena.grid.config import load_config, parse_config


def test_repo_arena_toml_is_the_embedded_default():
    """One file: the repository's arena.toml is a link to the package's."""
    embedded = REPO / "msda_arena" / "grid" / "default_arena.toml"
    assert (REPO / "arena.toml").resolve() == embedded.resolve()


def test_the_profiles_draw_on_the_one_list_of_baselines_and_scenario_order(tmp_path, monkeypatch):
    """grid.config owns the built-in methods, the compared baselines and the scenario
    order; methods.BUILTINS and every default profile agree with it."""
    from msda_arena.grid import COMPARED_BASELINES, REFERENCE_METHODS, SCENARIO_ORDER
    from msda_arena.methods import BUILTINS

    assert tuple(cls.name for cls in BUILTINS) == REFERENCE_METHODS
    assert set(COMPARED_BASELINES) < set(REFERENCE_METHODS)
    monkeypatch.chdir(tmp_path)  # no ./arena.toml: the embedded default
    cfg = load_config()
    assert tuple(cfg.scenarios) == SCENARIO_ORDER
    for prof in cfg.profiles.values():
        assert list(prof.baselines) == [m for m in REFERENCE_METHODS if m in prof.baselines]
        assert list(prof.scenarios) == [s for s in SCENARIO_ORDER if s in prof.scenarios]


def test_default_profiles_are_complete(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./arena.toml: the embedded default
    cfg = load_config()
    assert "embedded" in cfg.path
    assert {"quick", "fashion", "cifar100", "imagenet100"} <= set(cfg.profiles)
    assert cfg.profile(None, cuda=False).name == "quick"
    assert cfg.profile(None, cuda=True).name == "cifar100"
    cifar = cfg.profiles["cifar100"]
    assert {"large-crop", "small-crop"} <= set(cifar.scenarios) and len(cifar.seeds) >= 3
    assert set(cifar.archs) == {
        "resnet56_cifar",
        "wrn28_2_cifar",
        "preactresnet18_cifar",
        "preactresnet34_cifar",
        "preactresnet50_cifar",
    }
    paper = {"vanilla", "mixup", "cutmix", "hmix", "gmix"}
    for prof in cfg.profiles.values():  # the paper's tables also list Stochastic Mixup & CutMix
        extra = (
            {"mixup-cutmix"}
            if prof.name in ("cifar100", "imagenet100", "speed", "fashion")
            else set()
        )
        assert set(prof.baselines) == paper | extra
    with pytest.raises(UsageError, match=r"unknown profile 'nope'.*quick"):
        cfg.profile("nope", cuda=False)


def test_every_default_architecture_is_a_timm_name():
    from msda_arena.grid.cells import validate_archs

    cfg = load_config(REPO / "arena.toml")
    for prof in cfg.profiles.values():
        validate_archs(prof.archs)


BASE = (REPO / "arena.toml").read_text()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "\n[profiles.x\n", r"^my/arena.toml:\d+:12: invalid TOML: Expected"),
        (
            lambda t: t.replace("epochs = 8 ", 'epochs = "four" '),
            r"\[recipes.quick\]: 'epochs' must be a int",
        ),
        (
            lambda t: t.replace('recipe = "quick"', 'recipe = "fast"'),
            r"recipe 'fast' is not defined",
        ),
        (
            lambda t: t.replace(
                'scenarios = ["large-crop", "small-crop"]\nseeds = [0, 1]\nrecipe = "quick"',
                'scenarios = ["tiny-crop"]\nseeds = [0, 1]\nrecipe = "quick"',
            ),
            "scenario 'tiny-crop' is not defined",
        ),
        (lambda t: t.replace("lr = 0.1 ", "lrate = 0.1 ", 1), "unknown key 'lrate'"),
        (
            lambda t: t.replace(
                'seeds = [0, 1]\nrecipe = "quick"', 'seeds = [-1]\nrecipe = "quick"'
            ),
            "'seeds'",
        ),
        (lambda t: t.replace("scale = [0.25, 0.5]", "scale = [0.5, 0.25]"), "small-crop"),
        (
            lambda t: t.replace('profile_cpu = "quick"', 'profile_cpu = "laptop"'),
            "undefined profile 'laptop'",
        ),
    ],
)
def test_malformed_config_names_file_table_and_key(edit, message):
    text = edit(BASE)
    assert text != BASE
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(text, "my/arena.toml")
    assert str(info.value).startswith("my/arena.toml")
    assert "\n" not in str(info.value)


def test_missing_config_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_config(Path(tmp_path / "none.toml"))


def test_local_arena_toml_wins_over_the_embedded_one(tmp_path, monkeypatch):
    (tmp_path / "arena.toml").write_text(
        BASE.replace('seeds = [0, 1]\nrecipe = "quick"', 'seeds = [7]\nrecipe = "quick"')
    )
    monkeypatch.chdir(tmp_path)
    assert load_config().profiles["quick"].seeds == (7,)


def test_names_that_cannot_be_file_names_are_refused():
    with pytest.raises(ConfigError, match=r"\[scenarios.large crop\]: a name may hold only"):
        parse_config(BASE.replace("[scenarios.large-crop]", '[scenarios."large crop"]'))
