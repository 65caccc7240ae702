"""Shared fixtures: installed-plugin environments and the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config):
    import pluggy
    import timm
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else "absent"
    versions = f"torch {torch.__version__} (CUDA {cuda}), timm {timm.__version__}"
    return f"{versions}, pluggy {pluggy.__version__}"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def install_fake_plugin(
    site: Path, package: str, module_source: str, entry_name: str | None = None
) -> Path:
    """Install a plugin package into ``site`` the way pip does: module + dist-info with
    a real ``msda_arena`` entry point that importlib.metadata discovers."""
    module = package.replace("-", "_")
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    dist = site / f"{module}-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text(f"[msda_arena]\n{entry_name or module} = {module}\n")
    return site


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A directory on sys.path (and PYTHONPATH for subprocesses) to install plugins into."""
    from msda_arena import plugins

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    plugins.reset()
    yield site
    plugins.reset()


def run_arena(
    *args: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run the real ``arena`` entry point in a subprocess."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "msda_arena.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=600,
    )
