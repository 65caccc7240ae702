"""The result store: one small parquet file per grid cell, written atomically.

Layout: ``<root>/<dataset>/<key>.parquet``, each file holding exactly one row with the
columns of :data:`RESULT_COLUMNS` (see ``/work/notes/contract.md``). Files are written
to a temporary file in the same directory, flushed to disk and moved into place with
:func:`os.replace`, so a crash never leaves a partial ``.parquet`` where a reader looks.

Reading tolerates damage: a file that cannot be read, lacks a column, has a column of
the wrong type or holds anything but one valid row is reported as ``"PATH: reason"``
and left out (``strict=True`` turns that into a :class:`~msda_arena.errors.StoreError`).

The index cache
---------------
Opening 100,000 parquet files takes about a minute, so :func:`load_results` keeps a
derived, disposable index at ``<root>/.index.parquet``: every record plus the file's
relative path, size, ``mtime_ns`` and inode (and, for a bad file, the reason it was
rejected). On each load the tree is listed with :func:`os.scandir`; rows whose file
still has the same (size, mtime_ns, inode) are reused, new or changed files are read,
rows of removed files are dropped, and the index is rewritten atomically when anything
changed. The inode catches a rewrite by :func:`write_result` (always a new file) even
within one timestamp tick. Deleting the index is always safe; an unreadable or
outdated index is silently rebuilt, and a read-only store is read without one.

This module does not import torch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import numbers
import os
import re
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msda_arena.errors import StoreError

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = [
    "INDEX_NAME",
    "RESULT_COLUMNS",
    "SCHEMA_VERSION",
    "WRITE_OPTIONS",
    "arrow_schema",
    "cell_path",
    "load_results",
    "read_result",
    "validate_record",
    "write_result",
]

#: Version of the record layout; bumped when :data:`RESULT_COLUMNS` changes.
SCHEMA_VERSION = 1

#: Every column of a result record and its pandas dtype, in file order.
RESULT_COLUMNS: dict[str, str] = {
    "schema_version": "int64",
    "key": "str",
    "status": "str",
    "error": "str",
    "profile": "str",
    "dataset": "str",
    "arch": "str",
    "scenario": "str",
    "method": "str",
    "method_name": "str",
    "seed": "int64",
    "recipe_hash": "str",
    "top1": "float64",
    "top5": "float64",
    "train_loss": "float64",
    "epochs": "int64",
    "wall_time_s": "float64",
    "images_per_s": "float64",
    "peak_mem_mb": "float64",
    "method_package": "str",
    "method_version": "str",
    "torch_version": "str",
    "timm_version": "str",
    "cuda_version": "str",
    "device_name": "str",
    "arena_version": "str",
    "git_commit": "str",
    "config_hash": "str",
    "started_at": "str",
    "finished_at": "str",
}

#: File name of the index cache inside the store root (a dot-file: never a result).
INDEX_NAME = ".index.parquet"
_INDEX_VERSION = b"1"
_INDEX_META_KEY = b"msda_arena.index_version"
_STATUSES = ("ok", "failed")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_=\-][A-Za-z0-9_.=\-]*$")
# Directories under the root that are not part of the measured store.
_SKIP_DIRS = frozenset({"published"})
#: Parquet writer options of result files (one row: statistics and dictionaries only
#: cost time).
WRITE_OPTIONS: dict[str, Any] = {
    "compression": "none",
    "use_dictionary": False,
    "write_statistics": False,
    "store_schema": False,
}


class _BadFile(Exception):
    """A file that is not a valid result record; the message is the reason."""


# --------------------------------------------------------------------------- schema


@functools.lru_cache(maxsize=1)
def arrow_schema() -> pyarrow.Schema:
    """The pyarrow schema of a result file (the columns of :data:`RESULT_COLUMNS`)."""
    import pyarrow as pa

    kinds = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string()}
    return pa.schema([pa.field(c, kinds[t], nullable=False) for c, t in RESULT_COLUMNS.items()])


@functools.lru_cache(maxsize=1)
def _index_schema() -> pyarrow.Schema:
    import pyarrow as pa

    fields = [pa.field(f.name, f.type) for f in arrow_schema()]
    fields += [
        pa.field("_path", pa.string()),
        pa.field("_size", pa.int64()),
        pa.field("_mtime_ns", pa.int64()),
        pa.field("_ino", pa.int64()),
        pa.field("_error", pa.string()),
    ]
    return pa.schema(fields, metadata={_INDEX_META_KEY: _INDEX_VERSION})


def _empty_frame() -> pandas.DataFrame:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in RESULT_COLUMNS.items()})


# --------------------------------------------------------------------------- writing


def cell_path(root: str | os.PathLike[str], dataset: str, key: str) -> Path:
    """The file of one grid cell: ``root/dataset/key.parquet``."""
    return Path(root) / dataset / f"{key}.parquet"


def _check_value(column: str, kind: str, value: Any) -> None:
    if kind == "str":
        ok = isinstance(value, str)
        want = "a string"
    elif kind == "int64":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        want = "an integer"
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        want = "a number (NaN allowed)"
    if not ok:
        raise ValueError(
            f"result column {column!r} must be {want}, got {type(value).__name__} {value!r}"
        )


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise :class:`ValueError`, naming the column, unless ``record`` is a valid result.

    A valid record has exactly the columns of :data:`RESULT_COLUMNS`, each with a value of
    the right kind; ``schema_version`` equals :data:`SCHEMA_VERSION`; ``status`` is
    ``"ok"`` or ``"failed"``; an ``"ok"`` record has a finite ``top1`` in [0, 100];
    ``dataset`` and ``key`` are file-name safe (they become the path).
    """
    if not isinstance(record, Mapping):
        raise ValueError(f"a result record must be a mapping, got {type(record).__name__}")
    for column, kind in RESULT_COLUMNS.items():
        if column not in record:
            raise ValueError(f"result record is missing column {column!r}")
        _check_value(column, kind, record[column])
    extra = sorted(set(record) - set(RESULT_COLUMNS))
    if extra:
        raise ValueError(f"result record has unknown column {extra[0]!r}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ValueError(
            f"result column 'schema_version' must be {SCHEMA_VERSION}, "
            f"got {record['schema_version']!r}"
        )
    if record["status"] not in _STATUSES:
        raise ValueError(
            f"result column 'status' must be 'ok' or 'failed', got {record['status']!r}"
        )
    if record["status"] == "ok":
        top1 = float(record["top1"])
        if not (math.isfinite(top1) and 0.0 <= top1 <= 100.0):
            raise ValueError(
                f"result column 'top1' must be a percentage in [0, 100] when status is 'ok', "
                f"got {record['top1']!r}"
            )
    for column in ("dataset", "key"):
        if not _SAFE_NAME.match(record[column]):
            raise ValueError(
                f"result column {column!r} must be file-name safe "
                f"(letters, digits, '_', '-', '=', '.'; not starting with '.'), "
                f"got {record[column]!r}"
            )


def write_result(root: str | os.PathLike[str], record: Mapping[str, Any]) -> Path:
    """Validate ``record`` and write it as a one-row parquet file, atomically.

    The file goes to :func:`cell_path` (directories are created). It is written to a
    temporary dot-file in the same directory, flushed and fsynced, then moved over the
    target with :func:`os.replace`; an existing result for the same cell is replaced.
    If anything fails, the temporary file is removed and the old file (if any) is
    untouched.

    Raises:
        ValueError: the record lacks a column or has a value of the wrong kind
            (the message names the column).

    Returns:
        The path of the written file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    validate_record(record)
    schema = arrow_schema()
    row = {}
    for column, kind in RESULT_COLUMNS.items():
        value = record[column]
        row[column] = [
            int(value) if kind == "int64" else float(value) if kind == "float64" else value
        ]
    table = pa.Table.from_pydict(row, schema=schema)

    target = cell_path(root, record["dataset"], record["key"])
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table, handle, **WRITE_OPTIONS)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


def _read_table(path: str | os.PathLike[str]) -> pyarrow.Table:
    """Read one file as a one-row table with exactly the result schema, or raise _BadFile."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = arrow_schema()
    try:
        pf = pq.ParquetFile(path)
        file_schema = pf.schema_arrow
        rows = pf.metadata.num_rows
    except FileNotFoundError:
        raise _BadFile("file vanished while reading") from None
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _BadFile(f"not a readable parquet file ({_short(exc)})") from None
    names = set(file_schema.names)
    missing = [c for c in RESULT_COLUMNS if c not in names]
    if missing:
        extra = "" if len(missing) == 1 else f" (and {len(missing) - 1} more)"
        raise _BadFile(f"foreign file: no column {missing[0]!r}{extra}")
    if rows != 1:
        raise _BadFile(f"foreign file: {rows} rows, a result file holds exactly one")
    for column, kind in RESULT_COLUMNS.items():
        t = file_schema.field(column).type
        ok = (
            pa.types.is_string(t) or pa.types.is_large_string(t)
            if kind == "str"
            else pa.types.is_integer(t)
            if kind == "int64"
            else pa.types.is_floating(t) or pa.types.is_integer(t)
        )
        if not ok:
            raise _BadFile(f"foreign file: column {column!r} has type {t}, expected {kind}")
    try:
        if file_schema.names == schema.names:
            table = pf.read(use_threads=False)
        else:
            table = pf.read(columns=list(RESULT_COLUMNS), use_threads=False)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _BadFile(f"not a readable parquet file ({_short(exc)})") from None
    if not table.schema.equals(schema, check_metadata=False):
        try:
            table = table.cast(schema)
        except (pa.ArrowException, ValueError) as exc:
            raise _BadFile(
                f"foreign file: columns do not fit the result schema ({_short(exc)})"
            ) from None
    return table


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _row_problems(table: pyarrow.Table) -> list[str | None]:
    """Per row, the reason it is not a valid record (None when it is), vectorised."""
    import numpy as np
    import pyarrow.compute as pc

    n = table.num_rows
    reasons: list[str | None] = [None] * n
    if n == 0:
        return reasons
    bad = np.zeros(n, dtype=bool)

    def flag(mask: Any, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool) & ~bad
        for i in np.flatnonzero(mask):
            reasons[i] = reason
        bad[mask] = True

    for column in RESULT_COLUMNS:
        col = table.column(column)
        if col.null_count:
            flag(
                pc.is_null(col).to_numpy(zero_copy_only=False), f"foreign file: {column!r} is null"
            )
    version = table.column("schema_version").fill_null(SCHEMA_VERSION)
    flag(
        pc.not_equal(version, SCHEMA_VERSION).to_numpy(zero_copy_only=False),
        f"foreign file: schema_version is not {SCHEMA_VERSION}",
    )
    status = table.column("status").fill_null("ok")
    flag(
        pc.invert(pc.is_in(status, value_set=_pa_strings(_STATUSES))).to_numpy(
            zero_copy_only=False
        ),
        "foreign file: status is neither 'ok' nor 'failed'",
    )
    return reasons


def _pa_strings(values: tuple[str, ...]) -> pyarrow.Array:
    import pyarrow as pa

    return pa.array(list(values), type=pa.string())


def read_result(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record in one result file, or ``None`` if it is missing, corrupt or foreign.

    Never raises for a bad file; use :func:`load_results` to learn why a file was refused.
    """
    try:
        table = _read_table(path)
    except _BadFile:
        return None
    if _row_problems(table)[0] is not None:
        return None
    return table.to_pylist()[0]


# --------------------------------------------------------------------------- loading


def _scan(root: Path) -> tuple[list[str], list[int], list[int], list[int]]:
    """Every candidate result file under ``root``: relative posix paths and, in the same
    order, their sizes, mtimes (ns) and inode numbers."""
    paths: list[str] = []
    sizes: list[int] = []
    mtimes: list[int] = []
    inos: list[int] = []
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            it = os.scandir(directory)
        except OSError:
            continue
        with it:
            for entry in it:
                name = entry.name
                if name[0] == ".":
                    continue
                try:
                    if name.endswith(".parquet"):
                        st = entry.stat()
                        if stat.S_ISREG(st.st_mode):
                            paths.append(prefix + name)
                            sizes.append(st.st_size)
                            mtimes.append(st.st_mtime_ns)
                            inos.append(st.st_ino)
                            continue
                    if entry.is_dir(follow_symlinks=False) and not (
                        prefix == "" and name in _SKIP_DIRS
                    ):
                        stack.append((entry.path, f"{prefix}{name}/"))
                except OSError:
                    continue
    return paths, sizes, mtimes, inos


_INDEX_META_COLUMNS = ("_path", "_size", "_mtime_ns", "_ino", "_error")


def _read_index(root: Path, columns: Sequence[str] | None = None) -> pyarrow.Table | None:
    """The index on disk (only ``columns`` of the records, plus the file columns), or
    ``None`` when there is none or it is unreadable or of another layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = root / INDEX_NAME
    if not path.is_file():
        return None
    try:
        file_schema = pq.read_schema(path)
        if (file_schema.metadata or {}).get(_INDEX_META_KEY) != _INDEX_VERSION or not (
            file_schema.equals(_index_schema(), check_metadata=False)
        ):
            return None
        wanted = None if columns is None else [*columns, *_INDEX_META_COLUMNS]
        # ParquetFile, not read_table: the latter imports pyarrow.dataset (~0.5 s).
        table = pq.ParquetFile(path).read(columns=wanted)
    except (OSError, pa.ArrowException, ValueError):
        return None
    return table


def _write_index(root: Path, table: pyarrow.Table) -> None:
    """Replace the index atomically; a store we cannot write to simply has no index."""
    import pyarrow.parquet as pq

    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{INDEX_NAME}.", suffix=".tmp", dir=root)
        with os.fdopen(fd, "wb") as handle:
            pq.write_table(table.replace_schema_metadata(_index_schema().metadata), handle)
        os.replace(tmp, root / INDEX_NAME)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


#: Files read per pyarrow dataset scan when building the index.
_BATCH = 2000


def _scan_batch(root: Path, rels: list[str]) -> tuple[pyarrow.Table, list[str]]:
    """Read many files with one multi-threaded pyarrow dataset scan.

    Returns the records of the files that gave exactly one row without problems (in
    the order of ``good``) and the list ``good``; every other file is left for
    :func:`_read_table` to explain. Raises pyarrow/OS errors when a file cannot be
    scanned at all (the caller then bisects the batch).
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    schema = arrow_schema()
    loose = pa.schema([pa.field(f.name, f.type) for f in schema])
    by_path = {str(root / rel): rel for rel in rels}
    dataset = ds.FileSystemDataset.from_paths(
        list(by_path),
        schema=loose,
        format=ds.ParquetFileFormat(),
        filesystem=pafs.LocalFileSystem(),
    )
    table = dataset.to_table(columns=[*schema.names, "__filename"], use_threads=True)
    names = table.column("__filename").to_pylist()
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    problems = _row_problems(table.drop_columns(["__filename"]))
    keep = [
        counts[name] == 1 and problem is None for name, problem in zip(names, problems, strict=True)
    ]
    table = table.filter(pa.array(keep)).drop_columns(["__filename"])
    good = [by_path[n] for n, k in zip(names, keep, strict=True) if k]
    return table.cast(schema), good


def _read_files(
    root: Path, rels: list[str]
) -> tuple[list[pyarrow.Table], list[str], list[str], list[str]]:
    """(tables, good rels, bad rels, reasons) for ``rels``: batch scans, bisected on error,
    and one-by-one reading for the files a scan could not vouch for."""
    import pyarrow as pa

    tables: list[pyarrow.Table] = []
    good: list[str] = []
    bad: list[str] = []
    reasons: list[str] = []
    pending = [rels[i : i + _BATCH] for i in range(0, len(rels), _BATCH)]
    single: list[str] = []
    while pending:
        batch = pending.pop()
        if len(batch) <= 4:
            single.extend(batch)
            continue
        try:
            table, ok = _scan_batch(root, batch)
        except (OSError, pa.ArrowException, ValueError):
            half = len(batch) // 2
            pending += [batch[:half], batch[half:]]
            continue
        tables.append(table)
        good.extend(ok)
        vouched = set(ok)
        single.extend(r for r in batch if r not in vouched)
    for rel in single:
        try:
            table = _read_table(root / rel)
        except _BadFile as exc:
            bad.append(rel)
            reasons.append(str(exc))
            continue
        problem = _row_problems(table)[0]
        if problem is None:
            tables.append(table)
            good.append(rel)
        else:
            bad.append(rel)
            reasons.append(problem)
    return tables, good, bad, reasons


def _new_rows(
    root: Path, paths: list[str], stats: dict[str, tuple[int, int, int]]
) -> pyarrow.Table:
    """Read new or changed files into index rows (bad files get a row with ``_error``)."""
    import pyarrow as pa

    schema = arrow_schema()
    index_schema = _index_schema()
    tables, good_paths, bad_paths, bad_reasons = _read_files(root, paths)
    parts = []
    for rels, table in ((good_paths, tables), (bad_paths, None)):
        if not rels:
            continue
        n = len(rels)
        if table is None:
            columns = [pa.nulls(n, type=f.type) for f in schema]
            errs = bad_reasons
        else:
            records = pa.concat_tables(table).combine_chunks()
            columns = [records.column(i) for i in range(records.num_columns)]
            errs = [""] * n
        columns += [
            pa.array(rels, type=pa.string()),
            pa.array([stats[r][0] for r in rels], type=pa.int64()),
            pa.array([stats[r][1] for r in rels], type=pa.int64()),
            pa.array([stats[r][2] for r in rels], type=pa.int64()),
            pa.array(errs, type=pa.string()),
        ]
        parts.append(pa.Table.from_arrays(columns, schema=index_schema))
    if not parts:
        return index_schema.empty_table()
    return pa.concat_tables(parts)


def _load_index(root: Path, columns: Sequence[str] | None = None) -> pyarrow.Table:
    """The up-to-date index of ``root``, sorted by path: records of good files (only
    ``columns`` of them when given and nothing changed), reasons for bad ones. The
    index on disk is rewritten, in full, when anything changed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    paths, sizes, mtimes, inos = _scan(root)
    index = _read_index(root, columns)
    if index is None:
        changed, fresh, kept = True, paths, None
    else:
        # Where each file on disk sits in the index (-1: not there), then whether its
        # (size, mtime_ns, inode) still match: all vectorised, no Python loop per file.
        pos = (
            pc.index_in(pa.array(paths, type=pa.string()), value_set=index.column("_path"))
            .fill_null(-1)
            .to_numpy(zero_copy_only=False)
            .astype(np.int64)
        )
        found = pos >= 0
        where = np.where(found, pos, 0)
        same = found.copy()
        for column, values in (("_size", sizes), ("_mtime_ns", mtimes), ("_ino", inos)):
            same &= index.column(column).to_numpy()[where] == np.asarray(values, dtype=np.int64)
        kept = np.sort(pos[same])
        fresh = [paths[i] for i in np.flatnonzero(~same)]
        changed = bool(fresh) or len(kept) != index.num_rows
        if changed:
            if columns is not None:
                index = _read_index(root)  # the rewrite needs every column
            index = None if index is None else index.take(pa.array(kept))
    if fresh:
        stats = {p: (sizes[i], mtimes[i], inos[i]) for i, p in enumerate(paths)}
        new = _new_rows(root, sorted(fresh), stats)
        index = new if index is None or index.num_rows == 0 else pa.concat_tables([index, new])
    if index is None:
        index = _index_schema().empty_table()
    if changed:
        index = index.combine_chunks().sort_by("_path")
        if paths or (root / INDEX_NAME).exists():
            _write_index(root, index)
    return index


def load_results(
    root: str | os.PathLike[str],
    strict: bool = False,
    columns: Sequence[str] | None = None,
) -> tuple[pandas.DataFrame, list[str]]:
    """Every valid record under ``root``, and a warning for every file left out.

    Files are ``*.parquet`` anywhere under ``root`` except ``root/published`` and
    dot-files or dot-directories (temporary files and the index cache). A warning reads
    ``"PATH: reason"``. An empty or nonexistent root gives an empty frame with the
    columns of :data:`RESULT_COLUMNS`. See the module docstring for the index cache.

    Args:
        root: the store directory.
        strict: raise :class:`~msda_arena.errors.StoreError` for the first bad file
            instead of warning.
        columns: only these columns in the frame (faster for 100,000s of rows);
            default all of :data:`RESULT_COLUMNS`.

    Returns:
        ``(frame, warnings)``: one row per valid file, columns and dtypes of
        :data:`RESULT_COLUMNS`; rows sorted by file path.
    """
    import pyarrow.compute as pc

    wanted = list(RESULT_COLUMNS) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in RESULT_COLUMNS]
    if unknown:
        raise ValueError(f"unknown result column {unknown[0]!r}")
    root = Path(root)
    if not root.is_dir():
        if root.exists():
            raise StoreError(f"{root} is not a directory; point --results at a result store")
        return _empty_frame()[wanted], []
    index = _load_index(root, wanted)
    if index.num_rows == 0:
        return _empty_frame()[wanted], []
    ok_mask = pc.equal(index.column("_error"), "")
    warnings: list[str] = []
    if not pc.all(ok_mask).as_py():
        bad = index.filter(pc.invert(ok_mask))
        for rel, reason in zip(
            bad.column("_path").to_pylist(), bad.column("_error").to_pylist(), strict=True
        ):
            warnings.append(f"{root / rel}: {reason}")
        if strict:
            raise StoreError(
                f"{warnings[0]}; move the file out of the store or run without --strict"
            )
        index = index.filter(ok_mask)
    schema = arrow_schema()
    records = index.select(wanted).cast(_schema_subset(schema, wanted))
    frame = records.to_pandas()
    for column in wanted:
        dtype = RESULT_COLUMNS[column]
        if str(frame[column].dtype) != dtype and not (
            dtype == "str" and frame[column].dtype == object
        ):
            frame[column] = frame[column].astype(dtype)
    return frame, warnings


def _schema_subset(schema: pyarrow.Schema, names: Sequence[str]) -> pyarrow.Schema:
    """The fields ``names`` of ``schema``, in that order."""
    import pyarrow as pa

    return pa.schema([schema.field(n) for n in names])
