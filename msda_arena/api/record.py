"""The result record: what one grid cell stored, and the rules every stored number obeys.

This module is the one owner of a result's columns, their types, the pyarrow schema,
the cell key, construction from a finished or failed cell, and validation. The store
validates with it on write, on read and when it builds its index; the executors build
records with it; the report reads the columns it defines. It crosses from the training
half to the report half and nothing else does.

Validation (:func:`problems`) is one vectorised pass over a pyarrow table, so the same
rules check one record before it is written and 100,000 rows when an index is built:

* no nulls; ``schema_version`` is :data:`SCHEMA_VERSION`; ``status`` is ok or failed;
* ``key`` and ``dataset`` are file-name safe (they become the path) and ``key`` is the
  key of the record's own cell (:func:`cell_key`), so a record names its file;
* ``seed`` in [0, 2**31 - 1], ``epochs`` >= 1;
* an ``ok`` record has finite measurements in range: ``top1`` in [0, 100], ``top5`` in
  [``top1``, 100], ``train_loss`` >= 0, times, throughput and memory >= 0; ``ece`` in
  [0, 1] and ``fgsm_top1`` in [0, 100], or NaN where not measured;
* a ``failed`` record says why (``error`` is not empty).

This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from msda_arena.api.spec import slug

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "COLUMNS",
    "KEY_PATTERN",
    "MAX_SEED",
    "SCHEMA_VERSION",
    "CellLike",
    "RecordError",
    "ResultRecord",
    "arrow_schema",
    "cell_key",
    "problems",
]

#: What makes a result one cell of the grid: two records with these equal are the same cell.
CELL_IDENTITY: tuple[str, ...] = ("dataset", "arch", "scenario", "method", "seed")

#: Version of the record layout; bumped whenever :data:`COLUMNS` or the key change.
#: 2: method_code, plugins, host, notes, ece and fgsm_top1; an injective key.
SCHEMA_VERSION = 2

#: Largest seed a record (and ``--seeds``) accepts.
MAX_SEED = 2**31 - 1

#: A file-name-safe key or dataset: no separators, no leading dot, at most 200 characters.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_=\-][A-Za-z0-9_.=\-]{0,199}$")

_STATUSES = ("ok", "failed")
_SLUG_MAX = 60


class RecordError(ValueError):
    """A record that breaks the rules; the message names the column."""


#: The fingerprint behind a result's ``locality`` column and the report's profiles plot:
#: mask size, masks and seed (fixed, on the CPU, so every worker gets the same number).
LOCALITY_SIZE: tuple[int, int] = (32, 32)
LOCALITY_SAMPLES = 1024
LOCALITY_SEED = 0


@dataclass(frozen=True)
class ResultRecord:
    """One cell's result: its identity, its measurements and where they came from.

    The fields are the columns of a result file, in file order (:data:`COLUMNS`).
    Build one with :meth:`finished` or :meth:`failed`; every construction path is
    validated by :meth:`validate` before the store writes it.
    """

    schema_version: int
    key: str
    status: str
    error: str
    profile: str
    dataset: str
    arch: str
    scenario: str
    method: str  # canonical spec
    method_name: str
    seed: int
    recipe_hash: str
    top1: float
    top5: float
    ece: float  # expected calibration error, 15 bins, a fraction (NaN: not measured)
    fgsm_top1: float  # top-1 % under FGSM at 8/255 of the input range (NaN: not measured)
    train_loss: float
    epochs: int
    wall_time_s: float
    images_per_s: float
    peak_mem_mb: float
    method_package: str
    method_version: str
    method_code: str  # hash of the method's implementation (see plugins.MethodInfo.code)
    locality: float  # locality index at 32 px (msda_arena.theory.fingerprint; NaN: none)
    plugins: str  # every plugin package loaded in the process: "name==version; ..."
    torch_version: str
    timm_version: str
    cuda_version: str
    device_name: str
    host: str
    arena_version: str
    git_commit: str
    config_hash: str
    notes: str  # anything the run changed on its own (e.g. a compile fallback)
    started_at: str
    finished_at: str

    # ------------------------------------------------------------------ construction

    @classmethod
    def finished(
        cls,
        cell: CellLike,
        measured: Mapping[str, Any],
        provenance: Mapping[str, Any],
    ) -> ResultRecord:
        """The ``ok`` record of a cell that trained: ``measured`` holds ``top1``,
        ``top5``, ``train_loss``, ``epochs``, ``wall_time_s``, ``images_per_s``,
        ``peak_mem_mb`` (and optionally ``device_name``, ``notes``); ``provenance`` the
        method and environment columns (see :meth:`failed`)."""
        missing = [k for k in _MEASURED if k not in measured]
        if missing:
            raise RecordError(f"finished cell lacks measurement {missing[0]!r}")
        values = {"ece": math.nan, "fgsm_top1": math.nan}
        values.update({k: measured[k] for k in (*_MEASURED, *_OPTIONAL_MEASURED) if k in measured})
        return cls._build(cell, "ok", "", provenance, values)

    @classmethod
    def failed(
        cls,
        cell: CellLike,
        error: str,
        provenance: Mapping[str, Any],
        epochs: int = 1,
    ) -> ResultRecord:
        """The ``failed`` record of a cell, with its one-line ``error``.

        ``provenance`` holds the columns that are neither the cell's identity nor
        measurements: ``method_name``, ``method_package``, ``method_version``,
        ``method_code``, ``plugins``, the versions, ``device_name``, ``host``,
        ``config_hash``, ``started_at``, ``finished_at`` (missing ones are ``""``).
        """
        text = " ".join(str(error).split()) or "failed without a message"
        values = {
            "top1": math.nan,
            "top5": math.nan,
            "ece": math.nan,
            "fgsm_top1": math.nan,
            "train_loss": math.nan,
            "epochs": max(int(epochs), 1),
            "wall_time_s": 0.0,
            "images_per_s": 0.0,
            "peak_mem_mb": 0.0,
        }
        return cls._build(cell, "failed", text[:2000], provenance, values)

    @classmethod
    def _build(
        cls,
        cell: CellLike,
        status: str,
        error: str,
        provenance: Mapping[str, Any],
        values: Mapping[str, Any],
    ) -> ResultRecord:
        row: dict[str, Any] = {name: "" for name, kind in COLUMNS.items() if kind == "str"}
        row["locality"] = math.nan
        row.update({k: v for k, v in provenance.items() if k in COLUMNS})
        row.update(
            schema_version=SCHEMA_VERSION,
            key=cell.key,
            status=status,
            error=error,
            profile=cell.profile,
            dataset=cell.dataset,
            arch=cell.arch,
            scenario=cell.scenario,
            method=cell.method,
            seed=cell.seed,
            recipe_hash=cell.recipe_hash,
        )
        if not row.get("method_name"):
            row["method_name"] = cell.method.split("(")[0]
        row.update(values)
        return cls.from_dict(row)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ResultRecord:
        """A record from a mapping of every column; raises :class:`RecordError`."""
        if not isinstance(row, Mapping):
            raise RecordError(f"a result record must be a mapping, got {type(row).__name__}")
        for column, kind in COLUMNS.items():
            if column not in row:
                raise RecordError(f"result record is missing column {column!r}")
            _check_kind(column, kind, row[column])
        extra = sorted(set(row) - set(COLUMNS))
        if extra:
            raise RecordError(f"result record has unknown column {extra[0]!r}")
        values = {
            c: int(row[c]) if k == "int64" else float(row[c]) if k == "float64" else row[c]
            for c, k in COLUMNS.items()
        }
        record = cls(**values)
        record.validate()
        return record

    def to_dict(self) -> dict[str, Any]:
        """Every column, in file order."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ResultRecord:
        """A validated copy with ``changes``."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def to_table(self) -> pyarrow.Table:
        """This record as a one-row pyarrow table of :func:`arrow_schema`."""
        import pyarrow as pa

        return pa.Table.from_pylist([self.to_dict()], schema=arrow_schema())

    def validate(self) -> None:
        """Raise :class:`RecordError` unless this record obeys every rule."""
        problem = problems(self.to_table())[0]
        if problem is not None:
            raise RecordError(problem)


#: What a finished cell must report, and what it may (taking precedence over provenance).
_MEASURED = ("top1", "top5", "train_loss", "epochs", "wall_time_s", "images_per_s", "peak_mem_mb")
_OPTIONAL_MEASURED = ("device_name", "notes", "ece", "fgsm_top1")

_KINDS = {int: "int64", float: "float64", str: "str"}

#: Every column of a result record and its pandas dtype, in file order.
COLUMNS: dict[str, str] = {
    f.name: _KINDS[{"int": int, "float": float, "str": str}[str(f.type)]]
    for f in dataclasses.fields(ResultRecord)
}


class CellLike(Protocol):
    """What a record needs of a grid cell (:class:`msda_arena.grid.cells.GridCell`)."""

    profile: str
    dataset: str
    arch: str
    scenario: str
    method: str
    seed: int
    recipe_hash: str

    @property
    def key(self) -> str: ...


def cell_key(profile: str, arch: str, scenario: str, method: str, seed: int, recipe: str) -> str:
    """The file-name-safe key of a cell, unique per (profile, arch, scenario, method,
    seed, recipe hash).

    The parts are readable, and the method slug is followed by 10 hex digits of the
    SHA-256 of the whole identity, so the mapping is injective whatever the names hold:
    two specs whose slugs coincide (``coll(a_b=2)`` and ``coll_a(b=2)``), names that
    contain the ``__`` separator, or names differing only in case (case-insensitive file
    systems) never share a file.
    """
    identity = "\x1f".join((profile, arch, scenario, method, str(seed), recipe))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    key = f"{profile}__{arch}__{scenario}__{slug(method)[:_SLUG_MAX]}-{digest}__s{seed}__{recipe}"
    if not KEY_PATTERN.match(key):
        raise RecordError(
            f"cell key {key[:80]!r}... is not file-name safe or longer than 200 characters; "
            "use shorter profile, architecture and scenario names"
        )
    return key


def _check_kind(column: str, kind: str, value: Any) -> None:
    if kind == "str":
        ok, want = isinstance(value, str), "a string"
    elif kind == "int64":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = ok and -(2**63) <= int(value) < 2**63
        want = "a 64-bit integer"
    else:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        want = "a number"
    if not ok:
        raise RecordError(
            f"result column {column!r} must be {want}, got {type(value).__name__} {value!r}"
        )


@functools.lru_cache(maxsize=1)
def arrow_schema() -> pyarrow.Schema:
    """The pyarrow schema of a result file (the columns of :data:`COLUMNS`)."""
    import pyarrow as pa

    kinds = {"int64": pa.int64(), "float64": pa.float64(), "str": pa.string()}
    return pa.schema([pa.field(c, kinds[t], nullable=False) for c, t in COLUMNS.items()])


# --------------------------------------------------------------------------- validation

#: (column, lowest, highest) of every ok record's measurements; None: unbounded.
_OK_RANGES: tuple[tuple[str, float, float | None], ...] = (
    ("top1", 0.0, 100.0),
    ("top5", 0.0, 100.0),
    ("train_loss", 0.0, None),
    ("wall_time_s", 0.0, None),
    ("images_per_s", 0.0, None),
    ("peak_mem_mb", 0.0, None),
)


#: Measurements an ok record may leave NaN ("not measured"), else in range.
_OK_OPTIONAL_RANGES: tuple[tuple[str, float, float], ...] = (
    ("ece", 0.0, 1.0),
    ("fgsm_top1", 0.0, 100.0),
    ("locality", -math.inf, 1.0),
)


def problems(table: pyarrow.Table) -> list[str | None]:
    """Per row of ``table`` (with every column of :data:`COLUMNS`), the first rule the
    row breaks, as one line naming the column, or ``None`` for a valid record.

    Vectorised: one pass of pyarrow compute per rule, then :func:`cell_key` per row.
    """
    import numpy as np
    import pyarrow.compute as pc

    n = table.num_rows
    reasons: list[str | None] = [None] * n
    if n == 0:
        return reasons
    bad = np.zeros(n, dtype=bool)

    def flag(mask: Any, reason: str | Any) -> None:
        mask = np.asarray(mask, dtype=bool) & ~bad
        for i in np.flatnonzero(mask):
            reasons[i] = reason(i) if callable(reason) else reason
        bad[mask] = True

    def arr(column: str) -> np.ndarray:
        return table.column(column).to_numpy(zero_copy_only=False)

    for column in COLUMNS:
        col = table.column(column)
        if col.null_count:
            flag(
                pc.is_null(col).to_numpy(zero_copy_only=False),
                f"{column!r} is empty (null or NaN written as null)",
            )
    if bad.all():
        return reasons
    version = table.column("schema_version").fill_null(SCHEMA_VERSION)
    flag(
        pc.not_equal(version, SCHEMA_VERSION).to_numpy(zero_copy_only=False),
        lambda i: (
            f"'schema_version' is {arr('schema_version')[i]}, not {SCHEMA_VERSION} "
            "(written by another msda-arena version)"
        ),
    )
    status = arr("status")
    flag(~np.isin(status, _STATUSES), "'status' is neither 'ok' nor 'failed'")
    for column in ("dataset", "key"):
        values = table.column(column).fill_null("")
        safe = pc.match_substring_regex(values, KEY_PATTERN.pattern).to_numpy(zero_copy_only=False)
        flag(~safe, f"{column!r} is not file-name safe")
    seed = arr("seed")
    flag((seed < 0) | (seed > MAX_SEED), f"'seed' is outside 0..{MAX_SEED}")
    flag(arr("epochs") < 1, "'epochs' is below 1")
    ok = status == "ok"
    for column, lo, hi in _OK_RANGES:
        values = arr(column).astype(np.float64)
        with np.errstate(invalid="ignore"):
            out = ~np.isfinite(values) | (values < lo)
            if hi is not None:
                out |= values > hi
        span = f"[{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
        flag(
            ok & out,
            lambda i, c=column, s=span, v=values: (
                f"{c!r} is {float(v[i])!r}, outside {s} for an ok result"
            ),
        )
    for column, lo, hi in _OK_OPTIONAL_RANGES:
        values = arr(column).astype(np.float64)
        with np.errstate(invalid="ignore"):
            out = np.isinf(values) | (values < lo) | (values > hi)
        flag(
            ok & out,
            lambda i, c=column, v=values, lo=lo, hi=hi: (
                f"{c!r} is {float(v[i])!r}, outside [{lo:g}, {hi:g}] (NaN: not measured)"
            ),
        )
    with np.errstate(invalid="ignore"):
        flag(ok & (arr("top5") < arr("top1")), "'top5' is below 'top1'")
    flag((status == "failed") & (arr("error") == ""), "a failed record has no 'error'")
    keys, profiles, archs, scenarios, methods, seeds, recipes = (
        arr(c).tolist()
        for c in ("key", "profile", "arch", "scenario", "method", "seed", "recipe_hash")
    )
    wrong_key = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~bad):
        try:
            expected = cell_key(
                profiles[i], archs[i], scenarios[i], methods[i], seeds[i], recipes[i]
            )
        except RecordError:
            expected = None
        wrong_key[i] = expected != keys[i]
    flag(wrong_key, "'key' does not match the record's own cell (profile, arch, scenario, ...)")
    return reasons
