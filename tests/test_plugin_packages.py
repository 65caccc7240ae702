"""Every plugin package under plugins/ works as a user installs it: pip-installed (not
editable) into one throwaway environment, each method it registers passes
`arena check` and trains one cell, and the package's own test suite passes there
(its one-cell tests deselected: the cell was just trained).

The packages are found, not listed: a folder under plugins/ with a pyproject.toml is
one. They are installed with ``--no-deps`` (pip never touches torch); their declared
dependencies that are missing here are installed first, with the torch packages
pinned to the installed versions (the test extra preinstalls them, so normally
nothing is installed).
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, make_venv, venv_run

PACKAGE_DIRS = sorted(p.parent for p in (REPO / "plugins").glob("*/pyproject.toml"))

#: Printed by the environment's python: every method with its package and source
#: file, the plugins that failed to load and the names two packages claim.
LIST_METHODS = """
import inspect, json
from msda_arena.methods.registry import registry
reg = registry()
print(json.dumps({
    "methods": {
        name: {"package": info.package, "file": inspect.getsourcefile(info.cls)}
        for name, info in reg.methods.items()
    },
    "broken": [[item.package, item.error] for item in reg.broken],
    "conflicts": reg.conflicts,
}))
"""

#: By the environment's python, for the method argv[1]: ``arena check`` (the command
#: itself, run in this process to save a start-up), then one cell in the folder argv[2].
CHECK_AND_CELL = """
import json, sys
from typer.testing import CliRunner
from msda_arena.cli.main import app
from msda_arena.pluginkit.conformance import one_cell_run
check = CliRunner().invoke(app, ["check", "--method", sys.argv[1]])
out = {"check_exit": check.exit_code, "check_output": check.output[-3000:]}
if check.exit_code == 0:
    record = one_cell_run(sys.argv[1], sys.argv[2])
    keys = ("status", "error", "method_package", "method_version", "top1")
    out.update({key: str(record[key]) for key in keys})
print(json.dumps(out))
"""

TORCH_FAMILY = re.compile(r"torch|torchvision|torchaudio|triton|nvidia-.*")


def _project(package_dir: Path) -> dict:
    return tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]


def _normal(name: str) -> str:
    """A distribution name in its normal form (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _missing(requirements: list[str]) -> list[str]:
    """The requirements this environment does not satisfy."""
    from packaging.requirements import Requirement

    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def _torch_pins() -> str:
    """Constraints that keep every installed torch package at its version."""
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        name = _normal(dist.metadata["Name"] or "")
        if TORCH_FAMILY.fullmatch(name):
            pins.setdefault(name, f"{name}=={dist.version}")
    return "".join(f"{pin}\n" for pin in pins.values())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """One environment with every plugin package installed from a copy (building in
    plugins/ would write build/ and *.egg-info there, and reuse stale ones)."""
    root = tmp_path_factory.mktemp("plugin-packages")
    python = make_venv(root / "venv")
    pip = ("-m", "pip", "install", "--quiet", "--no-build-isolation")
    missing = sorted(
        {r for d in PACKAGE_DIRS for r in _missing(_project(d).get("dependencies", []))}
    )
    if missing:
        constraints = root / "constraints.txt"
        constraints.write_text(_torch_pins())
        venv_run(python, *pip, "--constraint", str(constraints), *missing, check=True)
    copies = {}
    for package_dir in PACKAGE_DIRS:
        copies[package_dir.name] = root / "src" / package_dir.name
        shutil.copytree(
            package_dir,
            copies[package_dir.name],
            ignore=shutil.ignore_patterns(
                "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "*.pyc"
            ),
        )
    install = (*pip, "--no-deps", "--no-index")
    errors = {}
    if venv_run(python, *install, *map(str, copies.values())).returncode != 0:
        for name, copy in copies.items():  # one by one, to name the broken ones
            proc = venv_run(python, *install, str(copy))
            if proc.returncode != 0:
                errors[name] = proc.stderr[-3000:]
    listed = venv_run(python, "-c", LIST_METHODS, cwd=root, check=True)
    return SimpleNamespace(
        root=root,
        venv=(root / "venv").resolve(),
        python=python,
        errors=errors,
        copies=copies,
        listing=json.loads(listed.stdout.strip().splitlines()[-1]),
    )


@pytest.mark.slow
@pytest.mark.parametrize("package_dir", PACKAGE_DIRS, ids=lambda d: d.name)
def test_plugin_package_installs_checks_and_trains(env, package_dir):
    assert package_dir.name not in env.errors, (
        f"pip install {package_dir.name} failed:\n{env.errors.get(package_dir.name)}"
    )
    project = _project(package_dir)
    dist = _normal(project["name"])
    broken = [error for package, error in env.listing["broken"] if _normal(package) == dist]
    assert broken == [], f"{dist} failed to load: {broken}"
    claimed = {
        name: packages
        for name, packages in env.listing["conflicts"].items()
        if dist in map(_normal, packages)
    }
    assert claimed == {}, f"{dist} registers names another package registers: {claimed}"
    methods = sorted(
        name for name, info in env.listing["methods"].items() if _normal(info["package"]) == dist
    )
    assert methods, f"{dist} is installed but registers no method"
    for name in methods:
        source = Path(env.listing["methods"][name]["file"]).resolve()
        assert source.is_relative_to(env.venv), f"{name} came from {source}, not the install"
        work = env.root / "runs" / name
        cell = venv_run(env.python, "-c", CHECK_AND_CELL, name, str(work), cwd=env.root)
        assert cell.returncode == 0, f"check and one cell of {name}:\n{cell.stderr[-3000:]}"
        record = json.loads(cell.stdout.strip().splitlines()[-1])
        assert record["check_exit"] == 0, f"arena check --method {name}:\n{record['check_output']}"
        assert "rules pass" in record["check_output"]
        assert record["status"] == "ok", record["error"]
        assert _normal(record["method_package"]) == dist
        if "version" in project:  # not when dynamic
            assert record["method_version"] == project["version"]
    tests = env.copies[package_dir.name] / "tests"
    if tests.is_dir():
        own = venv_run(
            env.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not one_cell",
            str(tests), cwd=env.copies[package_dir.name],
        )  # fmt: skip
        only_deselected = own.returncode == 5 and "deselected" in own.stdout
        assert own.returncode == 0 or only_deselected, (
            f"{dist}'s own tests failed:\n{own.stdout[-3000:]}\n{own.stderr[-2000:]}"
        )


@pytest.mark.slow
def test_the_mixer_runs_every_shipped_plugin_as_installed(env):
    """``msda_arena.mixer`` with each shipped plugin (issue 17): the plugin cases of
    tests/test_mixer.py, which skip where a plugin is not installed, run in this
    environment, where every one is; none may skip."""
    mixer_tests = REPO / "tests" / "test_mixer.py"
    own = venv_run(
        env.python, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-rs",
        "-k", "plugin", str(mixer_tests), cwd=env.root,
    )  # fmt: skip
    assert own.returncode == 0, f"{own.stdout[-3000:]}\n{own.stderr[-2000:]}"
    assert "not installed here" not in own.stdout, own.stdout[-3000:]
    assert " passed" in own.stdout
