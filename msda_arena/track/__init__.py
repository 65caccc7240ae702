"""Experiment trackers: each finished cell as a run of MLflow, TensorBoard or W&B.

``arena run --tracker NAME`` (repeatable) logs every cell it trains, under every
executor: the worker that stored the cell logs it (:func:`log_cell`), after its result
file is written, so the parquet store stays the source of truth and a tracker never
slows the cell's measurements. A run is named by the cell's key; its parameters are the
cell (method spec, arch, scenario, seed, ...), the recipe and the provenance columns;
its metrics the learning curve per epoch (``curve/<series>``, step = epoch) and the
record's measurements (``final/<column>``); its tags the status and, for a failed cell,
the error.

Trackers are a registry by name (:data:`TRACKERS`, one declaration each); the library
behind each is an optional extra, imported only when a cell is logged. A tracker whose
package is missing is dropped with a one-line warning before the run
(:func:`check_trackers`: the run goes on, the store is complete without it); one that
raises warns in one line and is not used again in that process for the rest of the run
(a tracker server that is down would otherwise cost every cell its timeout).

This module imports nothing heavy; :mod:`msda_arena.track.backends` holds the loggers.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from msda_arena.api.errors import UsageError
from msda_arena.api.record import (
    IDENTITY_COLUMNS,
    MEASUREMENT_COLUMNS,
    PROVENANCE_COLUMNS,
    ResultRecord,
    decode_curve,
)

__all__ = [
    "TRACKERS",
    "CellRun",
    "Tracker",
    "cell_run",
    "check_trackers",
    "log_cell",
    "prepare_trackers",
    "tracker_help",
]

#: The experiment (MLflow) or project (W&B) runs go to unless the tracker's own variable
#: (``MLFLOW_EXPERIMENT_NAME``, ``WANDB_PROJECT``) says otherwise.
EXPERIMENT = "msda-arena"


@dataclass(frozen=True)
class Tracker:
    """One tracker: ``--tracker name``; ``package``: the module it needs (checked
    without importing it); ``extra``: the pip extra that installs it; ``log``:
    ``"module:function"`` that logs one :class:`CellRun`; ``prepare``: ``""`` or
    ``"module:function"`` run once before the grid, in the driver (what workers must
    not race to create, such as MLflow's store and experiment)."""

    name: str
    package: str
    extra: str
    log: str
    prepare: str = ""


#: ``--tracker`` name -> its declaration.
TRACKERS: dict[str, Tracker] = {
    t.name: t
    for t in (
        Tracker(
            "mlflow",
            "mlflow",
            "mlflow",
            "msda_arena.track.backends:log_mlflow",
            prepare="msda_arena.track.backends:prepare_mlflow",
        ),
        Tracker(
            "tensorboard", "tensorboard", "tensorboard", "msda_arena.track.backends:log_tensorboard"
        ),
        Tracker("wandb", "wandb", "wandb", "msda_arena.track.backends:log_wandb"),
    )
}

#: Trackers that failed in this process during the current run: not tried again.
_FAILED: set[str] = set()


def _warn(message: str) -> None:
    print(f"arena: {message}", file=sys.stderr, flush=True)


def check_trackers(names: Iterable[str]) -> tuple[str, ...]:
    """The trackers of ``names`` (each once, in order) whose package is installed; a
    one-line warning for each whose package is missing (it is dropped: the run goes on).

    Raises:
        UsageError: an unknown tracker name.
    """
    out = []
    for name in dict.fromkeys(names):
        if name not in TRACKERS:
            raise UsageError(f"--tracker {name!r}: choose from {', '.join(TRACKERS)}")
        tracker = TRACKERS[name]
        if importlib.util.find_spec(tracker.package) is None:
            _warn(
                f"--tracker {name}: {tracker.package} is not installed; cells are not logged "
                f'to it (pip install "msda-arena[{tracker.extra}]")'
            )
            continue
        out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class CellRun:
    """What a tracker logs of one cell.

    Attributes:
        name: the run's name, the cell's key.
        experiment: the experiment or project (:data:`EXPERIMENT`).
        params: the cell, the recipe (``recipe.<field>``) and the provenance, as text.
        metrics: the record's numeric measurements (``final/<column>``; NaN left out).
        curve: per series of the learning curve, (epoch, value) pairs (NaN left out).
        tags: ``status``, and ``error`` for a failed cell.
    """

    name: str
    experiment: str
    params: dict[str, str]
    metrics: dict[str, float]
    curve: dict[str, list[tuple[int, float]]]
    tags: dict[str, str]

    @property
    def ok(self) -> bool:
        """Whether the cell trained (status ``ok``)."""
        return self.tags["status"] == "ok"


def cell_run(record: ResultRecord, recipe: Any = None) -> CellRun:
    """The :class:`CellRun` of ``record``, trained with ``recipe`` (a
    :class:`~msda_arena.grid.config.Recipe`, or None)."""
    row = record.to_dict()
    skip = {"status", "error", "curve"}
    params = {c: str(row[c]) for c in (*IDENTITY_COLUMNS, *PROVENANCE_COLUMNS) if c not in skip}
    if recipe is not None:
        fields = dataclasses.asdict(recipe)
        params["recipe"] = fields.pop("name")
        params.update({f"recipe.{k}": str(v) for k, v in fields.items()})
    metrics = {}
    for column in MEASUREMENT_COLUMNS:
        value = row[column]
        if isinstance(value, str):
            if column != "curve":
                params[column] = value
        elif not math.isnan(value):
            metrics[f"final/{column}"] = float(value)
    series = decode_curve(record.curve)
    epochs = [int(e) for e in series.pop("epoch", [])]
    curve = {
        name: [(e, v) for e, v in zip(epochs, values, strict=True) if not math.isnan(v)]
        for name, values in series.items()
    }
    tags = {"status": record.status}
    if record.error:
        tags["error"] = record.error
    return CellRun(record.key, EXPERIMENT, params, metrics, curve, tags)


def _function(target: str) -> Callable[..., None]:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def _failed(name: str, what: str, exc: BaseException) -> None:
    """Warn in one line that tracker ``name`` failed ``what``; not used again here."""
    _FAILED.add(name)
    text = " ".join(str(exc).split())[:300] or type(exc).__name__
    _warn(
        f"tracker {name} failed {what} ({type(exc).__name__}: {text}); not used again in "
        "this process, the results are stored"
    )


def prepare_trackers(trackers: Iterable[str]) -> None:
    """Before a run's grid: forget which trackers failed in an earlier run of this
    process, then run each tracker's ``prepare`` once. Never raises (but for Ctrl-C): a
    tracker that fails warns in one line (worker processes still try it)."""
    _FAILED.clear()
    for name in trackers:
        if TRACKERS[name].prepare and name not in _FAILED:
            try:
                _function(TRACKERS[name].prepare)(EXPERIMENT)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # never fail the run: SystemExit included
                _failed(name, "to start", exc)


def log_cell(trackers: Iterable[str], record: ResultRecord, recipe: Any = None) -> None:
    """Log ``record`` to each of ``trackers``; never raises (but for the user's Ctrl-C):
    a tracker that fails warns in one line and is not used again in this process."""
    names = [n for n in trackers if n not in _FAILED]
    if not names:
        return
    run = cell_run(record, recipe)
    for name in names:
        try:
            _function(TRACKERS[name].log)(run)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a tracker must never fail a cell: SystemExit included
            _failed(name, f"logging {record.key}", exc)


def tracker_help() -> str:
    """The tracker names for ``--tracker``'s help."""
    return ", ".join(TRACKERS)
