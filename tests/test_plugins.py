"""Plugins found through real entry points of installed packages."""

import os
import subprocess
import sys

import pytest
from conftest import REPO, install_fake_plugin, run_arena

from msda_arena import get_method, list_methods
from msda_arena.api.errors import PluginError
from msda_arena.methods import registry as plugins
from msda_arena.methods.registry import registry

GOOD = """
import torch
from msda_arena import MaskMethod, hookimpl

class Halves(MaskMethod):
    name = "halves"
    summary = "left part keeps x_i"

    def masks(self, lam, height, width, generator):
        cols = torch.arange(width, device=lam.device).float()
        m = (cols[None, :] < lam[:, None] * width).float()
        return m[:, None, None, :].expand(-1, 1, height, width)

@hookimpl
def register_mask_methods(register):
    register(Halves)
"""

OUT_OF_RANGE = """
from msda_arena import MaskMethod, hookimpl

class Overshoot(MaskMethod):
    name = "overshoot"

    def masks(self, lam, height, width, generator):
        return (2 * lam).view(-1, 1, 1, 1).expand(-1, 1, height, width)

@hookimpl
def register_mask_methods(register):
    register(Overshoot)
"""

BROKEN_IMPORT = "import this_module_does_not_exist\n"

RAISING_HOOK = """
from msda_arena import hookimpl

@hookimpl
def register_mask_methods(register):
    raise RuntimeError("cannot register today")
"""

CLAIMS_CUTMIX = """
from msda_arena import MaskMethod, hookimpl

class MyCutMix(MaskMethod):
    name = "cutmix"

    def masks(self, lam, height, width, generator):
        return lam.view(-1, 1, 1, 1).expand(-1, 1, height, width)

@hookimpl
def register_mask_methods(register):
    register(MyCutMix)
"""


def test_an_installed_plugin_is_discovered_with_its_package_and_version(plugin_site):
    install_fake_plugin(plugin_site, "arena-halves", GOOD)
    info = {m.name: m for m in list_methods()}["halves"]
    assert (info.package, info.version) == ("arena-halves", "0.3.0")
    assert get_method("halves").masks.__module__ == "arena_halves"
    assert {"vanilla", "mixup", "cutmix", "hmix", "gmix", "mixup-cutmix"} <= set(registry().methods)


GRIDS = """
import torch
from msda_arena import MaskMethod, Param, hookimpl

class Grid(MaskMethod):
    name = "grid"
    params = (Param("grids", tuple[int, ...], (2, 4), "cells per side, drawn per batch"),)

    def masks(self, lam, height, width, generator):
        pick = torch.randint(len(self.grids), (1,), generator=generator, device=lam.device)
        cells = torch.tensor(self.grids, device=lam.device)[pick]
        rows = torch.arange(height, device=lam.device) * cells // height
        keep = (rows[:, None] % 2 == 0).float().expand(height, width)
        return keep.expand(lam.shape[0], 1, height, width)

@hookimpl
def register_methods(register):  # the hook's new name
    register(Grid)
"""


def test_both_hook_names_register_and_tuple_parameters_pass_arena_check(plugin_site):
    install_fake_plugin(plugin_site, "arena-halves", GOOD)  # implements register_mask_methods
    install_fake_plugin(plugin_site, "arena-grid", GRIDS)  # implements register_methods
    packages = {m.name: m.package for m in list_methods()}
    assert packages["halves"] == "arena-halves" and packages["grid"] == "arena-grid"
    assert get_method("grid(grids=[8,2,1])").spec == "grid(grids=(8,2,1))"
    checked = run_arena("check", "--method", "grid(grids=(8,3))")
    assert checked.returncode == 0, checked.stderr
    assert "grid(grids=(8,3)): all 11 rules pass" in checked.stderr
    refused = run_arena("check", "--method", "grid(grids=8)")
    assert refused.returncode == 2
    assert refused.stderr.endswith("parameter 'grids' must be tuple[int, ...], got 8\n")


def test_cli_lists_and_checks_an_installed_plugin(plugin_site):
    install_fake_plugin(plugin_site, "arena-halves", GOOD)
    listed = run_arena("methods")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "halves" in line)
    assert "arena-halves" in row and "0.3.0" in row
    checked = run_arena("check", "--method", "halves")
    assert checked.returncode == 0, checked.stderr
    assert "all 11 rules pass" in checked.stderr


def test_cli_check_fails_a_plugin_with_values_outside_0_1_naming_the_rule(plugin_site):
    install_fake_plugin(plugin_site, "arena-overshoot", OUT_OF_RANGE)
    result = run_arena("check", "--method", "overshoot")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == "arena: error: overshoot fails the mask contract: rule(s) range"
    assert "Traceback" not in result.stderr


def test_a_plugin_that_fails_to_import_is_reported_and_the_rest_keep_working(plugin_site):
    install_fake_plugin(plugin_site, "arena-broken", BROKEN_IMPORT)
    install_fake_plugin(plugin_site, "arena-halves", GOOD)
    reg = registry()
    assert [b.package for b in reg.broken] == ["arena-broken"]
    assert "this_module_does_not_exist" in reg.broken[0].error
    assert "halves" in reg.methods and "cutmix" in reg.methods
    result = run_arena("methods")
    assert result.returncode == 0
    assert "plugin 'arena-broken'" in result.stderr and "halves" in result.stdout


def test_strict_mode_makes_a_broken_plugin_fatal(plugin_site, monkeypatch):
    install_fake_plugin(plugin_site, "arena-broken", BROKEN_IMPORT)
    monkeypatch.setenv("ARENA_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="arena-broken"):
        registry()
    result = run_arena("methods")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "arena-broken" in result.stderr


def test_a_hook_that_raises_is_reported_by_package(plugin_site):
    install_fake_plugin(plugin_site, "arena-raising", RAISING_HOOK)
    reg = registry()
    assert reg.broken[0].package == "arena-raising"
    assert "cannot register today" in reg.broken[0].error
    assert "gmix" in reg.methods


def test_a_plugin_claiming_a_built_in_name_is_refused_and_the_built_in_kept(plugin_site):
    install_fake_plugin(plugin_site, "arena-copycat", CLAIMS_CUTMIX)
    reg = registry()
    assert reg.methods["cutmix"].package == "msda-arena"
    assert [b.package for b in reg.broken] == ["arena-copycat"]
    assert "built-in method name" in reg.broken[0].error


SAME_NAME = """
import torch
from msda_arena import MaskMethod, hookimpl

class Twin(MaskMethod):
    name = "twin"
    def masks(self, lam, height, width, generator):
        return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()

@hookimpl
def register_mask_methods(register):
    register(Twin)
"""


def test_two_packages_claiming_one_name_disable_only_that_name(plugin_site):
    install_fake_plugin(plugin_site, "arena-twin-a", SAME_NAME)
    install_fake_plugin(plugin_site, "arena-twin-b", SAME_NAME)
    reg = registry()
    assert "twin" not in reg.methods and "cutmix" in reg.methods  # everything else works
    with pytest.raises(PluginError, match="'twin' is registered by two packages: arena-twin-"):
        get_method("twin")
    result = run_arena("run", "--method", "twin", "--dry-run")
    assert result.returncode == 1 and "arena-twin-a and arena-twin-b" in result.stderr
    listing = run_arena("plugins")
    assert listing.returncode == 1
    assert "arena-twin-a" in listing.stdout and "disabled: claimed twice" in listing.stdout
    assert run_arena("methods", "cutmix").returncode == 0


def test_a_module_without_a_hook_and_an_unmatched_arena_plugins_entry_warn(
    plugin_site, monkeypatch
):
    install_fake_plugin(plugin_site, "arena-hookless", "X = 1\n")
    reg = registry()
    assert any("arena-hookless" in w and "no hook implementation" in w for w in reg.warnings)
    monkeypatch.setenv("ARENA_PLUGINS", "arena-hookless,arena-typo")
    plugins.reset()
    reg = registry()
    assert any("'arena-typo'" in w and "matches no installed plugin" in w for w in reg.warnings)
    result = run_arena("plugins")
    assert result.returncode == 0 and "arena-hookless" in result.stdout
    assert "arena: warning: ARENA_PLUGINS names 'arena-typo'" in result.stderr


def test_arena_plugins_env_loads_only_the_listed_packages(plugin_site, monkeypatch):
    install_fake_plugin(plugin_site, "arena-halves", GOOD)
    install_fake_plugin(plugin_site, "arena-broken", BROKEN_IMPORT)
    monkeypatch.setenv("ARENA_PLUGINS", "arena-halves")
    reg = registry()
    assert "halves" in reg.methods and reg.broken == []


def test_the_cli_loads_neither_torch_nor_plugins_at_import():
    code = (
        "import sys, msda_arena.cli.main; "
        "print('torch' in sys.modules, 'msda_arena.methods.registry' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.slow
def test_the_example_plugin_package_installs_with_pip_and_passes(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(REPO / "plugins" / "arena-stripes"),
        ],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    listed = run_arena("methods", "stripes", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "arena-stripes" in listed.stdout
    assert run_arena("check", "--method", "stripes(period=4)", env=env).returncode == 0
    own_tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "plugins" / "arena-stripes" / "tests"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
    )
    assert own_tests.returncode == 0, own_tests.stdout + own_tests.stderr


CAPITAL_NAME = GOOD.replace('name = "halves"', 'name = "Halves"')


def test_a_method_name_that_specs_cannot_reach_is_a_broken_plugin(plugin_site):
    install_fake_plugin(plugin_site, "arena-capital", CAPITAL_NAME)
    reg = registry()
    assert reg.broken[0].package == "arena-capital" and "lower-case" in reg.broken[0].error
    assert "Halves" not in reg.methods and "cutmix" in reg.methods
