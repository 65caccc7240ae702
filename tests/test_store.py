"""The parquet result store: validation, atomic writes, tolerant reading, the index cache."""

from __future__ import annotations

import contextlib
import math
import os
import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from msda_arena.api.errors import StoreError
from msda_arena.api.record import COLUMNS as RESULT_COLUMNS
from msda_arena.api.record import LATER_COLUMNS, SCHEMA_VERSION, cell_key
from msda_arena.store import results as store
from msda_arena.store.results import (
    INDEX_NAME,
    cell_path,
    load_results,
    read_result,
    write_result,
)


def make_record(**overrides):
    record = {
        "schema_version": SCHEMA_VERSION,
        "key": "resnet8_cifar-standard-mixup-s0-abc",
        "status": "ok",
        "error": "",
        "profile": "quick",
        "dataset": "cifar10",
        "arch": "resnet8_cifar",
        "scenario": "standard",
        "method": "mixup",
        "method_name": "mixup",
        "seed": 0,
        "recipe_hash": "abc",
        "top1": 75.25,
        "top5": 99.875,
        "ece": 0.05,
        "fgsm_top1": 20.0,
        "train_loss": 1.125,
        "epochs": 2,
        "wall_time_s": 12.5,
        "images_per_s": 1000.0,
        "peak_mem_mb": 256.0,
        "method_package": "msda-arena",
        "method_version": "0.1.0",
        "method_code": "0.1.0:abcdef012345",
        "locality": 0.5,
        "plugins": "msda-arena==0.1.0",
        "torch_version": "2.14.1",
        "timm_version": "1.0.31",
        "cuda_version": "",
        "device_name": "cpu",
        "host": "box",
        "arena_version": "0.1.0",
        "git_commit": "deadbeef",
        "config_hash": "cfg",
        "notes": "",
        "started_at": "2025-01-01T00:00:00+00:00",
        "finished_at": "2025-01-01T00:01:00+00:00",
    }
    record.update(overrides)
    if "key" not in overrides:  # the key of the record's own cell
        with contextlib.suppress(Exception):  # a test of a malformed value keeps "k"
            record["key"] = cell_key(
                *(record[c] for c in ("profile", "arch", "scenario", "method", "seed")),
                record["recipe_hash"],
            )
    return record


def write_many(root, n, **overrides):
    paths = []
    for seed in range(n):
        paths.append(write_result(root, make_record(seed=seed, top1=70.0 + seed, **overrides)))
    return paths


# --------------------------------------------------------------------------- schema


def test_result_columns_match_the_contract():
    # make_record() is a record as written before threads and deterministic were columns
    assert set(RESULT_COLUMNS) == set(make_record()) | set(LATER_COLUMNS)
    assert RESULT_COLUMNS["top1"] == "float64"
    assert RESULT_COLUMNS["seed"] == "int64"
    assert RESULT_COLUMNS["method"] == "str"
    assert RESULT_COLUMNS["threads"] == RESULT_COLUMNS["deterministic"] == "int64"
    assert SCHEMA_VERSION == 2


def test_a_store_written_before_threads_were_recorded_reads_as_before(tmp_path):
    """Files without the later columns (written by an earlier msda-arena) read, one by
    one and in a batch scan, with threads 0 ("not recorded") and deterministic 0; a new
    file keeps its own values."""
    old = [make_record(seed=seed, top1=60.0 + seed) for seed in range(6)]
    for record in old:
        path = cell_path(tmp_path, record["dataset"], record["key"])
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist([record]), path)
    new = write_result(tmp_path, make_record(seed=9, threads=4, deterministic=1))
    back = read_result(cell_path(tmp_path, "cifar10", old[0]["key"]))
    assert back is not None and back["top1"] == 60.0
    assert (back["threads"], back["deterministic"]) == (0, 0)
    frame, warnings = load_results(tmp_path)
    assert warnings == [] and len(frame) == 7
    by_seed = frame.set_index("seed")
    assert by_seed.loc[9, "threads"] == 4 and by_seed.loc[9, "deterministic"] == 1
    before = by_seed.drop(9)
    assert (before["threads"] == 0).all() and (before["deterministic"] == 0).all()
    assert sorted(before["top1"]) == [r["top1"] for r in old]
    assert read_result(new)["threads"] == 4


def test_cell_path_is_root_dataset_key(tmp_path):
    assert cell_path(tmp_path, "cifar100", "k-1") == tmp_path / "cifar100" / "k-1.parquet"


# --------------------------------------------------------------------------- writing


def test_write_then_read_round_trips_every_value_and_type(tmp_path):
    record = make_record(status="failed", error="boom", top5=float("nan"), seed=7)
    path = write_result(tmp_path, record)
    assert path == tmp_path / "cifar10" / f"{record['key']}.parquet"
    back = read_result(path)
    assert back is not None
    assert set(back) == set(RESULT_COLUMNS)
    for column, value in record.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(back[column])
        else:
            assert back[column] == value, column
            assert type(back[column]) is type(value), column
    # Written as real parquet: pandas reads it as one row.
    assert len(pd.read_parquet(path)) == 1


def test_write_replaces_an_existing_result_for_the_same_cell(tmp_path):
    write_result(tmp_path, make_record(top1=60.0))
    path = write_result(tmp_path, make_record(top1=61.5))
    assert read_result(path)["top1"] == 61.5
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o022, 0o644)])
def test_results_index_and_checkpoints_get_the_users_umask(tmp_path, umask, mode):
    """A store shared by a group is readable by the group when the umask says so.

    Seen failing with the guard removed: with mkstemp's temporary files every result and
    the index were created mode 0600 (`assert 0o600 == 0o664`), and safetensors'
    save_file made the checkpoint 0600 again."""
    old = os.umask(umask)
    try:
        path = write_result(tmp_path, make_record())
        load_results(tmp_path)  # writes the index
        weights = store.write_checkpoint(tmp_path, "cifar10", "k", {"w": torch.ones(2)})
    finally:
        os.umask(old)
    for made in (path, tmp_path / INDEX_NAME, weights):
        assert stat.S_IMODE(made.stat().st_mode) == mode, made.name


@pytest.mark.parametrize(
    ("overrides", "column"),
    [
        ({"top1": "75.0"}, "top1"),
        ({"seed": 1.0}, "seed"),
        ({"seed": True}, "seed"),
        ({"epochs": None}, "epochs"),
        ({"method": 3}, "method"),
        ({"schema_version": 3}, "schema_version"),
        ({"status": "done"}, "status"),
        ({"status": "ok", "top1": float("nan")}, "top1"),
        ({"top1": 140.0}, "top1"),
        ({"key": "../escape"}, "key"),
        ({"dataset": ".hidden"}, "dataset"),
        ({"dataset": "a/b"}, "dataset"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_write_rejects_a_bad_value_naming_the_column(tmp_path, overrides, column):
    with pytest.raises(ValueError, match=repr(column)):
        write_result(tmp_path, make_record(**overrides))
    assert not any(tmp_path.rglob("*.parquet"))


def test_write_rejects_a_missing_column(tmp_path):
    record = make_record()
    del record["recipe_hash"]
    with pytest.raises(ValueError, match="missing column 'recipe_hash'"):
        write_result(tmp_path, record)


def test_failed_result_may_have_nan_accuracy(tmp_path):
    path = write_result(tmp_path, make_record(status="failed", error="OOM", top1=float("nan")))
    assert math.isnan(read_result(path)["top1"])


def test_a_crash_mid_write_leaves_the_old_file_and_no_partial_parquet(tmp_path, monkeypatch):
    path = write_result(tmp_path, make_record(top1=60.0))

    def crash(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(StoreError, match=r"could not write .*\.parquet: disk full") as info:
        write_result(tmp_path, make_record(top1=99.0))
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError):
        write_result(tmp_path, make_record(seed=5, top1=99.0))
    monkeypatch.undo()
    assert read_result(path)["top1"] == 60.0
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    frame, warnings = load_results(tmp_path)
    assert frame["top1"].tolist() == [60.0] and warnings == []


# --------------------------------------------------------------------------- reading


def _foreign(path, frame):
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return path


def test_read_result_returns_none_for_missing_corrupt_and_foreign_files(tmp_path):
    good = write_result(tmp_path, make_record())
    assert read_result(tmp_path / "nope.parquet") is None
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert read_result(corrupt) is None
    assert read_result(_foreign(tmp_path / "f.parquet", pd.DataFrame({"a": [1]}))) is None
    two_rows = pd.DataFrame([make_record(), make_record(seed=1)])
    assert read_result(_foreign(tmp_path / "two.parquet", two_rows)) is None
    future = pd.DataFrame([make_record(schema_version=3)])
    assert read_result(_foreign(tmp_path / "v2.parquet", future)) is None
    assert read_result(good) is not None


def test_a_pandas_written_record_with_compatible_types_is_read(tmp_path):
    frame = pd.DataFrame([make_record()]).astype({"seed": "int32", "epochs": "int16"})
    record = make_record()
    path = _foreign(tmp_path / "cifar10" / f"{record['key']}.parquet", frame)
    assert read_result(path)["seed"] == 0
    loaded, warnings = load_results(tmp_path)
    assert len(loaded) == 1 and warnings == []


def test_empty_or_missing_root_gives_an_empty_frame_with_the_columns(tmp_path):
    for root in (tmp_path, tmp_path / "does-not-exist"):
        frame, warnings = load_results(root)
        assert len(frame) == 0 and warnings == []
        assert list(frame.columns) == list(RESULT_COLUMNS)
        assert str(frame["top1"].dtype) == "float64"
        assert str(frame["seed"].dtype) == "int64"
    assert not (tmp_path / "does-not-exist").exists()


def test_load_returns_typed_rows_sorted_by_path(tmp_path):
    paths = write_many(tmp_path, 3)
    paths.append(write_result(tmp_path, make_record(dataset="cifar100", top1=50.0)))
    frame, warnings = load_results(tmp_path)
    assert warnings == []
    assert list(frame.columns) == list(RESULT_COLUMNS)
    order = sorted(range(4), key=lambda i: paths[i].relative_to(tmp_path).as_posix())
    assert frame["top1"].tolist() == [[70.0, 71.0, 72.0, 50.0][i] for i in order]
    assert frame["seed"].tolist() == [[0, 1, 2, 0][i] for i in order]
    assert str(frame["seed"].dtype) == "int64"
    assert frame["dataset"].tolist() == ["cifar10"] * 3 + ["cifar100"]


def test_corrupt_and_foreign_files_are_named_and_skipped(tmp_path):
    write_many(tmp_path, 2)
    d = tmp_path / "cifar10"
    (d / "garbage.parquet").write_bytes(b"this is not parquet at all")
    _foreign(d / "other-tool.parquet", pd.DataFrame({"loss": [0.1, 0.2]}))
    _foreign(d / "two.parquet", pd.DataFrame([make_record(), make_record(seed=1)]))
    bad_type = pd.DataFrame([make_record()]).astype({"top1": "str"})
    _foreign(d / "text-top1.parquet", bad_type)
    _foreign(d / "v9.parquet", pd.DataFrame([make_record(schema_version=9)]))
    _foreign(d / "weird-status.parquet", pd.DataFrame([make_record(status="running")]))
    frame, warnings = load_results(tmp_path)
    assert sorted(frame["top1"]) == [70.0, 71.0]
    reasons = {w.split(": ", 1)[0]: w.split(": ", 1)[1] for w in warnings}
    assert set(reasons) == {
        str(d / n)
        for n in (
            "garbage.parquet",
            "other-tool.parquet",
            "two.parquet",
            "text-top1.parquet",
            "v9.parquet",
            "weird-status.parquet",
        )
    }
    assert "not a readable parquet file" in reasons[str(d / "garbage.parquet")]
    assert "no column 'schema_version'" in reasons[str(d / "other-tool.parquet")]
    assert "2 rows" in reasons[str(d / "two.parquet")]
    assert "'top1'" in reasons[str(d / "text-top1.parquet")]
    assert "schema_version" in reasons[str(d / "v9.parquet")]
    assert "status" in reasons[str(d / "weird-status.parquet")]
    # The same answer from the index on the next load.
    frame2, warnings2 = load_results(tmp_path)
    assert warnings2 == warnings and sorted(frame2["top1"]) == [70.0, 71.0]


def test_strict_raises_naming_the_first_bad_file(tmp_path):
    write_many(tmp_path, 2)
    bad = tmp_path / "cifar10" / "garbage.parquet"
    bad.write_bytes(b"nope")
    with pytest.raises(StoreError, match=r"garbage\.parquet: not a readable parquet") as info:
        load_results(tmp_path, strict=True)
    assert "\n" not in str(info.value)
    bad.unlink()
    frame, _ = load_results(tmp_path, strict=True)
    assert len(frame) == 2


def test_published_dir_temp_and_dot_files_are_not_results(tmp_path):
    write_many(tmp_path, 1)
    (tmp_path / "published").mkdir()
    _foreign(tmp_path / "published" / "paper.parquet", pd.DataFrame({"top1": [1.0]}))
    (tmp_path / "cifar10" / ".cell.parquet.x1y2.tmp").write_bytes(b"half")
    (tmp_path / "cifar10" / ".hidden.parquet").write_bytes(b"half")
    (tmp_path / "cifar10" / "notes.txt").write_text("hello")
    frame, warnings = load_results(tmp_path)
    assert len(frame) == 1 and warnings == []


def test_the_scanner_counts_no_symlink_or_folder_as_a_result(tmp_path):
    """Seen failing with the guard removed: the symbolic link to a result and the file
    inside the folder named like one were listed as result files beside the two."""
    first, second = write_many(tmp_path, 2)
    ds = first.parent
    (ds / "alias.parquet").symlink_to(first.name)
    (ds / "loop.parquet").symlink_to("loop.parquet")
    (ds / "x.parquet").mkdir()
    (ds / "x.parquet" / "part-0.parquet").write_bytes(second.read_bytes())
    (ds / "notes.txt").write_text("hello")
    results = sorted(p.relative_to(tmp_path).as_posix() for p in (first, second))
    assert sorted(store.result_files(tmp_path)) == results
    strays: list[str] = []
    assert sorted(store.result_files(tmp_path, strays)) == results
    names = ["alias.parquet", "loop.parquet", "notes.txt", "x.parquet"]
    assert sorted(strays) == [f"cifar10/{n}" for n in names]
    frame, warnings = load_results(tmp_path)
    assert len(frame) == 2 and warnings == []


def test_a_file_as_root_is_a_store_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        load_results(tmp_path / "f")


def test_batched_reading_isolates_bad_files_among_many(tmp_path):
    paths = write_many(tmp_path, 30)
    paths[7].write_bytes(b"garbage")
    paths[20].write_bytes(paths[3].read_bytes()[:100])
    frame, warnings = load_results(tmp_path)
    assert len(frame) == 28
    assert sorted(frame["seed"]) == [s for s in range(30) if s not in (7, 20)]
    assert [w.split(": ")[0] for w in warnings] == sorted([str(paths[20]), str(paths[7])])


# --------------------------------------------------------------------------- index cache


def test_index_is_written_and_reused_without_reading_files(tmp_path, monkeypatch):
    write_many(tmp_path, 5)
    frame, _ = load_results(tmp_path)
    assert (tmp_path / INDEX_NAME).is_file()

    def boom(*args, **kwargs):
        raise AssertionError("a result file was read although the index is current")

    monkeypatch.setattr(store, "_read_files", boom)
    again, warnings = load_results(tmp_path)
    pd.testing.assert_frame_equal(frame, again)
    assert warnings == []


def test_index_picks_up_changed_removed_and_added_files(tmp_path):
    paths = write_many(tmp_path, 4)
    load_results(tmp_path)
    # changed through write_result, even with the old mtime restored (new inode)
    st = paths[0].stat()
    write_result(tmp_path, make_record(seed=0, top1=99.5, top5=99.75))
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    # changed in place (same inode, new mtime)
    table = pq.read_table(paths[1]).set_column(12, "top1", pa.array([11.25], type=pa.float64()))
    with open(paths[1], "r+b") as handle:
        handle.truncate(0)
        pq.write_table(table, handle)
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    paths[2].unlink()
    write_result(tmp_path, make_record(seed=9, top1=42.0))
    frame, warnings = load_results(tmp_path)
    assert warnings == []
    assert dict(zip(frame["seed"], frame["top1"], strict=False)) == {
        0: 99.5,
        1: 11.25,
        3: 73.0,
        9: 42.0,
    }


def test_a_file_corrupted_after_indexing_is_reported(tmp_path):
    paths = write_many(tmp_path, 3)
    load_results(tmp_path)
    paths[1].write_bytes(b"scribbled over")
    frame, warnings = load_results(tmp_path)
    assert sorted(frame["seed"]) == [0, 2]
    assert warnings == [f"{paths[1]}: not a readable parquet file (" + warnings[0].split("(", 1)[1]]


def test_a_corrupt_or_foreign_index_is_silently_rebuilt(tmp_path):
    write_many(tmp_path, 3)
    expected, _ = load_results(tmp_path)
    for junk in (b"garbage", None):
        if junk is None:
            pd.DataFrame({"x": [1]}).to_parquet(tmp_path / INDEX_NAME)
        else:
            (tmp_path / INDEX_NAME).write_bytes(junk)
        frame, warnings = load_results(tmp_path)
        pd.testing.assert_frame_equal(frame, expected)
        assert warnings == []
        assert pq.read_table(tmp_path / INDEX_NAME).num_rows == 3


def test_deleting_everything_empties_the_index(tmp_path):
    paths = write_many(tmp_path, 2)
    load_results(tmp_path)
    for p in paths:
        p.unlink()
    frame, warnings = load_results(tmp_path)
    assert len(frame) == 0 and warnings == []
    assert pq.read_table(tmp_path / INDEX_NAME).num_rows == 0
