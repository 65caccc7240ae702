"""`arena run --executor slurm` end to end, on submitit's local executor.

``ARENA_SLURM_CLUSTER=local`` runs the very code path of a Slurm run (one job array
through ``map_array``, a ``Checkpointable`` per element, the outcome files, the
driver's polling) with each array element a real subprocess on this machine. Nothing
is mocked: real ``arena`` commands, real signals (``SIGUSR2`` is what Slurm sends on
preemption, ``SIGKILL`` what the out-of-memory killer sends, ``SIGINT`` the user's
Ctrl-C), plugins installed as packages. What needs a real Slurm (sbatch, sacct,
scontrol requeue, claims across nodes) is not covered here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, install_fake_plugin, run_arena

pytest.importorskip("submitit", reason="needs submitit: pip install 'msda-arena[slurm]'")

from msda_arena.api.errors import UsageError
from msda_arena.execute.base import create_executor
from msda_arena.execute.local import LocalExecutor
from msda_arena.execute.slurm import CLUSTER_ENV
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import load_config
from msda_arena.store.claims import pid_alive, read_claim
from msda_arena.store.results import cell_path, load_results, read_result

pytestmark = pytest.mark.slow

# The array on local processes; one torch thread each, as a one-CPU Slurm task would
# have (several elements share this machine's cores).
LOCAL = {CLUSTER_ENV: "local", "OMP_NUM_THREADS": "1"}

BROKEN = """
import os
import signal

from msda_arena import MaskMethod, hookimpl


class _InJob(MaskMethod):
    # Well-behaved in the driver's conformance checks; broken inside an array element.
    params = ()

    def masks(self, lam, height, width, generator):
        if os.environ.get("SUBMITIT_EXECUTOR"):
            self.broken()
        return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()


class Boom(_InJob):
    name = "boom"

    def broken(self):
        raise RuntimeError("kaboom")


class Crash(_InJob):
    name = "crash"

    def broken(self):  # what the out-of-memory killer does
        os.kill(os.getpid(), signal.SIGKILL)


@hookimpl
def register_mask_methods(register):
    register(Boom)
    register(Crash)
"""

SLEEPY = """
import os
import time

from msda_arena import MaskMethod, hookimpl


class Sleepy(MaskMethod):
    # In its first array element: writes its pid to $SLEEPY_PIDFILE and sleeps in
    # training, for the test to signal it; afterwards an ordinary mask.
    name = "sleepy"
    params = ()

    def masks(self, lam, height, width, generator):
        pidfile = os.environ.get("SLEEPY_PIDFILE", "")
        if pidfile and os.environ.get("SUBMITIT_EXECUTOR") and not os.path.exists(pidfile):
            with open(pidfile + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(pidfile + ".tmp", pidfile)
            time.sleep(120)
        return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()


@hookimpl
def register_mask_methods(register):
    register(Sleepy)
"""


def _run_args(config: Path, results: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--config",
        str(config),
        "--results",
        str(results),
        "--device",
        "cpu",
        "--executor",
        "slurm",
        "--slurm-gpus",
        "0",
        *extra,
    ]


def _popen(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    with log.open("w") as handle:  # a file, not a pipe: the local jobs outlive the driver
        return subprocess.Popen(
            [sys.executable, "-m", "msda_arena.cli.main", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **env},
        )


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _read_pid(path: Path) -> int:
    _until(path.exists, 90, f"{path}")
    return int(path.read_text())


def _cells(config: Path, method: str, **kwargs):
    cfg = load_config(config)
    prof = cfg.profiles["tiny"]
    return cfg, prof, build_cells(cfg, prof, [method], baselines=[], **kwargs)


def test_wait_lands_every_cell_with_the_local_executors_keys_and_top1(tiny_config, tmp_path):
    results = tmp_path / "res"
    done = run_arena(
        *_run_args(tiny_config, results, "--method", "mixup", "--no-baselines", "--wait"),
        env=LOCAL,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"submitted 2 cell\(s\) as local jobs \d+, \d+", done.stderr)
    assert "2 trained, 0 already stored, 0 failed" in done.stderr
    assert "mixup" in done.stdout  # the leaderboard

    cfg, prof, cells = _cells(tiny_config, "mixup")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the elements: the same arithmetic, the same numbers
    try:
        assert len(LocalExecutor(RunSettings(cfg, prof, tmp_path / "local")).run(cells).done) == 2
    finally:
        torch.set_num_threads(threads)
    frame, warnings = load_results(results)
    local, _ = load_results(tmp_path / "local")
    assert warnings == []
    assert sorted(frame.key) == sorted(local.key) == sorted(c.key for c in cells)
    assert (frame.status == "ok").all()
    assert dict(zip(frame.key, frame.top1, strict=True)) == dict(
        zip(local.key, local.top1, strict=True)
    )
    # The job files: one folder per run under the (ignored) .slurm dot-folder.
    (folder,) = (results / ".slurm").iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}Z", folder.name)
    assert len(list(folder.glob("*_log.out"))) == 2
    assert not list(results.rglob("*.claim")), "an element kept its claim"


def test_a_failing_cell_and_a_killed_job_are_failed_records_and_the_others_land(
    tiny_config, tmp_path, plugin_site
):
    install_fake_plugin(plugin_site, "arena-broken-jobs", BROKEN)
    results = tmp_path / "res"
    methods = ["--method", "boom", "--method", "crash", "--method", "mixup"]
    done = run_arena(
        *_run_args(
            tiny_config, results, *methods, "--no-baselines", "--scenario", "small-crop", "--wait"
        ),
        env=LOCAL,
    )
    assert done.returncode == 1, done.stderr
    assert "2 cell(s) failed" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    frame, warnings = load_results(results)
    assert warnings == []
    rows = frame.set_index("method")
    assert rows.loc["mixup", "status"] == "ok"
    # Its own code failed: the element stored the failed record.
    assert rows.loc["boom", "status"] == "failed"
    assert "kaboom" in rows.loc["boom", "error"]
    # The job died (SIGKILL) mid-cell: the driver stored the failed record, naming the job.
    assert rows.loc["crash", "status"] == "failed"
    error = rows.loc["crash", "error"]
    assert re.search(r"local job \d+ ended without storing its cell; log: .*_log\.err", error)
    assert not list(results.rglob("*.claim")), "a claim outlived its job"


def test_without_wait_it_prints_the_job_ids_returns_and_the_cells_land_later(
    tiny_config, tmp_path, monkeypatch
):
    results = tmp_path / "res"
    log = tmp_path / "driver.log"
    driver = _popen(
        _run_args(tiny_config, results, "--method", "mixup", "--no-baselines"), log, LOCAL
    )
    assert driver.wait(timeout=120) == 0, log.read_text()
    cfg, prof, cells = _cells(tiny_config, "mixup")

    def stored() -> int:
        return sum(read_result(cell_path(results, c.dataset, c.key)) is not None for c in cells)

    landed_at_return = stored()
    text = log.read_text()
    found = re.search(
        r"submitted 2 cell\(s\) as local jobs (\d+), (\d+) \(ARENA_SLURM_CLUSTER=local; "
        r"logs in (\S+)\); follow with: the same arena run command plus --dry-run",
        text,
    )
    assert found, text
    assert f"arena report --results {results}" in text
    assert "trained," not in text  # no summary, no leaderboard: it did not wait
    assert landed_at_return < 2

    _until(lambda: stored() == 2, 120, "the jobs to store their cells")
    jobs = [int(found.group(1)), int(found.group(2))]
    _until(lambda: not any(pid_alive(p) for p in jobs), 60, "the jobs to exit")
    assert not list(results.rglob("*.claim"))
    for c in cells:
        assert read_result(cell_path(results, c.dataset, c.key))["status"] == "ok"
    # What has landed, as `arena run --dry-run` sees it (no Slurm needed for that).
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(CLUSTER_ENV, raising=False)
    executor = create_executor("slurm", RunSettings(cfg, prof, results))
    assert [status for _, status in executor.pending(cells)] == ["ok", "ok"]


def test_a_preempted_element_releases_its_claim_and_is_requeued_with_its_cell(
    tiny_config, tmp_path, plugin_site
):
    install_fake_plugin(plugin_site, "arena-sleepy", SLEEPY)
    results, pidfile = tmp_path / "res", tmp_path / "sleepy.pid"
    args = ["--method", "sleepy", "--no-baselines", "--scenario", "small-crop", "--wait"]
    driver = _popen(
        _run_args(tiny_config, results, *args),
        tmp_path / "driver.log",
        {**LOCAL, "SLEEPY_PIDFILE": str(pidfile)},
    )
    try:
        element = _read_pid(pidfile)
        (claim,) = results.rglob("*.claim")  # held while it trains
        assert read_claim(claim).pid == element
        from msda_arena.store.provenance import utc_now

        preempted_at = utc_now()
        os.kill(element, signal.SIGUSR2)  # what Slurm sends on preemption
        assert driver.wait(timeout=120) == 0, (tmp_path / "driver.log").read_text()
    finally:
        driver.kill()
    assert "1 trained, 0 already stored, 0 failed" in (tmp_path / "driver.log").read_text()
    (out,) = results.glob(".slurm/*/*_log.out")
    log = out.read_text()
    assert log.count("arena: cell sleepy") == 2  # the first attempt, then the requeued one
    assert "preempted: training stopped and the cell's claim released; requeueing" in log
    assert "waiting:" not in log  # the requeued element found no claim in its way
    assert "Requeued job" in log  # submitit requeued it
    (_, _, (cell,)) = _cells(tiny_config, "sleepy", scenarios=("small-crop",))
    record = read_result(cell_path(results, cell.dataset, cell.key))
    assert record["status"] == "ok" and record["started_at"] >= preempted_at
    assert not list(results.rglob("*.claim"))


def test_ctrl_c_while_waiting_cancels_the_jobs_and_stores_nothing(
    tiny_config, tmp_path, plugin_site
):
    install_fake_plugin(plugin_site, "arena-sleepy", SLEEPY)
    results, pidfile = tmp_path / "res", tmp_path / "sleepy.pid"
    args = ["--method", "sleepy", "--no-baselines", "--scenario", "small-crop", "--wait"]
    driver = _popen(
        _run_args(tiny_config, results, *args),
        tmp_path / "driver.log",
        {**LOCAL, "SLEEPY_PIDFILE": str(pidfile)},
    )
    try:
        element = _read_pid(pidfile)
        driver.send_signal(signal.SIGINT)
        assert driver.wait(timeout=60) == 130
    finally:
        driver.kill()
    assert "interrupted" in (tmp_path / "driver.log").read_text()
    _until(lambda: not pid_alive(element), 30, "the cancelled element to exit")
    assert not list(results.rglob("*.parquet"))  # nothing stored, no failed record either
    assert not list(results.rglob("*.claim"))  # its claim released as it stopped


def test_one_line_errors_without_slurm_or_without_submitit(tiny_config, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != CLUSTER_ENV}
    env["PATH"] = str(empty)  # no sbatch here
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "msda_arena.cli.main",
            *_run_args(tiny_config, tmp_path / "res", "--method", "mixup", "--wait"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert refused.returncode == 2
    errors = [line for line in refused.stderr.splitlines() if line.startswith("arena:")]
    assert errors == [
        "arena: error: --executor slurm: no Slurm here (sbatch is not on PATH); run arena on a "
        "Slurm login node (ARENA_SLURM_CLUSTER=local runs the jobs as local processes, for "
        "testing)"
    ]
    assert errors[0] == refused.stderr.strip().splitlines()[-1]
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())

    cfg = load_config(tiny_config)
    prof = cfg.profiles["tiny"]
    monkeypatch.setenv(CLUSTER_ENV, "debug")
    with pytest.raises(UsageError, match=r"^ARENA_SLURM_CLUSTER='debug': use 'local'"):
        create_executor("slurm", RunSettings(cfg, prof, tmp_path / "res"))
    monkeypatch.setenv(CLUSTER_ENV, "local")
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed
    with pytest.raises(UsageError) as missing:
        create_executor("slurm", RunSettings(cfg, prof, tmp_path / "res"))
    assert str(missing.value) == "--executor slurm needs submitit: pip install 'msda-arena[slurm]'"
