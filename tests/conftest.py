"""Shared fixtures: installed-plugin environments and the CLI runner."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Seen in CI launched as ``nohup ... &``: a shell without job control starts
    background commands with SIGINT ignored, Python then installs no Ctrl-C handler, and
    every test that presses Ctrl-C failed. Restore it here; processes the tests start
    inherit the default disposition."""
    import signal

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: two workers per core. Most slow tests wait on subprocesses (an
    ``arena`` command importing torch, a Ray or Slurm job, a plugin that hangs until its
    time limit), so a second test per core fills the idle time: on 2 cores the suite took
    11.3 minutes with 4 workers against 14.4 with 2, in the same conditions."""
    return 2 * (os.cpu_count() or 1)


def pytest_report_header(config):
    import pluggy
    import timm
    import torch

    cuda = torch.version.cuda if torch.cuda.is_available() else "absent"
    versions = f"torch {torch.__version__} (CUDA {cuda}), timm {timm.__version__}"
    return f"{versions}, pluggy {pluggy.__version__}"


#: The test files that take longest (worker seconds, 2 cores, 4 workers), started first so
#: that no worker is left alone with one of them at the end; the rest keep their order.
LONGEST_FIRST = (
    "test_ray_executor.py", "test_plugin_packages.py", "test_run.py", "test_faults.py",
    "test_timeouts.py", "test_slurm_executor.py", "test_pool.py", "test_timeouts_ray.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny cells run fastest on one thread, and far faster on a busy machine; a module
    uses it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    from msda_arena.methods import registry as plugins

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


def make_venv(path: Path) -> Path:
    """A throwaway virtual environment at ``path`` that sees this interpreter's packages
    (torch, msda-arena...) but installs into its own site-packages, so the main
    environment is never changed; returns its python.

    Works the same whether the tests run in the base interpreter or in a virtual
    environment: ``--system-site-packages`` would show the *base* interpreter's packages
    (from inside a venv: no torch, no msda-arena, an old setuptools), so instead a
    ``.pth`` file adds this interpreter's own site directories (their ``.pth`` files,
    editable installs included, processed too) after the new environment's. It has no
    pip of its own (quicker to make): ``python -m pip`` runs this environment's pip,
    which installs into the environment it runs in.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    own_site = venv_run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", check=True
    ).stdout.strip()
    parents = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        parents.append(site.getusersitepackages())
    lines = [f"import site; site.addsitedir({str(d)!r})" for d in parents if d != own_site]
    (Path(own_site) / "_arena_tests_parent.pth").write_text("\n".join(lines) + "\n")
    return python


def venv_run(
    python: Path,
    *args: str,
    env: dict | None = None,
    cwd: Path | None = None,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``python args...`` (a :func:`make_venv` interpreter) in a subprocess, pip
    quiet about its own version; ``check`` raises with the output on failure."""
    full_env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    full_env.update(env or {})
    proc = subprocess.run(
        [str(python), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or REPO,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    return proc


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
