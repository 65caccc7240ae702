"""`arena new-plugin`: the package it writes installs, passes `arena check`, lists its
parameters and passes its own tests; every mistake is one line and nothing is
overwritten."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tomllib
from types import SimpleNamespace

import pytest
from conftest import install_fake_plugin, make_venv, run_arena, venv_run

from msda_arena.api.contract import ALPHA, FeatureMixMethod, MaskMethod, MixMethod
from msda_arena.api.errors import UsageError
from msda_arena.pluginkit.conformance import FEATURE_RULES, MIX_RULES, RULES, run_checks
from msda_arena.pluginkit.scaffold import parse_param, write_plugin

KINDS = {
    "mask": (
        "demo-mask",
        ["k:int=3", "soft:bool=false", "mode:str=batch", "r:float=0.25", "grids:tuple[int]=2,4,8"],
    ),
    "mix": ("demo-mix", ["alpha:float=0.4", "mode:str=batch", "scales:tuple[float]=(0.5)"]),
    "feature": ("demo-feature", ["mode:str=batch", "depth:int=2"]),
}
BASES = {"mask": MaskMethod, "mix": MixMethod, "feature": FeatureMixMethod}


def _load(package, name):
    """Import a written package's module from its file (no install)."""
    module = "arena_" + name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module, package / module / "__init__.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _errors(stderr):
    """The stderr lines that are not warnings (other installed plugins may warn)."""
    return [line for line in stderr.splitlines() if not line.startswith("arena: warning: ")]


@pytest.mark.parametrize("kind", KINDS)
def test_write_plugin_writes_a_complete_package(tmp_path, kind):
    name, params = KINDS[kind]
    package = write_plugin(name, kind=kind, params=params, directory=tmp_path / "new")
    assert package == (tmp_path / "new" / f"arena-{name}").resolve()
    module = "arena_" + name.replace("-", "_")
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert files == sorted(
        [
            "README.md",
            "pyproject.toml",
            f"{module}/__init__.py",
            f"tests/test_{name.replace('-', '_')}.py",
        ]
    )
    project = tomllib.loads((package / "pyproject.toml").read_text())
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["name"] == f"arena-{name}"
    assert project["project"]["version"] == "0.1.0"
    assert project["project"]["dependencies"] == []  # never torch nor msda-arena
    assert project["project"]["entry-points"]["msda_arena"] == {name: module}
    tests = (package / f"tests/test_{name.replace('-', '_')}.py").read_text()
    assert "assert_conforms" in tests and "one_cell_run" in tests
    readme = (package / "README.md").read_text()
    for command in ("pip install -e", f"arena check --method {name}", f"arena run --method {name}"):
        assert command in readme
    source = (package / module / "__init__.py").read_text()
    assert "TODO" in source and "@hookimpl" in source
    assert not list(tmp_path.glob("new/.arena-*")), "the staging folder was left behind"


@pytest.mark.parametrize("kind", KINDS)
def test_the_written_method_conforms_and_has_its_params(tmp_path, kind):
    name, params = KINDS[kind]
    mod = _load(write_plugin(name, kind=kind, params=params, directory=tmp_path), name)
    registered = []
    mod.register_methods(registered.append)
    (cls,) = registered
    assert issubclass(cls, BASES[kind])
    assert cls.name == name and cls.summary and mod.__version__ == "0.1.0"
    defaults = {p.name: p.default for p in cls.params}
    if kind == "mask":
        assert cls.params[0] is ALPHA  # added: alpha was not declared
        assert defaults == {
            "alpha": 1.0,
            "k": 3,
            "soft": False,
            "mode": "batch",
            "r": 0.25,
            "grids": (2, 4, 8),
        }
        assert {p.name: p.type for p in cls.params} == {
            "alpha": float,
            "k": int,
            "soft": bool,
            "mode": str,
            "r": float,
            "grids": tuple[int, ...],
        }
        assert cls(grids=[4, 16]).spec == "demo-mask(grids=(4,16))"
    elif kind == "mix":
        assert defaults == {"alpha": 0.4, "mode": "batch", "scales": (0.5,)}  # one alpha
        with pytest.raises(UsageError, match="alpha > 0"):
            cls(alpha=0.0)
    else:
        assert defaults == {"mode": "batch", "depth": 2}  # no alpha added: as a mixing method
    failed = [r for r in run_checks(cls()) if not r.passed]
    assert failed == []
    if kind == "mask":
        import torch

        lam = torch.tensor([0.0, 0.3, 0.5, 1.0])
        masks = cls(k=5).masks(lam, 8, 10, torch.Generator().manual_seed(0))
        assert torch.allclose(masks.mean(dim=(1, 2, 3)), lam)  # mean(M) == lambda exactly


def test_a_method_without_params_and_an_empty_target_folder(tmp_path):
    (tmp_path / "arena-bare").mkdir()  # empty: filled, not refused
    package = write_plugin("bare", kind="mix", directory=tmp_path)
    mod = _load(package, "bare")
    assert mod.Bare.params == ()
    assert [r for r in run_checks(mod.Bare()) if not r.passed] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k:int=3", ("k", "int", 3)),
        (" k : int = -2 ", ("k", "int", -2)),
        ("r:float=1e-3", ("r", "float", 0.001)),
        ("r:float=2", ("r", "float", 2.0)),
        ("flip:bool=True", ("flip", "bool", True)),
        ("flip:bool=false", ("flip", "bool", False)),
        ("mode:str=per_batch", ("mode", "str", "per_batch")),
        ("grids:str=2_4_8", ("grids", "str", "2_4_8")),  # a word, not the number 248
        ("grids:str='2,4,8'", ("grids", "str", "2,4,8")),
        ("grids:tuple[int]=2,4,8", ("grids", "tuple[int]", (2, 4, 8))),
        ("grids:tuple[int]=[2, 4]", ("grids", "tuple[int]", (2, 4))),
        ("scales:tuple[float]=0.5", ("scales", "tuple[float]", (0.5,))),
        ("modes:tuple[str]=a,'b,c'", ("modes", "tuple[str]", ("a", "b,c"))),
    ],
)
def test_param_defaults_are_parsed_to_their_type(text, expected):
    param = parse_param(text)
    assert (param.name, param.type, param.default) == expected
    assert type(param.default) is type(expected[2])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("k", "NAME:TYPE=DEFAULT"),
        ("k=3", "NAME:TYPE=DEFAULT"),
        ("k:int", "NAME:TYPE=DEFAULT"),
        ("k:int=", "the default is missing"),
        ("K:int=1", "not a parameter name"),
        ("k:complex=1", "unknown type 'complex'"),
        ("k:int=1.5", "'1.5' does not read as int; write it as in a spec, e.g. k:int=3"),
        ("r:float=nan", "does not read as float"),
        ("r:float=1e999", "does not read as float"),
        ("flip:bool=yes", "does not read as bool"),
        ("mode:str=two words", "does not read as str"),
        ("grids:tuple[int]=2,x", "does not read as tuple[int]; write it as in a spec, e.g."),
        ("grids:tuple[int]=2,2.5", "does not read as tuple[int]"),
        ("grids:tuple[int=2", "unknown type"),
        ("values:int=1", "reserved"),
        ("name:str=x", "reserved"),
        ("alpha:float=0", "A > 0"),
        ("alpha:int=2", "A > 0"),
    ],
)
def test_bad_params_are_refused(text, fragment):
    with pytest.raises(UsageError, match="--param") as info:
        parse_param(text)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_cli_errors_are_one_line_and_write_nothing(tmp_path):
    occupied = tmp_path / "arena-demo"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me")
    cases = [
        (["new-plugin", "Demo"], "is not a method name"),
        (["new-plugin", "9lives"], "is not a method name"),
        (["new-plugin", "de.mo"], "is not a method name"),
        (["new-plugin", "cutmix"], "taken by a built-in method; choose another, e.g. 'my-cutmix'"),
        (["new-plugin", "demo", "--kind", "both"], "--kind 'both': use mask, mix or feature"),
        (["new-plugin", "demo", "--param", "k=3"], "write NAME:TYPE=DEFAULT"),
        (["new-plugin", "demo", "--param", "k:list=1"], "unknown type 'list'"),
        (["new-plugin", "demo", "--param", "k:int=x"], "the default 'x' does not read as int"),
        (["new-plugin", "demo", "-p", "k:int=1", "-p", "k:int=2"], "'k' is given twice"),
        (["new-plugin", "demo"], "already exists and is not empty"),
    ]
    for args, fragment in cases:
        result = run_arena(*args, "--dir", str(tmp_path))
        assert result.returncode == 2, (args, result.stderr)
        errors = _errors(result.stderr)
        assert len(errors) == 1 and errors[0].startswith("arena: error: "), result.stderr
        assert fragment in errors[0], (args, errors[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arena-demo"]
    assert [p.name for p in occupied.iterdir()] == ["mine.txt"]
    assert (occupied / "mine.txt").read_text() == "keep me"


def test_an_installed_plugins_name_is_refused(plugin_site, tmp_path):
    install_fake_plugin(
        plugin_site,
        "arena-halves",
        """
        from msda_arena import MaskMethod, hookimpl

        class Halves(MaskMethod):
            name = "halves"

        @hookimpl
        def register_mask_methods(register):
            register(Halves)
        """,
    )
    target = tmp_path / "new"
    result = run_arena("new-plugin", "halves", "--dir", str(target))
    assert result.returncode == 2
    (error,) = _errors(result.stderr)
    assert "'halves' is taken by the installed package 'arena-halves'" in error
    assert "e.g. 'my-halves'" in error
    assert not target.exists()


@pytest.mark.skipif(shutil.which("ruff") is None, reason="needs ruff")
def test_the_written_code_is_lint_clean_and_formatted(tmp_path):
    for kind, (name, params) in KINDS.items():
        write_plugin(name, kind=kind, params=params, directory=tmp_path)
    write_plugin("bare", kind="mask", directory=tmp_path)
    rules = "E,W,F,I,B,UP,SIM,RUF"
    for command in (
        ["ruff", "check", "--isolated", "--select", rules, "--target-version", "py311"],
        ["ruff", "format", "--isolated", "--check"],
    ):
        # from tmp_path: in the repository, msda_arena would count as first-party
        proc = subprocess.run(
            [*command, str(tmp_path)], capture_output=True, text=True, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


# Installed for real: `arena new-plugin` (the CLI), then `pip install -e` into a
# throwaway environment that sees this one's packages; only the demos load there.
ONLY_DEMOS = {
    "ARENA_PLUGINS": "arena-demo-mask,arena-demo-mix,arena-demo-feature",
    "COLUMNS": "200",
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaffold")
    packages = {}
    for kind, (name, params) in KINDS.items():
        options = [arg for p in params for arg in ("--param", p)]
        result = run_arena("new-plugin", name, "--kind", kind, *options, "--dir", str(root))
        assert result.returncode == 0, result.stderr
        path = root / f"arena-{name}"
        assert result.stdout.splitlines() == [
            str(path),
            "next:",
            f"    pip install -e {path}",
            f"    arena check --method {name}",
            f"    arena run --method {name}",
        ]
        packages[kind] = path
    python = make_venv(root / "venv")
    editable = [arg for path in packages.values() for arg in ("-e", str(path))]
    venv_run(
        python,
        *("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"),
        *editable,
        check=True,
    )
    return SimpleNamespace(root=root, python=python, packages=packages)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_installed_plugin_passes_arena_check(installed, kind):
    name = KINDS[kind][0]
    tuples = {
        "mask": "demo-mask(grids=(4,16),mode='2,4')",
        "mix": "demo-mix(scales=[1,0.25])",
        "feature": "demo-feature(depth=3)",
    }[kind]
    rules = {"mask": RULES, "mix": MIX_RULES, "feature": FEATURE_RULES}[kind]
    for method in (name, f"{name}(mode=other)", tuples):
        result = venv_run(
            installed.python,
            *("-m", "msda_arena.cli.main", "check", "--method", method),
            env=ONLY_DEMOS,
            cwd=installed.root,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"all {len(rules)} rules pass" in result.stderr


@pytest.mark.slow
def test_installed_plugins_are_listed_with_their_params(installed):
    result = venv_run(
        installed.python,
        *("-m", "msda_arena.cli.main", "methods", "demo-*"),
        env=ONLY_DEMOS,
        cwd=installed.root,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t")[:5] for line in result.stdout.splitlines()[1:]]  # tsv off a tty
    params = "alpha=1.0, k=3, soft=false, mode=batch, r=0.25, grids=(2,4,8)"
    assert rows == [
        ["demo-feature", "feature", "mode=batch, depth=2", "arena-demo-feature", "0.1.0"],
        ["demo-mask", "mask", params, "arena-demo-mask", "0.1.0"],
        ["demo-mix", "mix", "alpha=0.4, mode=batch, scales=(0.5,)", "arena-demo-mix", "0.1.0"],
    ]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mix", "feature"])
def test_the_written_packages_own_tests_pass(installed, kind):
    result = venv_run(
        installed.python,
        *("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"),
        env=ONLY_DEMOS,
        cwd=installed.packages[kind],
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def test_a_feature_methods_own_attributes_are_reserved_for_it_only(tmp_path):
    with pytest.raises(UsageError, match="'stage' is reserved by FeatureMixMethod"):
        write_plugin("demo-f", kind="feature", params=["stage:int=1"], directory=tmp_path)
    # a mask method has no stage(): the name stays free there
    write_plugin("demo-m", kind="mask", params=["stage:int=1"], directory=tmp_path)
