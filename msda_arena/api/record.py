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
* ``seed`` in [0, 2**31 - 1], ``epochs`` >= 1, ``threads`` >= 0, ``deterministic`` 0 or 1;
* an ``ok`` record has finite measurements in range: ``top1`` in [0, 100], ``top5`` in
  [``top1``, 100], ``train_loss`` >= 0, times, throughput and memory >= 0; ``ece`` in
  [0, 1] and ``fgsm_top1`` in [0, 100], or NaN where not measured;
* a ``failed`` record says why (``error`` is not empty);
* a ``curve`` is empty (not recorded) or decodes (:func:`decode_curve`) to one entry
  per epoch of every series (an ok record: ``epochs`` entries).

This module does not import torch.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from msda_arena.api.metrics import METRICS
from msda_arena.api.spec import slug

if TYPE_CHECKING:
    import pyarrow

__all__ = [
    "CELL_IDENTITY",
    "COLUMNS",
    "CURVE_SERIES",
    "IDENTITY_COLUMNS",
    "KEY_PATTERN",
    "LATER_COLUMNS",
    "MAX_SEED",
    "MEASUREMENT_COLUMNS",
    "PROVENANCE_COLUMNS",
    "SCHEMA_VERSION",
    "CellLike",
    "EpochPoint",
    "EvalMetrics",
    "Measurements",
    "RecordError",
    "ResultRecord",
    "arrow_schema",
    "cell_key",
    "decode_curve",
    "encode_curve",
    "problems",
    "with_later_columns",
]

#: What makes a result one cell of the grid: two records with these equal are the same cell.
CELL_IDENTITY: tuple[str, ...] = ("dataset", "arch", "scenario", "method", "seed")

#: Version of the record layout; bumped whenever the key changes or a column is removed or
#: changes meaning (an added column is one of :data:`LATER_COLUMNS`, so older files read).
#: 2: method_code, plugins, host, notes, ece and fgsm_top1; an injective key. Later:
#: threads and deterministic; curve.
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


@dataclass(frozen=True, kw_only=True)
class EvalMetrics:
    """What one evaluation pass measured (percent for top-k, fraction for ECE)."""

    top1: float
    top5: float
    ece: float = math.nan  # expected calibration error, 15 bins (NaN: not measured)
    fgsm_top1: float = math.nan  # top-1 % under FGSM at 8/255 of the input range


@dataclass(frozen=True, kw_only=True)
class EpochPoint:
    """One epoch of a cell's training: one entry of its learning curve (the trainer
    reports it after every epoch and stores the series in :attr:`Measurements.curve`)."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch's steps
    lr: float  # learning rate of the epoch's last step
    seconds: float  # wall time of the epoch's training (an evaluation not included)
    top1: float = math.nan  # test top-1 % after the epoch (NaN: the recipe's eval_every skips it)


#: The series of a learning curve, in order: the fields of :class:`EpochPoint`.
CURVE_SERIES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EpochPoint))


def encode_curve(points: Sequence[EpochPoint]) -> str:
    """The ``curve`` column of ``points``: compact JSON of one list per series of
    :data:`CURVE_SERIES` (NaN written as ``null``, so any JSON reader takes it)."""
    series = {name: [_json_number(getattr(p, name)) for p in points] for name in CURVE_SERIES}
    return json.dumps(series, separators=(",", ":"), allow_nan=False)


def _json_number(value: float) -> float | None:
    """``value``, or ``None`` for NaN (JSON has no NaN)."""
    return None if isinstance(value, float) and math.isnan(value) else value


def decode_curve(text: str) -> dict[str, list[float]]:
    """A ``curve`` column as one list per series of :data:`CURVE_SERIES` (``null`` read
    as NaN); ``{}`` for ``""`` (not recorded: a failed cell, or written before curves).

    Raises:
        RecordError: not a curve (not JSON, a series missing, series of unequal length,
            a value that is not a number).
    """
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise RecordError("'curve' is not JSON") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(n), list) for n in CURVE_SERIES):
        raise RecordError(f"'curve' must hold a list for each of {', '.join(CURVE_SERIES)}")
    out: dict[str, list[float]] = {}
    for name in CURVE_SERIES:
        values = data[name]
        if any(v is not None and (isinstance(v, bool) or not isinstance(v, int | float))
               for v in values):  # fmt: skip
            raise RecordError(f"'curve' series {name!r} holds a value that is not a number")
        out[name] = [math.nan if v is None else float(v) for v in values]
    if len({len(v) for v in out.values()}) > 1:
        raise RecordError("'curve' series are of unequal length")
    return out


@dataclass(frozen=True, kw_only=True)
class Measurements(EvalMetrics):
    """What training one cell measured, as the trainer fills it: each field is the
    :class:`ResultRecord` column of its name, and travels there unchanged."""

    train_loss: float
    epochs: int
    wall_time_s: float
    images_per_s: float
    peak_mem_mb: float
    device_name: str = ""
    notes: str = ""  # anything the run changed on its own (e.g. a compile fallback)
    threads: int = 0  # torch threads the cell trained with (0: not recorded)
    deterministic: int = 0  # 1: torch's deterministic algorithms were on
    curve: str = ""  # the learning curve, one entry per epoch (encode_curve; "": not recorded)


@dataclass(frozen=True, kw_only=True)
class _CellColumns:
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


@dataclass(frozen=True, kw_only=True)
class _Provenance:
    method_package: str
    method_version: str
    method_code: str  # hash of the method's implementation (see plugins.MethodInfo.code)
    locality: float  # locality index at 32 px (msda_arena.theory.fingerprint; NaN: none)
    plugins: str  # every plugin package loaded in the process: "name==version; ..."
    torch_version: str
    timm_version: str
    cuda_version: str
    host: str
    arena_version: str
    git_commit: str
    config_hash: str
    started_at: str
    finished_at: str


@dataclass(frozen=True)
class ResultRecord(_Provenance, Measurements, _CellColumns):
    """One cell's result: its identity, its measurements and where they came from.

    The fields are the columns of a result file, in file order (:data:`COLUMNS`): those
    of ``_CellColumns``, of :class:`Measurements`, then of ``_Provenance`` (dataclass
    fields come from the bases in reverse order). Build one with :meth:`finished` or
    :meth:`failed`; every construction path is validated by :meth:`validate` before
    the store writes it.
    """

    # ------------------------------------------------------------------ construction

    @classmethod
    def finished(
        cls, cell: CellLike, measured: Measurements, provenance: Mapping[str, Any]
    ) -> ResultRecord:
        """The ``ok`` record of a cell that trained: ``measured`` as the trainer filled
        it (a subclass, such as the trainer's result, gives only its
        :class:`Measurements` fields); ``provenance`` the method and environment
        columns (see :meth:`failed`)."""
        return cls._build(cell, "ok", "", {**provenance, **_measurement_columns(measured)})

    @classmethod
    def failed(
        cls,
        cell: CellLike,
        error: str,
        provenance: Mapping[str, Any],
        epochs: int = 1,
    ) -> ResultRecord:
        """The ``failed`` record of a cell, with its one-line ``error``. ``provenance``
        holds the columns of ``_Provenance``, ``method_name`` and ``device_name``
        (missing ones are ``""``)."""
        text = " ".join(str(error).split()) or "failed without a message"
        nothing = Measurements(
            top1=math.nan, top5=math.nan, train_loss=math.nan, epochs=max(int(epochs), 1),
            wall_time_s=0.0, images_per_s=0.0, peak_mem_mb=0.0,
        )  # fmt: skip
        values = {**_measurement_columns(nothing), **provenance}
        return cls._build(cell, "failed", text[:2000], values)

    @classmethod
    def _build(
        cls, cell: CellLike, status: str, error: str, values: Mapping[str, Any]
    ) -> ResultRecord:
        row: dict[str, Any] = {name: "" for name, kind in COLUMNS.items() if kind == "str"}
        row["locality"] = math.nan
        row.update({k: v for k, v in values.items() if k in COLUMNS})
        row.update({c: getattr(cell, c) for c in ("key", "profile", *CELL_IDENTITY, "recipe_hash")})
        row.update(schema_version=SCHEMA_VERSION, status=status, error=error)
        if not row.get("method_name"):
            row["method_name"] = cell.method.split("(")[0]
        return cls.from_dict(row)

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> ResultRecord:
        """A record from a mapping of every column; raises :class:`RecordError`."""
        if not isinstance(row, Mapping):
            raise RecordError(f"a result record must be a mapping, got {type(row).__name__}")
        row = {**_LATER_DEFAULTS, **row}  # written before those columns existed
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


_KINDS = {int: "int64", float: "float64", str: "str"}

#: Every column of a result record and its pandas dtype, in file order.
COLUMNS: dict[str, str] = {
    f.name: _KINDS[{"int": int, "float": float, "str": str}[str(f.type)]]
    for f in dataclasses.fields(ResultRecord)
}

#: The columns of each part of a record: the cell and its status, what training measured
#: (:class:`Measurements`), and where it came from.
IDENTITY_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(_CellColumns))
MEASUREMENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Measurements))
PROVENANCE_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(_Provenance))

#: Columns added after schema version 2 was first written, and the value a record
#: written before them reads as (their :class:`Measurements` default: "not recorded").
LATER_COLUMNS: tuple[str, ...] = ("threads", "deterministic", "curve")
_LATER_DEFAULTS = {c: Measurements.__dataclass_fields__[c].default for c in LATER_COLUMNS}


def _measurement_columns(measured: Measurements) -> dict[str, Any]:
    """The :class:`Measurements` fields of ``measured`` (a subclass's own are left out)."""
    return {name: getattr(measured, name) for name in MEASUREMENT_COLUMNS}


def with_later_columns(table: pyarrow.Table) -> pyarrow.Table:
    """``table`` with each of :data:`LATER_COLUMNS` it lacks added, and its nulls
    filled, at the value a record written before the column existed reads as."""
    import pyarrow as pa

    for column, value in _LATER_DEFAULTS.items():
        if column not in table.column_names:
            kind = arrow_schema().field(column).type
            table = table.append_column(column, pa.nulls(table.num_rows, kind))
        filled = table.column(column).fill_null(value)
        table = table.set_column(table.column_names.index(column), column, filled)
    return table


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


#: The columns a cell's key is made of, in :func:`cell_key`'s order.
_KEY_PARTS = ("profile", "arch", "scenario", "method", "seed", "recipe_hash")


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


def _flag_curves(table: pyarrow.Table, ok: Any, flag: Any) -> None:
    """Flag (``flag(mask, reason)``) each row whose ``curve`` does not decode, or, in an
    ``ok`` record (mask ``ok``), has other than ``epochs`` entries. Only the rows with
    a curve are decoded, one by one: about 12 us for 8 epochs, 0.2 ms for 200."""
    import numpy as np

    curves = table.column("curve").to_pylist()
    epochs = table.column("epochs").to_pylist()
    bad = np.zeros(len(curves), dtype=bool)
    reasons: dict[int, str] = {}
    for i, text in enumerate(curves):
        if not text:
            continue
        try:
            series = decode_curve(text)
        except RecordError as exc:
            bad[i], reasons[i] = True, str(exc)
            continue
        if ok[i] and len(series["epoch"]) != epochs[i]:
            bad[i] = True
            reasons[i] = f"'curve' has {len(series['epoch'])} epochs, the record {epochs[i]}"
    flag(bad, lambda i: reasons[int(i)])


#: (column, lowest, highest, may be NaN: "not measured") of an ok record's measurements:
#: each ranked metric's declared range (:data:`~msda_arena.api.metrics.METRICS`), then the rest.
_OK_RANGES: tuple[tuple[str, float, float, bool], ...] = (
    *((m.column, *m.valid, not m.always_measured) for m in METRICS.values()),
    ("top5", 0.0, 100.0, False),
    ("train_loss", 0.0, math.inf, False),
    ("wall_time_s", 0.0, math.inf, False),
    ("images_per_s", 0.0, math.inf, False),
    ("peak_mem_mb", 0.0, math.inf, False),
    ("locality", -math.inf, 1.0, True),
)


def problems(table: pyarrow.Table) -> list[str | None]:
    """Per row of ``table`` (with every column of :data:`COLUMNS`), the first rule the
    row breaks, as one line naming the column, or ``None`` for a valid record.

    Vectorised: one pass of pyarrow compute per rule, then :func:`cell_key` and
    :func:`decode_curve` per row.
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
    flag(arr("threads") < 0, "'threads' is below 0")
    flag(~np.isin(arr("deterministic"), (0, 1)), "'deterministic' is neither 0 nor 1")
    ok = status == "ok"
    for column, lo, hi, nan_ok in _OK_RANGES:
        v = arr(column).astype(np.float64)
        with np.errstate(invalid="ignore"):
            out = (np.isinf(v) if nan_ok else ~np.isfinite(v)) | (v < lo) | (v > hi)
        span = f"[{lo:g}, {hi:g}]" if hi < math.inf else f">= {lo:g}"
        tail = "(NaN: not measured)" if nan_ok else "for an ok result"
        flag(
            ok & out,
            lambda i, c=column, v=v, s=span, t=tail: f"{c!r} is {float(v[i])!r}, outside {s} {t}",
        )
    with np.errstate(invalid="ignore"):
        flag(ok & (arr("top5") < arr("top1")), "'top5' is below 'top1'")
    flag((status == "failed") & (arr("error") == ""), "a failed record has no 'error'")
    _flag_curves(table, ok, flag)
    wrong_key = np.zeros(n, dtype=bool)
    parts = [arr(c).tolist() for c in ("key", *_KEY_PARTS)]
    for i in np.flatnonzero(~bad):
        try:
            wrong_key[i] = cell_key(*(part[i] for part in parts[1:])) != parts[0][i]
        except RecordError:
            wrong_key[i] = True
    flag(wrong_key, "'key' does not match the record's own cell (profile, arch, scenario, ...)")
    return reasons
