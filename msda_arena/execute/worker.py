"""One grid cell, wherever it runs: claim it, train it, store its record.

Every executor (local, and the cluster ones) ends in :func:`run_cell`, so a cell means
the same everywhere:

* **Done means stored.** A cell whose result file holds an ``ok`` record with the
  current method code is done (:func:`stored_status`); ``stale`` (the method's code or
  version changed since), ``failed`` or missing cells run.
* **Claimed before trained.** A cell is trained only under its claim
  (:mod:`msda_arena.store.claims`), and its stored status is read again under the claim, so
  two runs on one store never train one cell twice; a crashed run's claim is taken
  over.
* **Trackers log what is stored.** After a cell's record is written, each tracker of
  ``RunSettings.trackers`` logs it (:func:`msda_arena.track.log_cell`: never raises),
  wherever the cell ran.
* **Failures are records.** Anything the cell's own code raises (a plugin's exception,
  ``sys.exit`` or ``KeyboardInterrupt`` from plugin code, a broken mask, a diverged
  loss) becomes a ``failed`` record naming the cause; a failure never replaces a stored
  ``ok`` result. Only the user's Ctrl-C (:mod:`msda_arena.train.interrupts`) and a store that
  cannot be written (:class:`~msda_arena.api.errors.StoreError`) stop the grid.

Nothing here knows which executor called it.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msda_arena.api.errors import StoreError
from msda_arena.api.record import CELL_IDENTITY, ResultRecord
from msda_arena.data import load_dataset
from msda_arena.grid.cells import GridCell
from msda_arena.grid.config import ArenaConfig, Profile, stable_hash
from msda_arena.methods.registry import get_method, loaded_packages, method_info
from msda_arena.store import claims
from msda_arena.store.provenance import environment, utc_now
from msda_arena.store.results import cell_path, read_result, write_checkpoint, write_result
from msda_arena.theory.fingerprint import (
    LOCALITY_SAMPLES,
    LOCALITY_SEED,
    LOCALITY_SIZE,
    fingerprint,
)
from msda_arena.track import log_cell
from msda_arena.train import interrupts
from msda_arena.train.loop import EpochEvent, TrainResult, train_cell

__all__ = [
    "CellOutcome",
    "RunSettings",
    "TimeLimit",
    "describe_exception",
    "fail_cell",
    "failed_record",
    "load_data",
    "method_locality",
    "provenance",
    "run_cell",
    "run_cell_here",
    "store_failure",
    "stored_record",
    "stored_status",
    "time_limit",
    "timeout_error",
]


@dataclass(frozen=True)
class RunSettings:
    """What every cell of one run shares (picklable, so it travels to workers)."""

    config: ArenaConfig
    profile: Profile
    results: Path
    device: str = "cpu"
    data_root: str | None = None  # None: the profile's
    save_checkpoints: bool = False
    force: bool = False
    claim_ttl_s: float | None = None
    #: Seconds a cell may train (``arena run --cell-timeout``); None: no limit.
    cell_timeout_s: float | None = None
    #: Trackers each stored cell is logged to (``arena run --tracker``; :mod:`msda_arena.track`).
    trackers: tuple[str, ...] = ()

    @property
    def recipe(self) -> Any:
        """The profile's :class:`~msda_arena.grid.config.Recipe`."""
        return self.config.recipes[self.profile.recipe]


@dataclass(frozen=True)
class CellOutcome:
    """What :func:`run_cell` did with a cell.

    ``action``: ``"trained"`` (``record`` holds the ok or failed record, stored unless
    ``kept_ok``), ``"skipped"`` (an ok result was stored meanwhile) or ``"busy"``
    (another run holds the cell's claim; ``detail`` says who).
    """

    cell: GridCell
    action: str
    record: ResultRecord | None = None
    detail: str = ""
    kept_ok: bool = False


def stored_record(root: str | Path, cell: GridCell) -> dict[str, Any] | None:
    """The valid record stored for ``cell``, or None (missing, damaged, old layout)."""
    record = read_result(cell_path(root, cell.dataset, cell.key))
    if record is None or any(
        record[name] != getattr(cell, name) for name in ("key", "profile", *CELL_IDENTITY)
    ):
        return None
    return record


def stored_status(root: str | Path, cell: GridCell) -> str | None:
    """``"ok"``, ``"stale"`` (ok, but the method's code or version changed since),
    ``"failed"``, or None when nothing valid is stored."""
    record = stored_record(root, cell)
    if record is None:
        return None
    if record["status"] == "ok" and cell.method_code and record["method_code"] != cell.method_code:
        return "stale"
    return record["status"]


def provenance(cell: GridCell, settings: RunSettings, started_at: str) -> dict[str, Any]:
    """The record columns that say where a result came from: the method's package,
    version and code, every loaded plugin package, versions, device, host, config."""
    info: dict[str, Any] = {
        "method_code": cell.method_code,
        "config_hash": settings.config.config_hash(settings.profile),
        "host": socket.gethostname(),
        "started_at": started_at,
        **environment(),
    }
    with contextlib.suppress(Exception):  # an unknown method still gets a failed record
        method = method_info(cell.method)
        info.update(
            method_name=method.name,
            method_package=method.package,
            method_version=method.version,
            method_code=cell.method_code or method.code,
            plugins=loaded_packages(),
        )
    return info


@functools.cache
def method_locality(spec: str) -> float:
    """The method's locality index (:mod:`msda_arena.theory.fingerprint`, at its
    ``LOCALITY_*`` settings on the CPU): the same number on every worker, stored with
    each result so the report shows it without torch. NaN when it cannot be measured
    (``vanilla`` never mixes; a method that fails is failed by its own checks)."""
    import math

    try:
        method = get_method(spec)
        fp = fingerprint(method, LOCALITY_SIZE, samples=LOCALITY_SAMPLES, seed=LOCALITY_SEED)
        value = float(fp.locality)
    except BaseException as exc:
        if interrupts.from_user(exc):
            raise
        return math.nan
    return value if math.isfinite(value) and value <= 1.0 else math.nan


def failed_record(
    cell: GridCell, settings: RunSettings, error: str, started_at: str | None = None
) -> ResultRecord:
    """The failed record of ``cell`` with ``error``, stamped now."""
    started = started_at or utc_now()
    info = provenance(cell, settings, started)
    info.update(finished_at=utc_now(), device_name=info.get("device_name") or settings.device)
    return ResultRecord.failed(cell, error, info, epochs=settings.recipe.epochs)


def store_failure(settings: RunSettings, record: ResultRecord) -> bool:
    """Store a failed ``record`` unless a current ok result is stored for its cell (a
    failure never costs a finished result); return whether it was stored.

    A *stale* ok result (trained by other code than ``record.method_code``) is replaced:
    the failure is what the current code does. Call it while holding the cell's claim.
    """
    current = read_result(cell_path(settings.results, record.dataset, record.key))
    if (
        current is not None
        and current["status"] == "ok"
        and (not record.method_code or current["method_code"] == record.method_code)
    ):
        return False
    write_result(settings.results, record)
    return True


def fail_cell(cell: GridCell, settings: RunSettings, error: str) -> CellOutcome:
    """Store ``cell``'s failed record with ``error`` without training it (a method that
    failed its checks, a worker that died), under the cell's claim like every write; a
    stored current ok result is kept. ``busy`` when another run holds the claim."""
    claim = claims.try_claim(settings.results, cell.dataset, cell.key, settings.claim_ttl_s)
    if claim is None:
        return CellOutcome(cell, "busy", detail="being trained by another run")
    with claim:
        record = failed_record(cell, settings, error)
        stored = store_failure(settings, record)
    if not stored:
        record = record.replace(error=record.error + " (the stored ok result was kept)")
    return _logged(CellOutcome(cell, "trained", record, kept_ok=not stored), settings)


def _logged(outcome: CellOutcome, settings: RunSettings) -> CellOutcome:
    """``outcome``, its record logged to the run's trackers first (after it is stored,
    outside the cell's claim and time limit)."""
    if settings.trackers and outcome.record is not None:
        log_cell(settings.trackers, outcome.record, settings.recipe)
    return outcome


class TimeLimit(BaseException):
    """Raised in the main thread by :func:`time_limit` (a ``BaseException``, so method
    code that catches ``Exception`` does not swallow it)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.expired = False


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str = "cell") -> Iterator[TimeLimit]:
    """Raise :class:`TimeLimit` in the main thread once ``seconds`` pass (it stops a
    sleep or a Python loop); no limit for None or 0, or off the main thread (the pool
    and Ray also kill a worker a little later). ``expired`` on the yielded object says
    whether it struck, whatever the code under it made of the exception."""
    limit = TimeLimit(f"exceeded the {what} time limit of {seconds:g} s" if seconds else "")
    main = threading.current_thread() is threading.main_thread()
    if not seconds or not main or not hasattr(signal, "setitimer"):
        yield limit
        return

    def expire(signum: int, frame: Any) -> None:
        limit.expired = True
        raise limit

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield limit
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def timeout_error(seconds: float, how: str = "") -> str:
    """The failed record's error for a cell past its time limit (``how`` it was stopped)."""
    return f"exceeded the cell time limit of {seconds:g} s{how}; raise it with --cell-timeout"


def describe_exception(exc: BaseException) -> str:
    """One line for an exception from cell or plugin code, ``sys.exit`` included."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: method code called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "KeyboardInterrupt: raised by method code, not by Ctrl-C"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_cell(
    cell: GridCell,
    settings: RunSettings,
    data: Any,
    on_start: Callable[[GridCell, int], None] | None = None,
    on_epoch: Callable[[GridCell, EpochEvent], None] | None = None,
) -> CellOutcome:
    """Claim, train and store one cell, then log it to the run's trackers (see the
    module docstring).

    Raises:
        KeyboardInterrupt: the user pressed Ctrl-C; nothing is written for this cell.
        StoreError: its record cannot be written (one line naming the path and cause).
    """
    outcome = _run_claimed(cell, settings, data, on_start, on_epoch)
    return _logged(outcome, settings) if outcome.action == "trained" else outcome


def _run_claimed(
    cell: GridCell,
    settings: RunSettings,
    data: Any,
    on_start: Callable[[GridCell, int], None] | None,
    on_epoch: Callable[[GridCell, EpochEvent], None] | None,
) -> CellOutcome:
    try:
        claim = claims.try_claim(settings.results, cell.dataset, cell.key, settings.claim_ttl_s)
    except OSError as exc:
        path = claims.claim_path(settings.results, cell.dataset, cell.key)
        raise StoreError(
            f"could not claim {path}: {exc.strerror or exc}; the store must be a writable "
            "folder on a file system with hard links (local disk or NFS)"
        ) from None
    if claim is None:
        owner = claims.read_claim(claims.claim_path(settings.results, cell.dataset, cell.key))
        who = f"pid {owner.pid} on {owner.host}" if owner else "another run"
        return CellOutcome(cell, "busy", detail=f"being trained by {who}")
    with claim:
        status = stored_status(settings.results, cell)
        if status == "ok" and not settings.force:
            return CellOutcome(cell, "skipped", detail="stored by another run")
        started = utc_now()
        if on_start is not None:
            on_start(cell, settings.recipe.epochs)
        try:
            with time_limit(settings.cell_timeout_s) as limit:
                result = _train(cell, settings, data, get_method, on_epoch)
        except KeyboardInterrupt as exc:
            if interrupts.from_user(exc):
                raise
            error = describe_exception(exc)
        except StoreError:
            raise
        except BaseException as exc:
            expired = limit.expired and settings.cell_timeout_s
            error = timeout_error(expired) if expired else describe_exception(exc)
        else:
            info = provenance(cell, settings, started)
            # only after a cell trained: a failure is written without running method code
            info["locality"] = method_locality(cell.method)
            info["finished_at"] = utc_now()
            record = ResultRecord.finished(cell, result, info)
            if claim.lost():
                return CellOutcome(cell, "busy", detail="claim taken over by another run")
            write_result(settings.results, record)  # the result first: weights are extra
            if settings.save_checkpoints and result.state_dict is not None:
                write_checkpoint(
                    settings.results,
                    cell.dataset,
                    cell.key,
                    result.state_dict,
                    {"arch": cell.arch, "method": cell.method, "key": cell.key},
                )
            return CellOutcome(cell, "trained", record)
        record = failed_record(cell, settings, error, started)
        stored = store_failure(settings, record)
        if not stored:
            record = record.replace(error=record.error + " (the stored ok result was kept)")
        return CellOutcome(cell, "trained", record, kept_ok=not stored)


def _train(
    cell: GridCell,
    settings: RunSettings,
    data: Any,
    get_method: Callable[[str], Any],
    on_epoch: Callable[[GridCell, EpochEvent], None] | None,
) -> TrainResult:
    return train_cell(
        cell.arch,
        get_method(cell.method),
        data,
        settings.recipe,
        settings.config.scenarios[cell.scenario],
        cell.seed,
        device=settings.device,
        progress=None if on_epoch is None else (lambda event: on_epoch(cell, event)),
        keep_weights=settings.save_checkpoints,
    )


_DATA: dict[tuple[Any, ...], Any] = {}


def load_data(settings: RunSettings) -> Any:
    """The profile's dataset on ``settings.device``, loaded once per process (workers of
    every executor keep it between cells)."""
    profile = settings.profile
    root = settings.data_root or profile.data_root
    key = (profile.dataset, stable_hash(profile.dataset_options), root, settings.device)
    if key not in _DATA:
        _DATA.clear()  # one dataset per process at a time
        data = load_dataset(profile.dataset, root, **profile.dataset_options)
        _DATA[key] = data.to(settings.device) if hasattr(data, "to") else data
    return _DATA[key]


def run_cell_here(
    cell: GridCell,
    settings: RunSettings,
    on_start: Callable[[GridCell, int], None] | None = None,
    on_epoch: Callable[[GridCell, EpochEvent], None] | None = None,
) -> CellOutcome:
    """:func:`run_cell` with this process's copy of the dataset: what a remote worker
    (a pool process, a Ray task, a Slurm job) calls. A dataset that cannot be loaded
    here becomes the cell's failed record."""
    try:
        data = load_data(settings)
    except Exception as exc:
        record = failed_record(cell, settings, f"dataset not available on this worker: {exc}")
        stored = store_failure(settings, record)
        return _logged(CellOutcome(cell, "trained", record, kept_ok=not stored), settings)
    return run_cell(cell, settings, data, on_start=on_start, on_epoch=on_epoch)
