"""``arena run --executor slurm``: one Slurm job array per run, through submitit.

The driver (``arena run`` on a login node) plans the run like every executor (resume,
preflight, counting: :class:`msda_arena.execute.base.Executor`), then submits **one job
array** with one element per cell still to run (``submitit``'s ``map_array``). Each
element claims, trains and stores its cell itself
(:func:`msda_arena.execute.worker.run_cell_here`), so a driver that exits (no ``--wait``)
or dies loses nothing. The store must be on a filesystem the nodes share (its path is
made absolute), and the nodes must run the same Python environment (with the plugins).

Job files
---------
submitit's job files and the elements' logs go to ``<results>/.slurm/<UTC time>/`` (a
dot-folder, which the store's scanners ignore): ``<job>_0_log.out`` / ``.err`` per
element, and ``outcomes/<cell key>.json``, which an element writes when its cell is
done (the outcome and the record, so the driver never unpickles a job file).

Following the jobs
------------------
Without ``--wait`` the driver submits, and :attr:`RunSummary.submitted` tells the user
the job array's id and where the logs are; ``arena run ... --dry-run`` and ``arena
report`` show what has landed so far. With ``--wait`` it polls: an element's outcome
file (every second), the jobs' states (``sacct``, every :data:`SACCT_EVERY_S`); each cell
is reported as its element finishes. A job that ends without storing its cell (killed
for memory, node failure, cancelled, an error outside the cell's code) becomes the
cell's failed record naming the cause and the log, written under the cell's claim. A
dead job's claim is taken over at once on its own host, else once its heartbeat is
older than ``ARENA_CLAIM_TTL`` (default 600 s): until then the driver waits for it.
Ctrl-C while waiting cancels the job array and stops.

Preemption and time limits
--------------------------
Slurm signals an element (``USR2``; ``SUBMITIT_PREEMPT_SIGNAL``) when it is preempted
(where the cluster sets ``SlurmctldParameters=preempt_send_user_signal``) and
``slurm_signal_delay_s`` (90 s) before its time limit. The element (:class:`CellJob`)
turns that signal into the same interrupt as the user's Ctrl-C: training stops,
nothing is written for the cell, and :func:`~msda_arena.execute.worker.run_cell` releases the
cell's claim as it unwinds. Only then does submitit's handler run: for a preemption it
calls :meth:`CellJob.checkpoint` (the same cell, from scratch: a cell has no mid-training
checkpoint) and requeues the element, which therefore never finds its predecessor's
claim in its way. A signal near the time limit is not requeued (the cell would only
time out again): the element stores the cell's failed record saying to raise
``--slurm-time``. An element killed without a signal (``SIGKILL``) leaves its claim
behind; a requeued or later element then waits for it to go stale (the claim TTL).

Without Slurm
-------------
``ARENA_SLURM_CLUSTER=local`` (a testing and debugging aid) runs the same code path on
submitit's local executor: each element is a real subprocess on this machine (all at
once: no array throttle; ``--slurm-partition`` and ``--slurm-extra`` are ignored; the
job ids are process ids). Otherwise ``sbatch`` must be on ``PATH`` when there is
something to submit (``--dry-run`` works anywhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from msda_arena.api.errors import ArenaError, UsageError
from msda_arena.api.record import RecordError, ResultRecord
from msda_arena.execute.base import Executor, Reporter, RunSummary
from msda_arena.execute.worker import (
    CellOutcome,
    RunSettings,
    failed_record,
    run_cell_here,
    store_failure,
    stored_record,
    stored_status,
)
from msda_arena.grid.cells import GridCell
from msda_arena.store import claims
from msda_arena.store.provenance import utc_now
from msda_arena.train import interrupts

try:  # the module imports without submitit; SlurmExecutor() then says how to install it
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - exercised only where submitit is missing
    _Checkpointable = object  # type: ignore[assignment,misc]

__all__ = ["CLUSTER_ENV", "CellJob", "SlurmExecutor"]

#: Environment variable: ``local`` runs the job array as local processes (testing aid).
CLUSTER_ENV = "ARENA_SLURM_CLUSTER"
#: Seconds between two looks at the outcome files while waiting (``--wait``).
POLL_S = 1.0
#: Seconds between two forced ``sacct`` refreshes of the jobs' states while waiting.
SACCT_EVERY_S = 30.0
#: Seconds a finished Slurm job may take to show its outcome file (NFS attribute caches).
OUTCOME_GRACE_S = 15.0
#: Seconds between two looks at a cell whose claim another run holds (in an element).
ELEMENT_WAIT_S = 5.0
#: A preemption signal this close to the time limit (seconds) is the time limit's.
TIME_LIMIT_WINDOW_S = 240.0

_INSTALL = "--executor slurm needs submitit: pip install 'msda-arena[slurm]'"
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:.*)?$")


def _cluster() -> str:
    """``slurm`` (default) or ``local`` (``$ARENA_SLURM_CLUSTER``)."""
    value = os.environ.get(CLUSTER_ENV, "").strip().lower() or "slurm"
    if value not in ("slurm", "local"):
        raise UsageError(
            f"{CLUSTER_ENV}={value[:40]!r}: use 'local' (jobs as local processes, for "
            "testing) or leave it unset (Slurm)"
        )
    return value


class SlurmExecutor(Executor):
    """Cells as the elements of one Slurm job array (see the module docstring).

    Raises :class:`~msda_arena.api.errors.UsageError` (one line) when submitit is not
    installed; :meth:`prepare` when there is no Slurm here.
    """

    def settings_changed(self) -> None:
        """Elements get the driver's current settings (``force`` dropped while waiting)."""
        self.cell_settings = replace(self.cell_settings, force=self.settings.force)

    name = "slurm"

    def __init__(self, settings: RunSettings, skip_check: bool = False, **options: Any) -> None:
        # the jobs need the absolute path
        settings = replace(settings, results=Path(settings.results).resolve())
        super().__init__(settings, skip_check, **options)
        try:
            import submitit  # noqa: F401
        except ImportError:
            raise UsageError(_INSTALL) from None
        self.cluster = _cluster()
        #: What each element trains on: its GPU, or the CPU with --slurm-gpus 0.
        device = "cuda" if self.options.slurm_gpus > 0 else "cpu"
        self.cell_settings = replace(settings, device=device)
        self._submitted = ""

    def prepare(self, reporter: Reporter) -> None:
        """Before anything is submitted or written: Slurm must be here (``sbatch``),
        unless ``ARENA_SLURM_CLUSTER=local``; then the store checks. Checked here, not
        at construction, so that ``--dry-run`` (and a run with nothing left to train)
        works where there is no Slurm, e.g. on a laptop that mounts the store."""
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise UsageError(
                "--executor slurm: no Slurm here (sbatch is not on PATH); run arena on a "
                f"Slurm login node ({CLUSTER_ENV}=local runs the jobs as local processes, "
                "for testing)"
            )
        super().prepare(reporter)

    def run(self, cells: list[GridCell], reporter: Reporter | None = None) -> RunSummary:
        """Plan, check and submit; with ``--wait`` also follow the jobs to the end
        (:meth:`Executor.run`). Without it, return once the array is submitted, with
        :attr:`RunSummary.submitted` saying what to tell the user."""
        self._submitted = ""
        summary = super().run(cells, reporter)
        if self._submitted:
            summary.submitted = self._submitted
            if summary.failed:
                summary.submitted += (
                    f"; {len(summary.failed)} cell(s) failed their checks and were not "
                    "submitted (stored as failed records)"
                )
        return summary

    def execute(self, cells: list[GridCell], reporter: Reporter) -> Iterator[CellOutcome]:
        """Submit one job array for ``cells``; with ``--wait`` yield each outcome as its
        element finishes, else nothing."""
        array = self._submit(cells)
        if not self.options.wait:
            squeue = f"squeue -j {array.array_id}, " if array.cluster == "slurm" else ""
            self._submitted = (
                f"{array.describe()}; follow with: {squeue}the same arena run command plus "
                f"--dry-run, or arena report --results {self.results}"
            )
            return
        reporter.note(array.describe())
        yield from self._follow(array, reporter)

    def _submit(self, cells: list[GridCell]) -> _Array:
        import submitit

        folder = _new_folder(self.results / ".slurm")
        outcomes = folder / "outcomes"
        outcomes.mkdir()
        options = self.options
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster)
            params: dict[str, Any] = {
                "name": "arena",
                "timeout_min": options.slurm_time,
                "slurm_array_parallelism": options.slurm_max_parallel or len(cells),
            }
            if options.slurm_gpus > 0:
                params["gpus_per_node"] = options.slurm_gpus
            if options.slurm_partition:
                params["slurm_partition"] = options.slurm_partition
            if options.slurm_extra:
                params["slurm_additional_parameters"] = dict(options.slurm_extra)
            executor.update_parameters(**params)
            submitted_at = utc_now()
            n = len(cells)
            jobs = executor.map_array(
                CellJob(),
                cells,
                [self.cell_settings] * n,
                [str(outcomes)] * n,
                [options.slurm_time] * n,
            )
        except Exception as exc:
            text = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise ArenaError(f"could not submit the Slurm job array: {text}") from None
        return _Array(
            self.cluster, folder, outcomes, list(zip(jobs, cells, strict=True)), submitted_at
        )

    def _follow(self, array: _Array, reporter: Reporter) -> Iterator[CellOutcome]:
        """Yield each cell's outcome as its element finishes (see the module docstring)."""
        pending = list(array.jobs)
        ended: dict[str, float] = {}  # job id -> when it was first seen ended, no outcome
        dead: list[tuple[GridCell, str]] = []  # cells whose failure waits for their claim
        announced = False
        last_sacct = time.monotonic() - SACCT_EVERY_S + 5.0  # a first look after 5 s
        try:
            while pending or dead:
                if array.cluster == "slurm" and time.monotonic() - last_sacct > SACCT_EVERY_S:
                    array.refresh()
                    last_sacct = time.monotonic()
                landed = array.landed()
                finished: list[CellOutcome] = []
                running = 0
                for job, cell in list(pending):
                    outcome = _read_outcome(array.outcomes, cell) if cell.key in landed else None
                    if outcome is not None:
                        pending.remove((job, cell))
                        finished.append(outcome)
                        continue
                    state = array.state(job)
                    running += state == "RUNNING"
                    if not array.done(job):
                        continue
                    first = ended.setdefault(job.job_id, time.monotonic())
                    if time.monotonic() - first < array.grace_s:
                        continue  # its outcome file may not be visible here yet
                    pending.remove((job, cell))
                    dead.append((cell, array.cause(job, state)))
                for cell, cause in list(dead):
                    outcome = _store_failure_claimed(cell, self.settings, cause, array.submitted_at)
                    if outcome is not None:
                        dead.remove((cell, cause))
                        finished.append(outcome)
                reporter.running(running)
                yield from finished
                if dead and not pending and not announced:
                    reporter.note(
                        f"{len(dead)} cell(s) whose job ended without storing them are still "
                        "claimed by that job; their failed records are stored once the claims "
                        "go stale (ARENA_CLAIM_TTL, default 600 s)"
                    )
                    announced = True
                if pending or dead:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            array.cancel()
            raise
        except GeneratorExit:
            if interrupts.requested():  # Ctrl-C while the caller held an outcome
                array.cancel()
            raise


@dataclass
class _Array:
    """One submitted job array: its jobs with their cells, and how to ask about them."""

    cluster: str
    folder: Path
    outcomes: Path
    jobs: list[tuple[Any, GridCell]]
    submitted_at: str

    @property
    def grace_s(self) -> float:
        return OUTCOME_GRACE_S if self.cluster == "slurm" else 0.0

    @property
    def array_id(self) -> str:
        return str(self.jobs[0][0].job_id).split("_")[0]

    def describe(self) -> str:
        """``submitted N cell(s) as Slurm job array 123456 (logs in FOLDER)``."""
        n = len(self.jobs)
        if self.cluster == "slurm":
            return (
                f"submitted {n} cell(s) as Slurm job array {self.array_id} (logs in {self.folder})"
            )
        ids = [str(job.job_id) for job, _ in self.jobs]
        shown = ", ".join(ids[:8]) + (", ..." if len(ids) > 8 else "")
        where = f"{CLUSTER_ENV}=local; logs in {self.folder}"
        return f"submitted {n} cell(s) as local jobs {shown} ({where})"

    def landed(self) -> set[str]:
        """Keys of the cells whose outcome file exists (one directory read)."""
        try:
            names = os.listdir(self.outcomes)
        except OSError:
            return set()
        return {n[: -len(".json")] for n in names if n.endswith(".json")}

    def refresh(self) -> None:
        """Ask Slurm (``sacct``) for every job's state now."""
        with contextlib.suppress(Exception):  # sacct hiccups: the next refresh tries again
            self.jobs[0][0].get_info(mode="force")

    def state(self, job: Any) -> str:
        """The job's state as last seen, upper case, first word (``RUNNING``,
        ``PENDING``, ``OUT_OF_MEMORY``, ``CANCELLED``...)."""
        try:
            info = job.get_info(mode="cache") if self.cluster == "slurm" else job.get_info()
        except Exception:
            return "UNKNOWN"
        state = info.get("State") or info.get("jobState") or "UNKNOWN"
        return (state.split() or ["UNKNOWN"])[0].upper()

    def done(self, job: Any) -> bool:
        if self.cluster == "slurm":
            return bool(job.watcher.is_done(job.job_id, mode="cache"))
        return bool(job.done())

    def cause(self, job: Any, state: str) -> str:
        """One line: how the job ended without storing its cell, and its log."""
        what = "Slurm job" if self.cluster == "slurm" else "local job"
        how = f"ended ({state})" if state not in ("UNKNOWN", "FINISHED") else "ended"
        error = _last_error(job.paths.stderr)
        log = job.paths.stderr
        text = f"{what} {job.job_id} {how} without storing its cell"
        if error:
            text += f": {error}"
        if not log.exists():
            return (
                f"{text}; it left no log at {log} (is the store on a filesystem the nodes share?)"
            )
        return f"{text}; log: {log}"

    def cancel(self) -> None:
        """Cancel every element that has not finished (Ctrl-C while waiting)."""
        if self.cluster == "slurm":
            job = self.jobs[0][0]
            with contextlib.suppress(Exception):  # the whole array: scancel <array id>
                type(job)(folder=self.folder, job_id=self.array_id).cancel(check=False)
            return
        for job, _ in self.jobs:
            with contextlib.suppress(Exception):
                job.cancel(check=False)


def _new_folder(parent: Path) -> Path:
    """A new ``parent/<UTC time>`` folder (``-2``, ``-3``... when taken)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise ArenaError(f"could not create a new folder for the job files in {parent}")


def _last_error(path: Path) -> str:
    """The last exception line (``SomeError: message``) in a job's error log, or ''."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 64 * 1024))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        line = line.strip()
        if _EXCEPTION_LINE.match(line):
            return line[:500]
    return ""


def _read_outcome(folder: Path, cell: GridCell) -> CellOutcome | None:
    """The outcome an element wrote for ``cell``, or None (missing or unreadable)."""
    try:
        data = json.loads((folder / f"{cell.key}.json").read_text())
        if data["key"] != cell.key or data["action"] not in ("trained", "skipped"):
            return None
        record = ResultRecord.from_dict(data["record"]) if data["record"] else None
        if data["action"] == "trained" and record is None:
            return None
        return CellOutcome(
            cell, data["action"], record, detail=str(data["detail"]), kept_ok=bool(data["kept_ok"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_outcome(folder: Path, outcome: CellOutcome) -> None:
    """Write ``outcome`` to ``folder/<key>.json`` atomically."""
    data = {
        "key": outcome.cell.key,
        "action": outcome.action,
        "detail": outcome.detail,
        "kept_ok": outcome.kept_ok,
        "record": outcome.record.to_dict() if outcome.record is not None else None,
    }
    path = folder / f"{outcome.cell.key}.json"
    tmp = folder / f".{outcome.cell.key}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _store_failure_claimed(
    cell: GridCell, settings: RunSettings, error: str, since: str | None
) -> CellOutcome | None:
    """Store ``cell``'s failed record with ``error`` under the cell's claim; None while
    someone else holds the claim (a dead job's claim until it goes stale).

    An ``ok`` result stored since ``since`` (UTC ISO; None: never) is the cell's outcome
    instead: its job stored it before it died, or another run did.
    """
    claim = claims.try_claim(settings.results, cell.dataset, cell.key, settings.claim_ttl_s)
    if claim is None:
        return None
    with claim:
        stored = stored_record(settings.results, cell)
        if (
            since is not None
            and stored is not None
            and stored_status(settings.results, cell) == "ok"
            and str(stored.get("finished_at", "")) >= since
        ):
            try:
                return CellOutcome(cell, "trained", ResultRecord.from_dict(stored))
            except RecordError:
                pass
        record = failed_record(cell, settings, error)
        kept = not store_failure(settings, record)
    if kept:
        record = record.replace(error=record.error + " (the stored ok result was kept)")
    return CellOutcome(cell, "trained", record, kept_ok=kept)


class CellJob(_Checkpointable):
    """What one array element runs: claim, train and store one cell
    (:func:`~msda_arena.execute.worker.run_cell_here`), then write its outcome file.

    A ``submitit.helpers.Checkpointable``: preemption is handled as the module docstring
    says (claim released first, then :meth:`checkpoint` requeues the same cell).
    """

    def __init__(self) -> None:
        self._signalled = False
        self._started = time.monotonic()
        self._started_at = ""

    def __call__(
        self, cell: GridCell, settings: RunSettings, outcomes: str, time_limit_min: int
    ) -> str:

        self._signalled = False
        self._started = time.monotonic()
        self._started_at = utc_now()
        _say(
            f"cell {cell.label()} ({cell.key}) on {socket.gethostname()}, pid {os.getpid()}, "
            f"device {settings.device}"
        )
        preempt = _preempt_signal()
        submitit_handler = signal.getsignal(preempt)
        sigint = signal.getsignal(signal.SIGINT)
        if not callable(sigint):  # an ignored SIGINT would hide the stop below
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(preempt, self._on_signal)
        try:
            with interrupts.watching():
                outcome = self._run(cell, settings)
        except KeyboardInterrupt:
            if not self._signalled:
                raise  # cancelled (scancel, Ctrl-C): nothing stored, the claim released
            signal.signal(preempt, submitit_handler)
            if self._timed_out(time_limit_min):
                outcome = self._time_out(cell, settings, time_limit_min)
                if outcome is None:
                    raise
            else:
                _say("preempted: training stopped and the cell's claim released; requeueing")
                if callable(submitit_handler):  # checkpoint() and requeue, then exit
                    submitit_handler(preempt, None)
                raise
        finally:
            signal.signal(preempt, submitit_handler)
            signal.signal(signal.SIGINT, sigint if sigint is not None else signal.SIG_DFL)
        _write_outcome(Path(outcomes), outcome)
        record = outcome.record
        status = record.status if record is not None else outcome.action
        error = record.error if record is not None else ""
        _say(f"done: {status}" + (f": {error}" if error else ""))
        return status

    def checkpoint(
        self, cell: GridCell, settings: RunSettings, outcomes: str, time_limit_min: int
    ) -> Any:
        """Requeue the same cell from scratch (submitit calls this on preemption, after
        :meth:`__call__` has stopped training and released the cell's claim)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(type(self)(), cell, settings, outcomes, time_limit_min)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """Preemption or time-limit signal: stop the cell the way Ctrl-C does (the
        claim is released as ``run_cell`` unwinds); :meth:`__call__` does the rest."""
        self._signalled = True
        _say(f"received {signal.Signals(signum).name}: stopping the cell")
        handler = signal.getsignal(signal.SIGINT)  # interrupts.watching()'s handler
        if callable(handler):
            handler(signal.SIGINT, frame)
        raise KeyboardInterrupt

    def _timed_out(self, time_limit_min: int) -> bool:
        """Whether the signal is the time limit's: Slurm sends it 90 s (up to 150 s)
        before the limit, so one in the last :data:`TIME_LIMIT_WINDOW_S` of the limit
        (or after half of a short limit) is; an earlier one is a preemption."""
        limit = time_limit_min * 60.0
        threshold = max(limit - TIME_LIMIT_WINDOW_S, 0.5 * limit)
        return time.monotonic() - self._started >= threshold

    def _time_out(
        self, cell: GridCell, settings: RunSettings, time_limit_min: int
    ) -> CellOutcome | None:
        error = (
            f"the cell did not finish within its Slurm time limit (--slurm-time "
            f"{time_limit_min} min); rerun with a larger --slurm-time"
        )
        _say(error)
        return _store_failure_claimed(cell, settings, error, since=self._started_at)

    def _run(self, cell: GridCell, settings: RunSettings) -> CellOutcome:

        announced = False
        while True:
            outcome = run_cell_here(cell, settings, on_epoch=_say_epoch)
            if outcome.action != "busy":
                return outcome
            if not announced:  # e.g. its predecessor's claim, after a hard kill
                _say(f"waiting: the cell is {outcome.detail}")
                announced = True
            time.sleep(ELEMENT_WAIT_S)


def _preempt_signal() -> signal.Signals:
    """The signal submitit handles as preemption or time limit (USR2 by default)."""
    try:
        from submitit.core.job_environment import JobEnvironment

        return JobEnvironment._usr_sig()
    except Exception:
        return signal.SIGUSR2


def _say(message: str) -> None:
    print(f"arena: {message}", file=sys.stdout, flush=True)


def _say_epoch(cell: GridCell, event: Any) -> None:
    _say(
        f"epoch {event.epoch}/{event.epochs}: train loss {event.train_loss:.4f} "
        f"({event.seconds:.1f} s)"
    )
