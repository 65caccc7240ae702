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

WHERE = {where!r}  # hang in the conformance "check", or in "training"


def _in_check():
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "preflight":
            return True
        frame = frame.f_back
    return False


class Sleepy(MaskMethod):
    name = "sleepy"
    params = ()

    def masks(self, lam, height, width, generator):
        if WHERE == "signal" and not _in_check():
            os.kill(os.getpid(), signal.SIGTERM)
        if _in_check() == (WHERE == "check"):
            time.sleep(3600)
        return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()


class Spinner(Sleepy):
    name = "spinner"

    def masks(self, lam, height, width, generator):
        if _in_check() == (WHERE == "check"):
            while True:  # a busy loop, never sleeping
                pass
        return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()


@hookimpl
def register_mask_methods(register):
    register(Sleepy)
    if WHERE != "signal":
        register(Spinner)
"""


def _run(tiny_config, results, *extra):
    started = time.monotonic()
    result = run_arena(
        "run", "--method", "sleepy", "--method", "spinner", "--config", str(tiny_config),
        "--results", str(results), "--device", "cpu", "--scenario", "small-crop",
        "--cell-timeout", str(LIMIT), *extra,
    )  # fmt: skip
    return result, time.monotonic() - started


def _seconds(record) -> float:
    return (
        datetime.fromisoformat(record["finished_at"]) - datetime.fromisoformat(record["started_at"])
    ).total_seconds()


def check_hung_run(where, executor, tiny_config, tmp_path, plugin_site):
    """Sleepy and Spinner hang ``where``: both are failed records naming the limit, the
    baselines train, exit 1, each hung cell stopped within its limit plus a little."""
    install_fake_plugin(plugin_site, "arena-hang", HANG.format(where=where))
    res = tmp_path / "res"
    result, seconds = _run(tiny_config, res, *executor)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "2 cell(s) failed" in result.stderr
    frame, _ = load_results(res)
    by = frame.set_index("method")
    assert by.loc["vanilla", "status"] == "ok" and by.loc["cutmix", "status"] == "ok"
    limit = f"exceeded the {'check' if where == 'check' else 'cell'} time limit of {LIMIT} s"
    for method in ("sleepy", "spinner"):
        record = by.loc[method]
        assert record["status"] == "failed" and limit in record["error"], record["error"]
        if where == "training":  # each hung cell stopped within its limit plus a little
            assert _seconds(record) < LIMIT + 30, record["error"]
    assert seconds < 2 * LIMIT + 240  # two hung methods one after the other, at most


@pytest.mark.parametrize(
    "executor", [pytest.param([], id="local"), pytest.param(["--workers", "2"], id="pool")]
)
@pytest.mark.parametrize("where", ["check", "training"])
def test_a_method_that_hangs_is_a_failed_record_naming_the_limit(
    where, executor, tiny_config, tmp_path, plugin_site
):
    check_hung_run(where, executor, tiny_config, tmp_path, plugin_site)


def test_a_worker_killed_by_sigterm_is_named_and_not_called_out_of_memory(
    tiny_config, tmp_path, plugin_site
):
    """Seen before: every signal was reported as "killed: out of memory?"."""
    install_fake_plugin(plugin_site, "arena-hang", HANG.format(where="signal"))
    res = tmp_path / "res"
    result = run_arena(
        "run", "--method", "sleepy", "--config", str(tiny_config), "--results", str(res),
        "--device", "cpu", "--scenario", "small-crop", "--no-baselines", "--workers", "2",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    frame, _ = load_results(res)
    error = frame["error"].iloc[0]
    assert "worker process died of SIGTERM while training this cell" in error, error
    assert "memory" not in error
