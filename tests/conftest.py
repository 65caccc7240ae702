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


TINY_TOML = """
[defaults]
profile_gpu = "tiny"
profile_cpu = "tiny"
results = "results"

[scenarios.large-crop]
scale = [2.0, 4.0]
ratio = [0.75, 1.3333333333333333]
flip = true

[scenarios.small-crop]
scale = [0.25, 0.5]
ratio = [0.75, 1.3333333333333333]
flip = true

[recipes.tiny]
epochs = 2
batch_size = 32
lr = 0.05
warmup_epochs = 1

[profiles.tiny]
dataset = "procedural"
dataset_options = { train_size = 128, test_size = 64, num_classes = 4, image_size = 16, \
object_scale = 0.6 }
archs = ["resnet8_cifar"]
scenarios = ["large-crop", "small-crop"]
seeds = [0]
recipe = "tiny"
baselines = ["vanilla", "cutmix"]
"""


@pytest.fixture
def tiny_config(tmp_path):
    """An arena.toml with a seconds-long 'tiny' profile; returns its path."""
    path = tmp_path / "arena.toml"
    path.write_text(TINY_TOML)
    return path
