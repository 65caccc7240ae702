"""The result store: one small parquet file per grid cell, written atomically.

Layout: ``<root>/<dataset>/<key>.parquet``, each file holding exactly one
:class:`~msda_arena.api.record.ResultRecord` (the record module owns the columns, the key
and the rules). Files are written to a temporary file in the same directory
(``.<host>.<pid>.<random>.tmp``, so a left-over one names its dead writer), flushed to
disk and moved into place with :func:`os.replace`, so a crash never leaves a partial
``.parquet`` where a reader looks.

Reading tolerates damage: a file that cannot be read, lacks a column, has a column of
the wrong type, holds anything but one row, breaks a rule of the record (a top-1 of
1e9, NaN in an ok result) or sits where its key does not say is reported as
``"PATH: reason"`` and left out (``strict=True`` turns that into a
:class:`~msda_arena.api.errors.StoreError`). The same rules run on write, on read and
when the index is built.

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
import os
import secrets
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from msda_arena.api.errors import StoreError
from msda_arena.api.record import (
    COLUMNS,
    KEY_PATTERN,
    LATER_COLUMNS,
    SCHEMA_VERSION,
    ResultRecord,
    arrow_schema,
    problems,
    with_later_columns,
)
from msda_arena.store.hosts import host_tag, pid_alive

if TYPE_CHECKING:
    import pandas
    import pyarrow

__all__ = [
    "CHECKPOINT_DIR",
    "INDEX_NAME",
    "WRITE_OPTIONS",
    "cell_path",
    "check_writable",
    "checkpoint_path",
    "clean_temporaries",
    "indexed",
    "inspect_file",
    "load_results",
    "read_result",
    "reason_kind",
    "result_files",
    "temporaries",
    "write_checkpoint",
    "write_result",
]

#: File name of the index cache inside the store root (a dot-file: never a result).
INDEX_NAME = ".index.parquet"
_INDEX_VERSION = b"2"
_INDEX_META_KEY = b"msda_arena.index_version"
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
#: A temporary file older than this is left over by a writer that died (a write takes
#: milliseconds); one of a dead process on this host is left over at once.
TEMP_MAX_AGE_S = 600.0


class _BadFile(Exception):
    """A file that is not a valid result record; the message is the reason."""


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

    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})


def cell_path(root: str | os.PathLike[str], dataset: str, key: str) -> Path:
    """The file of one grid cell: ``root/dataset/key.parquet``.

    Raises :class:`StoreError` unless ``dataset`` and ``key`` are file-name safe
    (:data:`msda_arena.api.record.KEY_PATTERN`), so no name can reach outside the store.
    """
    for what, name in (("dataset", dataset), ("key", key)):
        if not isinstance(name, str) or not KEY_PATTERN.match(name):
            raise StoreError(f"{what} {str(name)[:80]!r} is not a file-name-safe store name")
    return Path(root) / dataset / f"{key}.parquet"


#: Folder of a dataset's checkpoints inside the store (``--save-checkpoints``).
CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(root: str | os.PathLike[str], dataset: str, key: str) -> Path:
    """The safetensors weights of one cell: ``root/dataset/checkpoints/key.safetensors``."""
    return cell_path(root, dataset, key).parent / CHECKPOINT_DIR / f"{key}.safetensors"


def write_checkpoint(
    root: str | os.PathLike[str],
    dataset: str,
    key: str,
    state: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a cell's weights to :func:`checkpoint_path` as safetensors (never a pickle),
    atomically like a result; raise :class:`StoreError` naming the path on failure."""
    from safetensors.torch import save

    target = checkpoint_path(root, dataset, key)
    try:
        _write_atomic(target, lambda handle: handle.write(save(dict(state), dict(metadata or {}))))
    except OSError as exc:
        raise StoreError(f"could not write {target}: {exc.strerror or exc}") from None
    return target


def _open_temp(directory: str | os.PathLike[str]) -> tuple[int, str]:
    """A new temporary file ``.<host>.<pid>.<random>.tmp`` in ``directory`` (whose it is
    is in the name), open for writing. Its mode is 0666 less the umask, as for any file
    the user creates (mkstemp's 0600 hid a group's shared store from the group)."""
    while True:
        name = f".{host_tag()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        path = os.path.join(directory, name)
        with contextlib.suppress(FileExistsError):
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path


def _write_atomic(target: Path, fill: Callable[[BinaryIO], object], durable: bool = True) -> None:
    """Write ``target`` through a temporary file in its folder, made if need be
    (``fill(handle)``), fsynced when ``durable``, then moved into place with
    :func:`os.replace`; on failure the temporary file is removed, ``target`` untouched,
    and OSError raised."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_result(root: str | os.PathLike[str], record: ResultRecord | Mapping[str, Any]) -> Path:
    """Validate ``record`` and write it as a one-row parquet file, atomically; return its path.

    The file goes to :func:`cell_path`, replacing a result of the same cell; on failure
    the old file (if any) is untouched (:func:`_write_atomic`).

    Raises:
        RecordError: the record breaks a rule of :mod:`msda_arena.api.record` (the message
            names the column).
        StoreError: the file cannot be written (one line naming the path and the cause).
    """
    import pyarrow.parquet as pq

    if not isinstance(record, ResultRecord):
        record = ResultRecord.from_dict(record)
    table = record.to_table()
    target = cell_path(root, record.dataset, record.key)
    try:
        _write_atomic(target, lambda handle: pq.write_table(table, handle, **WRITE_OPTIONS))
    except OSError as exc:
        raise StoreError(
            f"could not write {target}: {exc.strerror or exc}; every result stored before is "
            "kept: fix the cause (space, permissions) and rerun the same command to resume"
        ) from None
    _fsync_dir(target.parent)
    return target


def check_writable(root: str | os.PathLike[str], create: bool = True) -> Path:
    """Create ``root`` if needed and prove a result can be written there (a probe file
    is written, fsynced and removed); raise :class:`StoreError` in one line otherwise.

    With ``create=False`` nothing is created or written: only the path is checked
    (not a file, its nearest existing folder writable), for a check before any work.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise StoreError(f"--results {root} is a file, not a directory; point it at a folder")
    if not create:
        parent = root
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise StoreError(f"--results {root}: {parent} is a file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise StoreError(
                f"cannot write results to {root}: {parent} is not writable; "
                "choose a writable folder with --results"
            )
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, probe = _open_temp(root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(b"msda-arena write probe")
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            os.unlink(probe)
    except OSError as exc:
        raise StoreError(
            f"cannot write results to {root}: {exc.strerror or exc}; "
            "choose a writable folder with --results"
        ) from None
    return root


def temporaries(root: str | os.PathLike[str], now: float | None = None) -> list[tuple[Path, bool]]:
    """Every temporary file under ``root`` (results' and the index's) and whether it is
    left over: its writer, on this host, is gone, or it is older than
    :data:`TEMP_MAX_AGE_S`."""
    root = Path(root)
    if not root.is_dir():
        return []

    now = time.time() if now is None else now
    host = host_tag()
    found: list[tuple[Path, bool]] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            path = Path(directory) / name
            try:
                age = now - path.stat().st_mtime
            except OSError:
                continue
            parts = name.split(".")
            dead = (
                len(parts) >= 5
                and parts[1] == host
                and parts[2].isdigit()
                and not pid_alive(int(parts[2]))
            )
            found.append((path, dead or age > TEMP_MAX_AGE_S))
    return found


def clean_temporaries(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the left-over temporary files of :func:`temporaries`; return their paths.

    Only ever removes files whose name says they are temporaries (``.*.tmp``) and whose
    writer is gone: a temporary file is never a result.
    """
    removed = []
    for path, leftover in temporaries(root):
        if leftover:
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)


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
    except PermissionError:
        raise _BadFile(
            "unreadable by this user: its owner can `chmod a+r` it, or `arena verify --repair` "
            "moves it aside"
        ) from None
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _BadFile(f"not a readable parquet file ({_short(exc)})") from None
    names = set(file_schema.names)
    present = [c for c in COLUMNS if c in names]
    missing = [c for c in COLUMNS if c not in names and c not in LATER_COLUMNS]
    if missing:
        if "schema_version" in names and rows == 1:
            try:
                version = pf.read(columns=["schema_version"]).column(0)[0].as_py()
            except (OSError, pa.ArrowException, ValueError):
                version = None
            if version != SCHEMA_VERSION:
                raise _BadFile(
                    f"old record layout (schema_version {version}, this msda-arena writes "
                    f"{SCHEMA_VERSION}); rerun `arena run` to retrain the cell"
                )
        extra = "" if len(missing) == 1 else f" (and {len(missing) - 1} more)"
        raise _BadFile(f"foreign file: no column {missing[0]!r}{extra}")
    if rows != 1:
        raise _BadFile(f"foreign file: {rows} rows, a result file holds exactly one")
    for column in present:
        t, kind = file_schema.field(column).type, COLUMNS[column]
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
            table = pf.read(columns=present, use_threads=False)
            table = with_later_columns(table).select(list(COLUMNS))
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _BadFile(f"not a readable parquet file ({_short(exc)})") from None
    loose = _loose(schema)
    if not table.schema.equals(loose, check_metadata=False):
        try:  # nulls survive the cast; the record's rules then name the column
            table = table.cast(loose)
        except (pa.ArrowException, ValueError) as exc:
            raise _BadFile(
                f"foreign file: columns do not fit the result schema ({_short(exc)})"
            ) from None
    return table


def _loose(schema: pyarrow.Schema) -> pyarrow.Schema:
    """``schema`` with every field nullable (nulls are judged by the record's rules)."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, f.type) for f in schema])


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _placement(rel: str, dataset: str, key: str) -> str | None:
    """Why a valid record at ``rel`` (relative to the root) is misplaced, or None."""
    expected = f"{dataset}/{key}.parquet"
    if rel == expected:
        return None
    return f"{_MISPLACED_PREFIX}: its record belongs at {expected} (a copy or a renamed file)"


def _problems(table: pyarrow.Table, rels: Sequence[str]) -> list[str | None]:
    """The record rules of :func:`msda_arena.api.record.problems`, then the file's place."""
    reasons = problems(table)
    datasets = table.column("dataset").to_pylist()
    keys = table.column("key").to_pylist()
    for i, rel in enumerate(rels):
        if reasons[i] is None:
            reasons[i] = _placement(rel, datasets[i], keys[i])
    return reasons


#: Message prefixes of refused files, by kind (see :func:`reason_kind`).
_FOREIGN_PREFIXES = ("foreign file", "old record layout", "unreadable")
_MISPLACED_PREFIX = "misplaced"


def reason_kind(reason: str) -> str:
    """The kind of a refused file from the reason this module gave: ``"foreign"`` (not
    a result record of this layout, or not readable by this user), ``"misplaced"`` (a
    valid record under another file's name) or ``"corrupt"`` (not parquet, truncated,
    or a record breaking the rules)."""
    if reason.startswith(_FOREIGN_PREFIXES):
        return "foreign"
    if reason.startswith(_MISPLACED_PREFIX):
        return "misplaced"
    return "corrupt"


def inspect_file(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """``(record, None)`` for a valid result file, ``(None, reason)`` otherwise.

    With ``root``, a valid record must also sit where its key says
    (``root/dataset/key.parquet``); a copy elsewhere is *misplaced*.
    """
    try:
        table = _read_table(path)
    except _BadFile as exc:
        return None, str(exc)
    problem = problems(table)[0]
    record = table.to_pylist()[0]
    if problem is None and root is not None:
        rel = Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
        problem = _placement(rel, record["dataset"], record["key"])
    if problem is not None:
        return None, problem
    return record, None


def read_result(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record in one result file, or ``None`` if it is missing, corrupt or foreign.

    Never raises for a bad file; use :func:`load_results` to learn why a file was refused.
    """
    return inspect_file(path)[0]


def _scan(
    root: Path, strays: list[str] | None = None
) -> tuple[list[str], list[int], list[int], list[int]]:
    """:func:`result_files` as four lists in one order: paths, sizes, mtimes (ns), inodes.
    Symbolic links are never followed, folders named ``*.parquet`` never entered."""
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
                if name[0] == "." or (prefix == "" and name in _SKIP_DIRS):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                result = name.endswith(".parquet")
                if stat.S_ISREG(st.st_mode) and result:
                    paths.append(prefix + name)
                    sizes.append(st.st_size)
                    mtimes.append(st.st_mtime_ns)
                    inos.append(st.st_ino)
                elif stat.S_ISDIR(st.st_mode) and not result:
                    stack.append((entry.path, f"{prefix}{name}/"))
                elif strays is not None and not (
                    stat.S_ISREG(st.st_mode)
                    and name.endswith(".safetensors")
                    and prefix.count("/") == 2
                    and prefix.endswith(f"/{CHECKPOINT_DIR}/")
                ):
                    strays.append(prefix + name)
    return paths, sizes, mtimes, inos


_INDEX_META_COLUMNS = ("_path", "_size", "_mtime_ns", "_ino", "_error")


def result_files(
    root: str | os.PathLike[str], strays: list[str] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Every candidate result file under ``root`` (relative posix path) with its
    (size, mtime_ns, inode): what :func:`load_results` reads. Entries that are neither
    a candidate nor a folder nor a checkpoint (symbolic links, folders named
    ``*.parquet``, other files) are appended to ``strays``; dot-entries and
    ``published/`` are the arena's own and never listed."""
    paths, sizes, mtimes, inos = _scan(Path(root), strays)
    return {p: (s, m, i) for p, s, m, i in zip(paths, sizes, mtimes, inos, strict=True)}


def indexed(
    root: str | os.PathLike[str],
) -> dict[str, tuple[tuple[int, int, int], dict[str, Any] | None, str]] | None:
    """The index cache as it is on disk, without refreshing it: relative path ->
    ((size, mtime_ns, inode), record or None, reason the file was refused or "").
    None when there is no usable index."""
    index = _read_index(Path(root))
    if index is None:
        return None
    rows = index.to_pylist()
    out = {}
    for row in rows:
        meta = (row.pop("_size"), row.pop("_mtime_ns"), row.pop("_ino"))
        rel, error = row.pop("_path"), row.pop("_error")
        out[rel] = (meta, None if error else row, error)
    return out


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

    metadata = _index_schema().metadata
    with contextlib.suppress(OSError):
        _write_atomic(
            root / INDEX_NAME,
            lambda handle: pq.write_table(table.replace_schema_metadata(metadata), handle),
            durable=False,  # a cache: rebuilt if lost
        )


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
    loose = _loose(schema)
    by_path = {str(root / rel): rel for rel in rels}
    dataset = ds.FileSystemDataset.from_paths(
        list(by_path),
        schema=loose,
        format=ds.ParquetFileFormat(),
        filesystem=pafs.LocalFileSystem(),
    )
    table = with_later_columns(dataset.to_table(columns=[*schema.names, "__filename"]))
    names = table.column("__filename").to_pylist()
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    rows = table.drop_columns(["__filename"])
    reasons = _problems(rows, [by_path[n] for n in names])
    keep = [
        counts[name] == 1 and reason is None for name, reason in zip(names, reasons, strict=True)
    ]
    table = table.filter(pa.array(keep)).drop_columns(["__filename"])
    good = [by_path[n] for n, k in zip(names, keep, strict=True) if k]
    return table.cast(loose), good


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
        problem = _problems(table, [rel])[0]
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
        columns.append(pa.array(rels, type=pa.string()))
        columns += [pa.array([stats[r][j] for r in rels], type=pa.int64()) for j in range(3)]
        columns.append(pa.array(errs, type=pa.string()))
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

    Files are those of :func:`result_files`. A warning reads ``"PATH: reason"``. An empty
    or nonexistent root gives an empty frame with the columns of :data:`COLUMNS`. See the
    module docstring for the index cache.

    Args:
        strict: raise :class:`~msda_arena.api.errors.StoreError` for the first bad file
            instead of warning.
        columns: only these columns in the frame (faster for 100,000s of rows);
            default all of :data:`COLUMNS`.

    Returns:
        ``(frame, warnings)``: one row per valid file, columns and dtypes of
        :data:`COLUMNS`; rows sorted by file path.
    """
    import pyarrow.compute as pc

    wanted = list(COLUMNS) if columns is None else list(columns)
    unknown = [c for c in wanted if c not in COLUMNS]
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
        dtype = COLUMNS[column]
        if str(frame[column].dtype) != dtype and not (
            dtype == "str" and frame[column].dtype == object
        ):
            frame[column] = frame[column].astype(dtype)
    return frame, warnings


def _schema_subset(schema: pyarrow.Schema, names: Sequence[str]) -> pyarrow.Schema:
    """The fields ``names`` of ``schema``, in that order."""
    import pyarrow as pa

    return pa.schema([schema.field(n) for n in names])
