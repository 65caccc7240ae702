"""A hung plugin does not hang the grid (issue 15): a method that sleeps or spins, in the
conformance check or in training, under the local executor and the pool (Ray:
test_timeouts_ray.py), becomes a failed record naming the time limit; the other cells
train and ``arena run`` exits 1, within the limit plus a few seconds. A pool worker
killed by a signal is named by it."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from conftest import install_fake_plugin, run_arena

from msda_arena.store.results import load_results

pytestmark = pytest.mark.slow

#: The cells' time limit in these tests: a tiny cell trains in a few seconds.
LIMIT = 10

HANG = """
import os, signal, sys, time
from msda_arena import MaskMethod, hookimpl


def _in_check():
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "preflight":
            return True
        frame = frame.f_back
    return False


def _flat(lam, height, width):
    return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()


class _Hang(MaskMethod):
    params = ()
    where = "check"  # hang in the conformance "check", or in "training"

    def masks(self, lam, height, width, generator):
        if _in_check() == (self.where == "check"):
            self.hang()
        return _flat(lam, height, width)


class Sleepy(_Hang):
    name = "sleepy"

    def hang(self):
        time.sleep(3600)


class Spinner(_Hang):
    name = "spinner"

    def hang(self):
        while True:  # a busy loop, never sleeping
            pass


class SleepyTraining(Sleepy):
    name = "sleepy-training"
    where = "training"


class SpinnerTraining(Spinner):
    name = "spinner-training"
    where = "training"


class Killed(MaskMethod):
    name = "killed"
    params = ()

    def masks(self, lam, height, width, generator):
        if not _in_check():
            os.kill(os.getpid(), signal.SIGTERM)
        return _flat(lam, height, width)


@hookimpl
def register_mask_methods(register):
    for method in (Sleepy, Spinner, SleepyTraining, SpinnerTraining, Killed):
        register(method)
"""

#: Each hangs where its name says ("training", else the conformance check).
HUNG = ("sleepy", "spinner", "sleepy-training", "spinner-training")


def _run(tiny_config, results, *extra):
    methods = [arg for name in HUNG for arg in ("--method", name)]
    started = time.monotonic()
    result = run_arena(
        "run", *methods, "--config", str(tiny_config), "--results", str(results),
        "--device", "cpu", "--scenario", "small-crop", "--cell-timeout", str(LIMIT), *extra,
    )  # fmt: skip
    return result, time.monotonic() - started


def _seconds(record) -> float:
    return (
        datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
    ).total_seconds()


def check_hung_run(executor, tiny_config, tmp_path, plugin_site):
    """A method that sleeps and one that spins, each in the check and in training: four
    failed records naming the limit, the baselines trained, exit 1, each hung cell
    stopped within its limit plus a little."""
    install_fake_plugin(plugin_site, "arena-hang", HANG)
    res = tmp_path / "res"
    result, seconds = _run(tiny_config, res, *executor)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "4 cell(s) failed" in result.stderr
    frame, _ = load_results(res)
    by = frame.set_index("method")
    assert by.loc["vanilla", "status"] == "ok" and by.loc["cutmix", "status"] == "ok"
    for method in HUNG:
        where = "cell" if method.endswith("-training") else "check"
        record = by.loc[method]
        limit = f"exceeded the {where} time limit of {LIMIT} s"
        assert record["status"] == "failed" and limit in record["error"], record["error"]
        if where == "cell":  # each hung cell stopped within its limit plus a little
            assert _seconds(record) < LIMIT + 30, record["error"]
    assert seconds < 4 * LIMIT + 240  # four hung methods one after the other, at most


@pytest.mark.parametrize(
    "executor", [pytest.param([], id="local"), pytest.param(["--workers", "2"], id="pool")]
)
def test_methods_that_hang_are_failed_records_naming_the_limit(
    executor, tiny_config, tmp_path, plugin_site
):
    check_hung_run(executor, tiny_config, tmp_path, plugin_site)


def test_a_worker_killed_by_sigterm_is_named_and_not_called_out_of_memory(
    tiny_config, tmp_path, plugin_site
):
    """Seen before: every signal was reported as "killed: out of memory?"."""
    install_fake_plugin(plugin_site, "arena-hang", HANG)
    res = tmp_path / "res"
    result = run_arena(
        "run", "--method", "killed", "--config", str(tiny_config), "--results", str(res),
        "--device", "cpu", "--scenario", "small-crop", "--no-baselines", "--workers", "2",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    frame, _ = load_results(res)
    error = frame["error"].iloc[0]
    assert "worker process died of SIGTERM while training this cell" in error, error
    assert "memory" not in error
