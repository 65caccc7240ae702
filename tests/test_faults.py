"""The fault suite: every way a stored number could be wrong, injected for real.

Each test runs the real ``arena`` command in subprocesses (real SIGKILL, SIGINT,
concurrent processes, broken plugins installed as packages, damaged files on disk)
and checks what a user would see: every cell stored exactly once, nothing partial
read, no temporary file left, failed cells naming their rule, damage named by
``arena report`` and ``arena verify``. Each docstring says how the test was seen to
fail with its guard removed. The figures of BENCHMARKS.md's fault table come from
this file.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, install_fake_plugin, run_arena

from msda_arena.api.record import Measurements, ResultRecord
from msda_arena.grid.cells import build_cells
from msda_arena.grid.config import parse_config
from msda_arena.store.results import (
    cell_path,
    checkpoint_path,
    load_results,
    read_result,
    write_result,
)

pytestmark = pytest.mark.slow

FAULT_TOML = """
[defaults]
profile_gpu = "fault"
profile_cpu = "fault"
results = "results"

[scenarios.large-crop]
scale = [2.0, 4.0]
ratio = [0.75, 1.3333333333333333]
flip = true

[scenarios.small-crop]
scale = [0.25, 0.5]
ratio = [0.75, 1.3333333333333333]
flip = true

[recipes.fault]
epochs = 2
batch_size = 32
lr = 0.05

[profiles.fault]
dataset = "procedural"
dataset_options = { train_size = 128, test_size = 64, num_classes = 4, image_size = 12 }
archs = ["resnet8_tiny_cifar"]
scenarios = ["large-crop", "small-crop"]
seeds = [0, 1]
recipe = "fault"
baselines = ["vanilla", "cutmix"]
"""

DONE = re.compile(r"done\s+(.*?): top-1")


@pytest.fixture
def fault(tmp_path):
    """(config path, results dir, the 12 cells of `--method mixup`)."""
    path = tmp_path / "arena.toml"
    path.write_text(FAULT_TOML)
    cfg = parse_config(FAULT_TOML, str(path))
    cells = build_cells(cfg, cfg.profiles["fault"], ["mixup"], baselines=["vanilla", "cutmix"])
    return path, tmp_path / "res", cells


def _args(config: Path, results: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--method",
        "mixup",
        "--config",
        str(config),
        "--results",
        str(results),
        "--device",
        "cpu",
        *extra,
    ]


def _popen(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "msda_arena.cli.main", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "COLUMNS": "200"},
            **kwargs,
        )


def _stored_once(results: Path, cells) -> None:
    """Exactly one valid ok file per cell, nothing else, nothing left over."""
    files = sorted(p for p in results.rglob("*") if p.is_file() and ".claims" not in p.parts)
    claim_files = [p for p in results.rglob(".claims/*") if not p.name.endswith(".takeover")]
    assert claim_files == [], claim_files  # no claim, no claimer's temporary file left
    parquet = [p for p in files if p.suffix == ".parquet" and not p.name.startswith(".")]
    assert sorted(parquet) == sorted(cell_path(results, c.dataset, c.key) for c in cells)
    for c in cells:
        record = read_result(cell_path(results, c.dataset, c.key))
        assert record is not None and record["status"] == "ok", c.key
    leftovers = [p for p in files if p.name.endswith(".tmp")]
    assert leftovers == [], leftovers
    assert not list(results.rglob("*.claim")), "a claim outlived its run"
    frame, warnings = load_results(results)
    assert warnings == [] and len(frame) == len(cells)


def test_sigkill_at_random_moments_then_resume_stores_every_cell_once(fault, tmp_path):
    """SIGKILL `arena run` four times at random moments, then resume to the end.

    Seen failing with the guard removed: with the take-over of a dead run's claim
    disabled (every claim judged live), the resume waited on the claims the killed runs
    left until the test timed out; the cells they held were never trained.
    """
    config, results, cells = fault
    rng = random.Random(1234)
    kills = 0
    trained = 0
    for attempt in range(4):
        log = tmp_path / f"kill{attempt}.log"
        proc = _popen(_args(config, results), log)
        # A random moment: after 1 or 2 more cells finish, plus up to 0.25 s (mid-cell,
        # mid-write or mid-index): the moment differs each time, the run is never done.
        target = rng.randint(1, 2)
        deadline = time.monotonic() + 120
        while (
            proc.poll() is None
            and len(DONE.findall(log.read_text())) < target
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        trained += len(DONE.findall(log.read_text()))
        # Whatever a kill left, a reader sees only whole, valid records.
        frame, warnings = load_results(results)
        assert warnings == []
        assert frame["status"].eq("ok").all()
    final = run_arena(*_args(config, results), env={"COLUMNS": "200"})
    assert final.returncode == 0, final.stderr
    trained += len(DONE.findall(final.stderr))
    assert kills >= 2  # the kills hit mid-run
    _stored_once(results, cells)
    # Each cell was trained once, plus at most the one in flight at each kill.
    assert len(cells) <= trained <= len(cells) + kills


def test_sigint_exits_130_with_a_resume_hint_and_no_partial_file(fault, tmp_path):
    """Ctrl-C (SIGINT) while a cell trains: exit 130, a resume hint, nothing partial.

    Seen failing with the guard removed: with the worker treating every
    KeyboardInterrupt as a plugin's (no `interrupts.from_user`), the SIGINT became a
    failed record and the run went on to the end (`assert 1 == 130`).
    """
    config, results, cells = fault
    log = tmp_path / "int.log"
    proc = _popen(_args(config, results), log)
    deadline = time.monotonic() + 120
    while not DONE.search(log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    text = log.read_text()
    assert "interrupted" in text and "Run the same command to resume" in text
    frame, warnings = load_results(results)
    assert warnings == [] and frame["status"].eq("ok").all() and len(frame) >= 1
    assert not [p for p in results.rglob("*.tmp")]
    assert not list(results.rglob("*.claim"))
    final = run_arena(*_args(config, results))
    assert final.returncode == 0, final.stderr
    _stored_once(results, cells)


def test_two_concurrent_runs_train_no_cell_twice_and_lose_none(fault, tmp_path):
    """Two `arena run` on one store at once: each cell trained by exactly one of them.

    Seen failing with the guard removed: without claims the two runs trained 23 cells
    between them for 12 cells (`assert 23 == 12`), rewriting each other's files.
    """
    config, results, cells = fault
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_popen(_args(config, results), log) for log in logs]
    codes = [p.wait(timeout=600) for p in procs]
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0], texts
    done = [m for t in texts for m in DONE.findall(t)]
    assert len(done) == len(cells) and len(set(done)) == len(cells)
    assert all(DONE.findall(t) for t in texts), "one run trained everything: no concurrency"
    _stored_once(results, cells)
    for text in texts:  # both print the complete leaderboard: 3 methods x 2 columns, n=2
        assert text.count("(n=2)") == 6, text


BROKEN_PLUGIN = """
import sys
import torch
from msda_arena import MaskMethod, hookimpl

TRAIN_SIZE = 12   # the fault profile's images; the conformance checks never use 12 px

class _Nth(MaskMethod):
    # Well-behaved, except on training batches from the 3rd on: only the per-batch
    # checks during training can catch these.
    params = ()
    calls = 0

    def masks(self, lam, height, width, generator):
        good = lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()
        if height != TRAIN_SIZE:
            return good
        type(self).calls += 1
        return good if type(self).calls < 3 else self.broken(good, lam, height, width)

class Boom(_Nth):
    name = "boom"
    def broken(self, good, lam, h, w):
        raise RuntimeError("kaboom")

class NanMask(_Nth):
    name = "nanmask"
    def broken(self, good, lam, h, w):
        return good * float("nan")

class WrongShape(_Nth):
    name = "wrongshape"
    def broken(self, good, lam, h, w):
        return good[:, :, : h - 1]

class OutOfRange(_Nth):
    name = "outofrange"
    def broken(self, good, lam, h, w):
        return good * 255.0

class FirstZeroThen255(MaskMethod):
    name = "first-zero"
    params = ()
    calls = 0
    def masks(self, lam, height, width, generator):
        if height != TRAIN_SIZE:
            return lam.view(-1, 1, 1, 1).expand(lam.shape[0], 1, height, width).clone()
        type(self).calls += 1
        value = 0.0 if type(self).calls == 1 else 255.0   # the first mask looks fine
        return torch.full((lam.shape[0], 1, height, width), value, device=lam.device)

class Loopy(MaskMethod):
    name = "loopy"
    params = ()
    def masks(self, lam, height, width, generator):
        out = torch.empty(lam.shape[0], 1, height, width, device=lam.device)
        for i in range(lam.shape[0]):   # a per-sample Python loop
            out[i] = float(lam[i])
        return out

class Quitter(_Nth):
    name = "quitter"
    def broken(self, good, lam, h, w):
        sys.exit(3)

class Interrupter(_Nth):
    name = "interrupter"
    def broken(self, good, lam, h, w):
        raise KeyboardInterrupt

@hookimpl
def register_mask_methods(register):
    for cls in (Boom, NanMask, WrongShape, OutOfRange, FirstZeroThen255, Loopy, Quitter,
                Interrupter):
        register(cls)
"""

#: method -> what its failed record must say.
BREAKAGES = {
    "boom": "kaboom",
    "nanmask": "'finite'",
    "wrongshape": "'shape'",
    "outofrange": "'range'",
    "first-zero": "'range'",
    "loopy": "'vectorised'",
    "quitter": "SystemExit",
    "interrupter": "KeyboardInterrupt",
}


def test_every_plugin_breakage_is_a_failed_cell_naming_the_cause(fault, tmp_path, plugin_site):
    """Eight broken methods in one `arena run`: the grid finishes, each cell a failed
    record naming its rule, the baselines trained.

    Seen failing with the guards removed: with the per-batch value checks and the
    preflight both disabled, ``loopy`` trained and was stored ``ok`` ("7 cell(s)
    failed", not 8); the out-of-range masks were then caught only by the exploding-loss
    guard. (tests/test_train_guards.py checks each guard on its own.)
    """
    install_fake_plugin(plugin_site, "arena-broken", BROKEN_PLUGIN)
    config, results, _ = fault
    methods = [a for m in BREAKAGES for a in ("--method", m)]
    result = run_arena(
        "run",
        *methods,
        "--config",
        str(config),
        "--results",
        str(results),
        "--device",
        "cpu",
        "--scenario",
        "small-crop",
        "--seeds",
        "0",
    )
    assert result.returncode == 1, result.stderr
    assert f"{len(BREAKAGES)} cell(s) failed" in result.stderr
    frame, warnings = load_results(results)
    assert warnings == []
    by_method = frame.set_index("method")
    for method, fragment in BREAKAGES.items():
        assert by_method.loc[method, "status"] == "failed", method
        assert fragment in by_method.loc[method, "error"], (method, by_method.loc[method, "error"])
    for baseline in ("vanilla", "cutmix"):
        assert by_method.loc[baseline, "status"] == "ok"
    # The same broken method with --skip-check is trained: the preflight was the guard.
    skipped = run_arena(
        "run",
        "--method",
        "loopy",
        "--no-baselines",
        "--skip-check",
        "--config",
        str(config),
        "--results",
        str(tmp_path / "other"),
        "--device",
        "cpu",
        "--scenario",
        "small-crop",
        "--seeds",
        "0",
    )
    assert skipped.returncode == 0, skipped.stderr


def _record(cells, i: int, **changes) -> ResultRecord:
    measured = {
        "top1": 50.0 + i,
        "top5": 90.0,
        "train_loss": 1.0,
        "epochs": 2,
        "wall_time_s": 1.0,
        "images_per_s": 100.0,
        "peak_mem_mb": 1.0,
    }
    record = ResultRecord.finished(
        cells[i], Measurements(**measured), {"method_code": cells[i].method_code}
    )
    return record.replace(**changes) if changes else record


def _damage(results: Path, cells) -> dict[str, Path]:
    """A store of 8 good records plus one of every kind of damage; name -> path."""
    for i in range(8):
        write_result(results, _record(cells, i))
    paths = {
        n: cell_path(results, cells[i].dataset, cells[i].key)
        for i, n in enumerate(
            [
                "truncated",
                "zero-byte",
                "nan-valued",
                "huge-top1",
                "good0",
                "good1",
                "good2",
                "good3",
            ]
        )
    }
    good = paths["good0"].read_bytes()
    paths["truncated"].write_bytes(paths["truncated"].read_bytes()[:300])
    paths["zero-byte"].write_bytes(b"")
    for name, value in (("nan-valued", float("nan")), ("huge-top1", 1e9)):
        row = read_result(paths[name])
        row["top1"] = row["top5"] = value
        pd.DataFrame([row]).to_parquet(paths[name])  # written behind the store's back
    foreign = results / cells[0].dataset / "foreign.parquet"
    pd.DataFrame({"loss": [0.1, 0.2]}).to_parquet(foreign)
    copy = results / cells[0].dataset / "copy-of-good.parquet"
    copy.write_bytes(good)
    tmp = results / cells[0].dataset / ".somehost.1.abc.tmp"
    tmp.write_bytes(b"half a file")
    os.utime(tmp, (time.time() - 3600, time.time() - 3600))
    orphan_ckpt = checkpoint_path(results, cells[9].dataset, cells[9].key)
    orphan_ckpt.parent.mkdir(parents=True)
    orphan_ckpt.write_bytes(b"weights of a cell that never finished")
    paths.update(foreign=foreign, copy=copy, tmp=tmp, checkpoint=orphan_ckpt)
    return paths


def test_damaged_files_are_named_by_report_and_verify_and_repair_moves_them(fault, tmp_path):
    """Truncated, zero-byte, NaN-valued, out-of-range, foreign and duplicated files,
    a left-over temporary file and an orphaned checkpoint.

    Seen failing with the guards removed: without the record's range rule the file
    with top-1 = top-5 = 1e9 was read as a valid result (not named by the report);
    without the empty-value rule as well, the NaN written over a result crashed
    `arena report` with a traceback.
    """
    _config, results, cells = fault
    paths = _damage(results, cells)
    report = run_arena("report", "--results", str(results), "--format", "csv")
    assert report.returncode == 0, report.stderr
    for name in ("truncated", "zero-byte", "nan-valued", "huge-top1", "foreign", "copy"):
        assert str(paths[name]) in report.stderr, name
    assert "1e+09" not in report.stdout and "1000000000" not in report.stdout
    strict = run_arena("report", "--results", str(results), "--strict")
    assert strict.returncode != 0 and strict.stderr.count("\n") == 1

    verify = run_arena("verify", "--results", str(results), "--format", "json")
    assert verify.returncode == 1, verify.stderr
    doc = json.loads(verify.stdout)
    kinds = {Path(f["path"]).name: f["kind"] for f in doc["findings"]}
    assert kinds[paths["truncated"].name] == "corrupt"
    assert kinds[paths["zero-byte"].name] == "corrupt"
    assert kinds[paths["nan-valued"].name] == "corrupt"
    assert kinds[paths["huge-top1"].name] == "corrupt"
    assert kinds["foreign.parquet"] == "foreign"
    assert kinds["copy-of-good.parquet"] == "duplicated"
    assert kinds[paths["tmp"].name] == "orphaned"
    assert kinds[paths["checkpoint"].name] == "orphaned"
    assert doc["counts"]["corrupt"] == 4 and doc["ok"] == 4

    repair = run_arena("verify", "--results", str(results), "--repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    quarantine = results / ".quarantine"
    moved = sorted(p.name for p in quarantine.rglob("*") if p.is_file())
    for name in ("truncated", "zero-byte", "foreign", "copy", "tmp", "checkpoint"):
        assert paths[name].name in moved, name  # moved aside, never deleted
        assert not paths[name].exists()
    clean = run_arena("verify", "--results", str(results))
    assert clean.returncode == 0, clean.stdout
    frame, warnings = load_results(results)
    assert warnings == [] and len(frame) == 4


def test_store_failures_are_one_line_and_keep_what_was_stored(fault, tmp_path):
    """--results pointing at a file, and a disk that fills up mid-grid (a file-size
    limit on the process): one line naming the path and the cause, finished cells kept.

    Seen failing with the guard removed: without the store's OSError -> one-line error,
    the full disk ended in a traceback (`OSError: [Errno 27] File too large`).
    """
    config, results, _cells = fault
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    bad = run_arena(*_args(config, a_file))
    assert bad.returncode != 0 and "is a file" in bad.stderr
    assert bad.stderr.count("\n") == 1, bad.stderr

    first = run_arena(*_args(config, results, "--seeds", "0", "--no-baselines"))
    assert first.returncode == 0, first.stderr
    stored = {p: p.read_bytes() for p in results.rglob("*.parquet") if p.name[0] != "."}
    assert len(stored) == 2

    def small_disk() -> None:  # writes past 3 KB fail like a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    proc = subprocess.run(
        [sys.executable, "-m", "msda_arena.cli.main", *_args(config, results)],
        capture_output=True,
        text=True,
        cwd=REPO,
        preexec_fn=small_disk,
        timeout=600,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("arena: error: could not write ") and "File too large" in last
    assert "Traceback" not in proc.stderr
    for path, data in stored.items():
        assert path.read_bytes() == data  # what was stored stays stored
    assert not list(results.rglob("*.tmp"))
