"""``arena run --executor ray`` on a real local Ray instance (2 CPUs), no mocks.

The plugins that fail are real packages installed into a site folder that is on
PYTHONPATH before Ray starts, so Ray's worker processes import them as the driver does.
They misbehave only in a process other than this test's (a Ray worker): the driver's
conformance preflight, which calls them here, sees well-behaved methods. A worker
death is a real SIGKILL of the worker process. Ray starts once for the module; the one
command-line test starts (and stops) its own instance as a user's run does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, install_fake_plugin, run_arena

from msda_arena.execute.base import Reporter, create_executor
from msda_arena.execute.local import LocalExecutor
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import load_config
from msda_arena.methods import registry as plugins
from msda_arena.store.results import cell_path, read_result
from msda_arena.train import interrupts

NO_RAY = "Ray is not installed: pip install 'msda-arena[ray]'"
pytestmark = pytest.mark.slow
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason=NO_RAY)

DRIVER = os.getpid()

# Each method masks like vanilla (all ones) except on a Ray worker, where it misbehaves.
PLUGIN = """
import os, signal
from pathlib import Path
import torch
from msda_arena import MaskMethod, hookimpl

DRIVER = {driver}
MARKS = Path({marks!r})


def on_worker():
    return os.getpid() != DRIVER


class Raiser(MaskMethod):
    name = "raiser"

    def masks(self, lam, height, width, generator):
        if on_worker():
            raise RuntimeError("raiser exploded on a worker")
        return torch.ones(lam.shape[0], 1, height, width)


class KillOnce(MaskMethod):
    name = "kill_once"

    def masks(self, lam, height, width, generator):
        mark = MARKS / "kill_once"
        if on_worker() and not mark.exists():
            mark.write_text(str(os.getpid()))  # the retry finds it and trains
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.ones(lam.shape[0], 1, height, width)


class KillAlways(MaskMethod):
    name = "kill_always"

    def masks(self, lam, height, width, generator):
        if on_worker():
            with (MARKS / "kill_always").open("a") as f:
                f.write(f"{{os.getpid()}}\\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return torch.ones(lam.shape[0], 1, height, width)


@hookimpl
def register_mask_methods(register):
    register(Raiser)
    register(KillOnce)
    register(KillAlways)
"""


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local Ray instance with 2 CPUs whose workers see the test plugins; yields the
    folder where the plugins leave their marks."""
    ray = pytest.importorskip("ray", reason=NO_RAY)
    base = tmp_path_factory.mktemp("ray")
    site, marks = base / "site", base / "marks"
    marks.mkdir()
    install_fake_plugin(site, "arena-ray-faults", PLUGIN.format(driver=DRIVER, marks=str(marks)))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
        mp.delenv("RAY_ADDRESS", raising=False)
        plugins.reset()
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        try:
            yield marks
        finally:
            ray.shutdown()
            plugins.reset()


@pytest.fixture
def tiny(tiny_config):
    cfg = load_config(tiny_config)
    return cfg, cfg.profiles["tiny"]


def ray_executor(tiny, results: Path, **options):
    cfg, prof = tiny
    return create_executor("ray", RunSettings(cfg, prof, results), **options)


def stored(results: Path, cell):
    return read_result(cell_path(results, cell.dataset, cell.key))


def results_in(results: Path) -> list[str]:
    """The result files' names (not the report's index cache)."""
    return sorted(p.name for p in results.rglob("*.parquet") if not p.name.startswith("."))


def leftovers(results: Path) -> list[Path]:
    """Claims and temporary files still in the store."""
    return [p for p in results.rglob("*") if p.is_file() and (p.suffix in (".claim", ".tmp"))]


@needs_ray
def test_cli_ray_run_matches_the_local_executor(tiny_config, tmp_path):
    """The real command starts its own Ray instance, keeps Ray off stdout (the
    leaderboard's) and stores the same cells with the same top-1 as the local executor."""
    args = ["run", "--method", "mixup", "--config", str(tiny_config), "--device", "cpu",
            "--scenario", "large-crop"]  # fmt: skip
    env = {"RAY_ADDRESS": ""}
    ray_run = run_arena(*args, "--results", str(tmp_path / "ray"), "--executor", "ray", env=env)
    assert ray_run.returncode == 0, ray_run.stderr
    assert "3 trained, 0 already stored, 0 failed" in ray_run.stderr
    assert ray_run.stdout.startswith("msda-arena leaderboard"), ray_run.stdout[:500]
    assert "Traceback" not in ray_run.stderr and "(raylet)" not in ray_run.stderr

    cfg = load_config(tiny_config)
    prof = cfg.profiles["tiny"]
    cells = build_cells(cfg, prof, ["mixup"], scenarios=("large-crop",), baselines=prof.baselines)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Ray task (num_cpus=1); also far faster on a busy host
    try:
        local = LocalExecutor(RunSettings(cfg, prof, tmp_path / "local")).run(cells)
    finally:
        torch.set_num_threads(threads)
    assert len(local.done) == 3
    for cell in cells:
        on_ray, here = stored(tmp_path / "ray", cell), stored(tmp_path / "local", cell)
        assert on_ray["status"] == here["status"] == "ok"
        assert on_ray["key"] == here["key"] == cell.key
        assert on_ray["top1"] == here["top1"], cell.label()
    assert results_in(tmp_path / "ray") == results_in(tmp_path / "local")
    assert leftovers(tmp_path / "ray") == []


def test_without_ray_the_command_says_how_to_install_it(tiny_config, tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"  # what `import ray` does when it is absent
        "from msda_arena.cli.main import main\n"
        f"main(['run', '--method', 'mixup', '--config', {str(tiny_config)!r}, '--results', "
        f"{str(tmp_path / 'res')!r}, '--device', 'cpu', '--executor', 'ray'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "arena: error: --executor ray needs Ray: pip install 'msda-arena[ray]'"
    ]
    assert not (tmp_path / "res").exists()


def test_a_cell_that_raises_on_a_worker_is_a_failed_record(ray_cluster, tiny, tmp_path):
    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["raiser"], scenarios=("large-crop",), baselines=["vanilla"])
    summary = ray_executor(tiny, tmp_path / "res").run(cells)
    assert [c.method for c in summary.done] == ["vanilla"]
    assert [(c.method, "raiser exploded on a worker" in e) for c, e in summary.failed] == [
        ("raiser", True)
    ]
    raiser, vanilla = (stored(tmp_path / "res", c) for c in cells)
    assert raiser["status"] == "failed"
    assert "raised RuntimeError('raiser exploded on a worker') in masks()" in raiser["error"]
    assert vanilla["status"] == "ok"
    assert leftovers(tmp_path / "res") == []


def test_a_killed_worker_is_retried_and_its_cell_stored_once(ray_cluster, tiny, tmp_path):
    """The worker is SIGKILLed mid-cell, holding the cell's claim; Ray's retry takes the
    dead worker's claim over at once and trains the cell: one ok file, no claim left."""
    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["kill_once"], scenarios=("large-crop",))
    started = time.monotonic()
    summary = ray_executor(tiny, tmp_path / "res").run(cells)
    assert (ray_cluster / "kill_once").exists()  # a worker did die mid-cell
    assert int((ray_cluster / "kill_once").read_text()) != DRIVER
    assert summary.failed == [] and summary.done == cells
    assert stored(tmp_path / "res", cells[0])["status"] == "ok"
    assert results_in(tmp_path / "res") == [f"{cells[0].key}.parquet"]
    assert leftovers(tmp_path / "res") == []
    assert time.monotonic() - started < 120  # the claim was taken over, not timed out


def test_a_cell_whose_worker_always_dies_is_a_failed_record(ray_cluster, tiny, tmp_path):
    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["kill_always"], scenarios=("large-crop",))
    executor = ray_executor(tiny, tmp_path / "res")
    executor.max_retries = 1
    summary = executor.run(cells)
    deaths = (ray_cluster / "kill_always").read_text().split()
    assert len(deaths) == 2 and len(set(deaths)) == 2  # the first try and one retry
    assert summary.done == [] and [c for c, _ in summary.failed] == cells
    record = stored(tmp_path / "res", cells[0])
    assert record["status"] == "failed"
    assert record["error"].startswith("Ray worker died while training this cell, 2 tries: ")
    assert leftovers(tmp_path / "res") == []


def test_a_cell_another_run_holds_is_waited_for_then_trained(ray_cluster, tiny, tmp_path):
    """A live claim (this process's, as another `arena run` on this host would hold it)
    sends no task: the run waits, and trains the cell once the claim is released. The
    check a worker on the claim owner's node makes says the same."""
    import threading

    from msda_arena.execute.ray import _claims_free_here
    from msda_arena.store import claims

    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["vanilla"], scenarios=("large-crop",))
    res = tmp_path / "res"
    executor = ray_executor(tiny, res)
    assert _claims_free_here(executor.settings, cells) == ["free"]
    claim = claims.try_claim(res, cells[0].dataset, cells[0].key)
    assert claim is not None
    assert _claims_free_here(executor.settings, cells) == [None]  # live: hands off

    seen: list[str] = []

    class Notes(Reporter):
        def note(self, message):
            seen.append(message)

    timer = threading.Timer(2.0, claim.release)
    timer.start()
    try:
        summary = executor.run(cells, Notes())
    finally:
        timer.cancel()
        claim.release()
    assert summary.done == cells
    assert any(m.startswith("waiting for 1 cell(s) that another run is training") for m in seen)
    assert stored(res, cells[0])["status"] == "ok" and leftovers(res) == []


def test_ctrl_c_cancels_the_tasks_and_a_rerun_resumes(ray_cluster, tiny, tmp_path):
    cfg, prof = tiny
    cells = build_cells(cfg, prof, ["mixup"], baselines=["vanilla", "cutmix"])  # 6 cells
    res = tmp_path / "res"

    class CtrlCAfterFirst(Reporter):
        def cell_end(self, cell, record):
            os.kill(os.getpid(), signal.SIGINT)  # the user's Ctrl-C

    with pytest.raises(KeyboardInterrupt), interrupts.watching():
        ray_executor(tiny, res).run(cells, CtrlCAfterFirst())
    time.sleep(1)  # a force-cancelled worker is killed within milliseconds
    kept = set(results_in(res))
    assert 1 <= len(kept) < len(cells)
    time.sleep(3)  # a task that was not cancelled would store its cell meanwhile
    assert set(results_in(res)) == kept
    for name in kept:
        assert read_result(next(res.rglob(name)))["status"] == "ok"

    resumed = ray_executor(tiny, res).run(cells)  # killed workers' claims are taken over
    assert len(resumed.skipped) == len(kept) and len(resumed.done) == len(cells) - len(kept)
    assert leftovers(res) == []


@needs_ray
def test_bad_options_and_an_address_where_nothing_answers_are_one_line(tiny, tiny_config, tmp_path):
    from msda_arena.api.errors import UsageError

    with pytest.raises(UsageError, match="--gpus is for --executor local"):
        ray_executor(tiny, tmp_path / "res", gpus=(0,))
    with pytest.raises(UsageError, match="--cells-per-gpu 0: must be between 1 and 100000"):
        ray_executor(tiny, tmp_path / "res", cells_per_gpu=0)
    result = run_arena(
        "run", "--method", "vanilla", "--config", str(tiny_config), "--device", "cpu",
        "--results", str(tmp_path / "res"), "--executor", "ray", "--ray-address", "127.0.0.1:1",
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("arena: error: Ray cluster address 127.0.0.1:1 ") and (
        "nothing answers there" in last and "ray start --head" in last
    )
    assert "Traceback" not in result.stderr and not list((tmp_path / "res").rglob("*.parquet"))
