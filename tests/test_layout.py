"""The package's shape stays what the README's Layout says: one folder per layer, a few
root modules, and imports of the package's own modules at the top of each module (inside a
function only where start-up time needs it), so import-linter sees every dependency."""

from __future__ import annotations

import ast
import re

from conftest import REPO

PACKAGE = REPO / "msda_arena"
#: Imports of the package's own modules inside functions: each is for start-up time
#: (the CLI must not load torch for --help) and says so where it stands.
MAX_FUNCTION_IMPORTS = 30
MAX_ROOT_MODULES = 6


def _own_imports_in_functions() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "msda_arena"
                )) or (isinstance(node, ast.Import) and any(
                    a.name.startswith("msda_arena") for a in node.names
                )):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_own_imports_sit_at_the_top_of_modules():
    inside = _own_imports_in_functions()
    assert len(inside) <= MAX_FUNCTION_IMPORTS, inside


def test_the_package_root_holds_few_modules():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= MAX_ROOT_MODULES, modules


def test_the_readme_layout_names_every_subpackage_once():
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("\n\n", 2)[2]
    listed = re.findall(r"^      ([a-z_]+)/ ", block, flags=re.M)
    folders = sorted(
        p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
    )
    assert sorted(listed) == folders
