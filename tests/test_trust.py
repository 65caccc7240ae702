"""Method code in the cell identity, provenance of every plugin, temporaries, and
`arena verify`: the index cross-check, foreign entries, read-only stores."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import install_fake_plugin, run_arena

from msda_arena.api.record import Measurements, ResultRecord, arrow_schema
from msda_arena.store.results import (
    cell_path,
    clean_temporaries,
    load_results,
    read_result,
    write_result,
)

PLUGIN = """
import torch
from msda_arena import MaskMethod, hookimpl

class Halves(MaskMethod):
    name = "halves"
    params = ()

    def masks(self, lam, height, width, generator):
        m = torch.ones(lam.shape[0], 1, height, width, device=lam.device)
        m[:, :, :, : width // 2] = 0.0
        return m

@hookimpl
def register_mask_methods(register):
    register(Halves)
"""


@pytest.mark.slow
def test_editing_a_plugin_or_bumping_its_version_makes_its_results_stale(
    tiny_config, tmp_path, plugin_site
):
    """Seen failing with the guard removed: without the `method_code` comparison the
    edited plugin's old result was reused (the dry run said "0 of 2 cells would run")."""
    install_fake_plugin(plugin_site, "arena-halves", PLUGIN)
    res = tmp_path / "res"
    args = ["run", "--method", "halves", "--method", "vanilla", "--no-baselines"]
    args += ["--config", str(tiny_config), "--results", str(res), "--scenario", "small-crop"]
    first = run_arena(*args)
    assert first.returncode == 0, first.stderr
    frame, _ = load_results(res)
    plugins = frame.set_index("method").loc["vanilla", "plugins"]
    # a built-in's result names every plugin loaded beside it, with versions
    assert "msda-arena==" in plugins and "arena-halves==0.3.0" in plugins
    code = frame.set_index("method").loc["halves", "method_code"]
    assert code.startswith("0.3.0:")

    module = plugin_site / "arena_halves.py"
    module.write_text(module.read_text() + "\n# a fix\n")
    dry = run_arena(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "stale" in dry.stdout and "method's code or version changed" in dry.stdout
    assert "1 of 2 cells would run" in dry.stdout
    again = run_arena(*args)
    assert again.returncode == 0 and "1 trained, 1 already stored" in again.stderr
    new_code = load_results(res)[0].set_index("method").loc["halves", "method_code"]
    assert new_code != code and new_code.startswith("0.3.0:")

    meta = plugin_site / "arena_halves-0.3.0.dist-info" / "METADATA"
    meta.write_text(meta.read_text().replace("0.3.0", "0.3.1"))
    bumped = run_arena(*args, "--dry-run")
    assert "1 of 2 cells would run" in bumped.stdout and "stale" in bumped.stdout


def test_left_over_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    """Seen failing with the guard removed: with cleaning disabled the dead writers'
    `.<host>.<pid>.<random>.tmp` files stayed (`assert [] == [...]`)."""
    d = tmp_path / "ds"
    d.mkdir()
    host = socket.gethostname().replace(".", "-")[:32]
    dead = d / f".{host}.99999999.abc.tmp"  # no such pid
    live = d / f".{host}.{os.getpid()}.abc.tmp"  # this process, still writing
    old = d / ".other-host.12.abc.tmp"
    fresh_foreign = d / ".other-host.13.abc.tmp"
    for p in (dead, live, old, fresh_foreign):
        p.write_bytes(b"half")
    os.utime(old, (0, 0))
    removed = clean_temporaries(tmp_path)
    assert sorted(removed) == sorted([dead, old])
    assert live.exists() and fresh_foreign.exists()


def _record(i: int, top1: float) -> ResultRecord:
    from msda_arena import method_info
    from msda_arena.grid.cells import GridCell

    code = method_info("mixup").code  # current: not stale
    cell = GridCell("p", "ds", "resnet8_cifar", "standard", "mixup", i, "r", code)
    measured = dict(
        top1=top1, top5=99.0, train_loss=1.0, epochs=1, wall_time_s=1.0, images_per_s=1.0
    )
    measured = Measurements(**measured, peak_mem_mb=1.0)
    return ResultRecord.finished(cell, measured, {"method_code": code})


def test_verify_finds_an_index_that_disagrees_with_a_file_and_repair_rebuilds_it(tmp_path):
    """A file rewritten in place with its size, mtime and inode kept (a restore tool,
    `cp -p` over it) fools the index; `arena verify` reads every file and says so.

    Seen failing with the guard removed: without the cross-check `arena verify`
    exited 0 with no finding (`assert 0 == 1`) while the report showed the old 61.0.
    """
    path = write_result(tmp_path, _record(0, 61.0))
    write_result(tmp_path, _record(1, 62.0))
    load_results(tmp_path)  # builds the index
    st = path.stat()
    table = pq.read_table(path)
    table = table.set_column(
        table.schema.get_field_index("top1"), "top1", pa.array([65.0], type=pa.float64())
    ).cast(arrow_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="none", use_dictionary=False,
                   write_statistics=False, store_schema=False)  # fmt: skip
    data = sink.getvalue().to_pybytes()
    assert len(data) == st.st_size
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert load_results(tmp_path)[0]["top1"].tolist() == [61.0, 62.0]  # the index's

    verify = run_arena("verify", "--results", str(tmp_path), "--format", "json")
    assert verify.returncode == 1
    doc = json.loads(verify.stdout)
    assert [f["kind"] for f in doc["findings"]] == ["index"]
    assert path.name in doc["findings"][0]["reason"]
    repair = run_arena("verify", "--results", str(tmp_path), "--repair")
    assert repair.returncode == 0, repair.stdout
    assert "index rebuilt" in repair.stdout
    assert sorted(load_results(tmp_path)[0]["top1"]) == [62.0, 65.0]
    assert read_result(cell_path(tmp_path, "ds", _record(0, 1.0).key))["top1"] == 65.0


def test_verify_of_a_sound_store_exits_0_and_counts(tmp_path):
    write_result(tmp_path, _record(0, 61.0))
    write_result(tmp_path, _record(1, 62.0).replace(status="failed", error="boom"))
    result = run_arena("verify", "--results", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 result file(s): 1 ok, 1 failed" in result.stdout
    assert "found: 0 corrupt, 0 foreign, 0 duplicated, 0 orphaned, 0 index, 0 stale" in (
        result.stdout
    )


def _as_bound_user(*command: str) -> subprocess.CompletedProcess:
    """Run ``command`` as a user whom file modes bind: run by root, the child first drops
    the capabilities that override them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
    CAP_FOWNER) from its bounding set, so they are gone after exec."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if os.geteuid() == 0 else None

    def drop() -> None:
        for cap in (1, 2, 3) if prctl else ():
            prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP

    return subprocess.run(command, capture_output=True, text=True, preexec_fn=drop, timeout=600)


def _arena(*args: str) -> subprocess.CompletedProcess:
    return _as_bound_user(sys.executable, "-m", "msda_arena.cli.main", *args)


def _require_binding_modes(tmp_path) -> None:
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    opened = _as_bound_user(sys.executable, "-c", f"open({str(probe)!r})").returncode == 0
    probe.unlink()
    if opened:
        pytest.skip("root here cannot drop CAP_DAC_OVERRIDE (no CAP_SETPCAP): modes bind nobody")


def test_verify_names_every_foreign_entry_and_after_repair_verify_passes(tmp_path):
    """Symbolic links (to a good result, dangling, a loop), a folder named like a result,
    a file that is no result and results of another user's modes (0000, 0200).

    Seen failing with the guards removed: the alias and the copy inside the folder were
    counted as results, the loops, the dangling link and the other file were never
    mentioned, and after `--repair` every `verify` failed again ("its row for
    ds/alias.parquet disagrees with the file").
    """
    _require_binding_modes(tmp_path)
    root = tmp_path / "store"
    paths = [write_result(root, _record(i, 60.0 + i)) for i in range(4)]
    load_results(root)  # an index, as the files' owner leaves it
    ds = paths[0].parent
    (ds / "alias.parquet").symlink_to(paths[0].name)
    (ds / "loop.parquet").symlink_to("loop.parquet")
    (ds / "gone.parquet").symlink_to("nowhere.parquet")
    (ds / "x.parquet").mkdir()
    (ds / "x.parquet" / "part-0.parquet").write_bytes(paths[3].read_bytes())
    (ds / "notes.txt").write_text("hello")
    paths[1].chmod(0o000)
    paths[2].chmod(0o200)

    verify = _arena("verify", "--results", str(root), "--format", "json")
    assert verify.returncode == 1, verify.stderr
    doc = json.loads(verify.stdout)
    assert (doc["files"], doc["ok"]) == (4, 2)
    foreign = {Path(f["path"]).name: f["reason"] for f in doc["findings"] if f["kind"] == "foreign"}
    assert foreign["alias.parquet"].startswith(f"a symbolic link to {paths[0].name};")
    assert "(a loop)" in foreign["loop.parquet"] and "(dangling)" in foreign["gone.parquet"]
    assert foreign["x.parquet"].startswith("a folder named like a result file")
    assert foreign["notes.txt"].startswith("not a result file")
    for unreadable in paths[1:3]:
        assert foreign[unreadable.name].startswith("unreadable by this user")
    assert len(foreign) == 7

    repair = _arena("verify", "--results", str(root), "--repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    (bin_,) = (root / ".quarantine").iterdir()
    for name in foreign:
        assert os.path.lexists(bin_ / "ds" / name) and not os.path.lexists(ds / name), name
    again = _arena("verify", "--results", str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 result file(s): 2 ok, 0 failed" in again.stdout
    assert "found: 0 corrupt, 0 foreign" in again.stdout


@pytest.mark.parametrize("how", ["chmod", "ro-mount"])
@pytest.mark.parametrize("damaged", [False, True], ids=["clean", "damaged"])
def test_verify_repair_of_a_read_only_store_creates_nothing_and_errs_in_one_line(
    tmp_path, how, damaged
):
    """A clean store: the report, exit 0, nothing created. A damaged one: one line
    naming the file and what to do, exit 1, nothing created.

    Seen failing with the guard removed: `--repair` made `.quarantine` first, even with
    nothing to move, and ended in a traceback (`OSError: [Errno 30] Read-only file
    system: '.quarantine'`, or Errno 13 for a folder without write permission)."""
    root = tmp_path / "store"
    first = write_result(root, _record(0, 61.0))
    write_result(root, _record(1, 62.0))
    load_results(root)
    if damaged:
        (first.parent / "alias.parquet").symlink_to(first.name)
    before = sorted(root.rglob("*"))
    args = ("verify", "--results", str(root), "--repair")
    if how == "chmod":
        _require_binding_modes(tmp_path)
        for folder in (root, first.parent):
            folder.chmod(0o555)
        try:
            result = _arena(*args)
        finally:
            for folder in (root, first.parent):
                folder.chmod(0o755)
    else:
        mount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        if (
            os.geteuid() != 0
            or not shutil.which("unshare")
            or subprocess.run(["unshare", "-m", "true"]).returncode
        ):
            pytest.skip("a read-only bind mount needs root and unshare")
        command = [sys.executable, "-m", "msda_arena.cli.main", *args]
        result = _as_bound_user("unshare", "-m", "sh", "-c", mount, str(root), *command)
    assert sorted(root.rglob("*")) == before
    if not damaged:
        assert result.returncode == 0, result.stderr
        assert "2 result file(s): 2 ok, 0 failed" in result.stdout
        return
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("arena: error: could not move 1 damaged file(s) aside")
    assert "alias.parquet" in result.stderr and "arena verify --repair" in result.stderr
