"""Run grid cells and store one result per cell: the executor interface and registry.

An executor decides where and when cells run; what running one means belongs to
:func:`msda_arena.execute.worker.run_cell` (claim, train, store), so every executor has the
same semantics. :class:`Executor` owns them: before the first cell it proves the store
is writable, removes temporary files left by dead writers, and runs the cheap
conformance rules (:func:`msda_arena.pluginkit.conformance.preflight`) on every method it is about
to train (a method that fails gets failed records naming the rule; ``skip_check``
turns this off); a cell whose current ``ok`` result is stored is skipped; a cell
another run is training is waited for, then taken over only if that run died, so
concurrent runs never train one cell twice and never lose one. A Ctrl-C stops at
once: the interrupted cells write nothing, every finished cell is kept.

Subclasses implement :meth:`Executor.execute`, where the cells run: local (this
process, or a pool of worker processes), Ray tasks or Slurm job array elements. A cell
or a method's check past its time limit (``cell_timeout_s``) is a failed record.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from msda_arena.api.errors import StoreError
from msda_arena.api.record import ResultRecord
from msda_arena.execute.options import EXECUTORS, check_options
from msda_arena.execute.worker import (
    CellOutcome,
    RunSettings,
    describe_exception,
    fail_cell,
    stored_status,
    time_limit,
)
from msda_arena.grid.cells import GridCell
from msda_arena.methods.registry import get_method
from msda_arena.pluginkit.conformance import preflight
from msda_arena.store.claims import clean_leftovers, clear_dead_claims
from msda_arena.store.results import check_writable, clean_temporaries
from msda_arena.track import prepare_trackers
from msda_arena.train import interrupts

__all__ = [
    "EXECUTORS",
    "Executor",
    "Reporter",
    "RunSummary",
    "create_executor",
    "preflight_methods",
]

#: Seconds between looks at a cell that another run is training.
WAIT_POLL_S = 1.0
#: Most seconds one method's conformance check may take (less with a lower cell limit).
CHECK_LIMIT_S = 120.0


class Reporter:
    """Receives progress; the CLI's display subclasses it. Default: silent."""

    def start(self, total: int, to_run: int) -> None:
        """The run starts: ``total`` cells, of which ``to_run`` will train."""

    def cell_start(self, cell: GridCell, epochs: int) -> None:
        """A cell starts training."""

    def epoch(self, cell: GridCell, event: Any) -> None:
        """A cell finished an epoch (:class:`msda_arena.train.loop.EpochEvent`)."""

    def cell_end(self, cell: GridCell, record: ResultRecord) -> None:
        """A cell finished (ok or failed) and its record is stored."""

    def skip(self, cell: GridCell, status: str) -> None:
        """A cell is skipped because its result is already stored."""

    def note(self, message: str) -> None:
        """Something the user should know that is not a cell's end (waiting, cleaning)."""

    def running(self, count: int) -> None:
        """How many cells are training right now (executors with several slots)."""


@dataclass
class RunSummary:
    """What a run did."""

    done: list[GridCell] = field(default_factory=list)
    skipped: list[GridCell] = field(default_factory=list)
    failed: list[tuple[GridCell, str]] = field(default_factory=list)
    #: Set when the cells were submitted and the run returned without waiting
    #: (``--executor slurm`` without ``--wait``): what to tell the user.
    submitted: str = ""


def preflight_methods(
    methods: list[str], device: str = "cpu", limit_s: float | None = None
) -> dict[str, str]:
    """The cheap conformance rules for each method spec; spec -> one-line failure for
    those that fail (``"conformance rule 'vectorised' failed: ..."``). Each method's
    check may take ``limit_s`` seconds, at most :data:`CHECK_LIMIT_S` (a method that
    hangs fails its check)."""
    failures: dict[str, str] = {}
    check_s = min(limit_s or CHECK_LIMIT_S, CHECK_LIMIT_S)
    for spec in dict.fromkeys(methods):
        try:
            with time_limit(check_s, "check") as limit:
                result = preflight(get_method(spec), device)
        except BaseException as exc:
            if interrupts.from_user(exc):
                raise
            result, failures[spec] = (
                None,
                (f"conformance check could not run: {describe_exception(exc)}"),
            )
        if limit.expired:
            failures[spec] = f"conformance check {limit} (--skip-check trains anyway)"
        if result is None:
            continue
        if spec not in failures:
            failures[spec] = (
                f"conformance rule '{result.rule}' failed before training: {result.detail} "
                "(see `arena check`; --skip-check trains anyway)"
            )
    return failures


class Executor:
    """Plans a run, checks what must be checked, counts outcomes; where cells run is
    :meth:`execute`'s business (see the module docstring).

    Every executor is built the same way, ``Executor(settings, skip_check, **options)``,
    and checks its own options (declared in :mod:`~msda_arena.execute.options`):
    one it does not take is a one-line :class:`UsageError`.
    """

    #: The ``--executor`` name: its options are :data:`~msda_arena.execute.options`'s.
    name = "local"

    def __init__(self, settings: RunSettings, skip_check: bool = False, **options: Any) -> None:
        self.settings = settings
        self.skip_check = skip_check
        self.options = check_options(self.name, options)

    @property
    def results(self) -> Path:
        """The result store."""
        return self.settings.results

    def pending(self, cells: list[GridCell]) -> list[tuple[GridCell, str | None]]:
        """Each cell with its stored status: ok, stale, failed or None (nothing)."""
        return [(c, stored_status(self.results, c)) for c in cells]

    def prepare(self, reporter: Reporter) -> None:
        """Before the first cell: prove the store writable, then :meth:`tidy` it.
        Subclasses add their own checks (the local data)."""
        check_writable(self.results)
        self.tidy(reporter)

    def tidy(self, reporter: Reporter) -> None:
        """Remove what dead runs left: temporary files and stale claims (a run killed
        after storing a cell but before releasing its claim). Called whether or not
        there is a cell to train; a store that cannot be tidied is left as it is."""
        try:
            removed = clean_temporaries(self.results) + clean_leftovers(self.results)
            claims = clear_dead_claims(self.results)
        except (OSError, StoreError):
            return
        if removed:
            reporter.note(f"removed {len(removed)} temporary file(s) left by dead runs")
        if claims:
            reporter.note(f"removed {len(claims)} claim(s) left by dead runs")

    def settings_changed(self) -> None:
        """``self.settings`` changed during the run (``force`` dropped for cells another
        run trained meanwhile): executors that keep derived settings refresh them."""

    def check_device(self) -> str:
        """Where the preflight checks run: the training device when this process can
        use it, else the CPU (a cluster driver without a GPU)."""
        device = self.settings.device
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return "cpu"
        return device

    def execute(self, cells: list[GridCell], reporter: Reporter) -> Iterator[CellOutcome]:
        """Run ``cells`` (claim, train, store each with :func:`~msda_arena.execute.worker.run_cell`)
        and yield each outcome as it finishes."""
        raise NotImplementedError

    def run(self, cells: list[GridCell], reporter: Reporter | None = None) -> RunSummary:
        """Train every cell that has no current ``ok`` result (all of them with ``force``)."""
        reporter = reporter or Reporter()
        summary = RunSummary()
        plan = self.pending(cells)
        to_run = [c for c, s in plan if self.settings.force or s != "ok"]
        rejected: dict[str, str] = {}
        if not to_run:
            self.tidy(reporter)
        if to_run:  # problems with the store, the data or a method stop before any cell
            self.prepare(reporter)
            prepare_trackers(self.settings.trackers)
            if not self.skip_check:
                rejected = preflight_methods(
                    [c.method for c in to_run], self.check_device(), self.settings.cell_timeout_s
                )
        reporter.start(len(cells), len(to_run))
        for cell, status in plan:
            if cell not in to_run:
                summary.skipped.append(cell)
                reporter.skip(cell, status or "")
        todo = []
        for cell in to_run:
            if cell.method not in rejected:
                todo.append(cell)
                continue
            outcome = fail_cell(cell, self.settings, rejected[cell.method])
            if outcome.action == "busy":  # another run is at it; this run reports why not
                summary.failed.append((cell, rejected[cell.method] + " (not stored: busy)"))
            else:
                self._count(outcome, summary, reporter)
        settings = self.settings
        try:
            self._drain(todo, summary, reporter)
        finally:
            self.settings = settings
        return summary

    def _drain(self, todo: list[GridCell], summary: RunSummary, reporter: Reporter) -> None:
        """Execute ``todo``, then wait for and retry the cells other runs held."""
        announced = False
        while todo:
            waiting = []
            for outcome in self.execute(todo, reporter):
                if outcome.action == "busy":
                    waiting.append(outcome.cell)
                else:
                    self._count(outcome, summary, reporter)
            todo = waiting
            if todo and self.settings.force:  # what another run trained meanwhile is fresh
                self.settings = replace(self.settings, force=False)
                self.settings_changed()
            if todo:  # another run is training these: wait, then take over if it died
                if not announced:
                    reporter.note(f"waiting for {len(todo)} cell(s) that another run is training")
                    announced = True
                time.sleep(WAIT_POLL_S)

    def _count(self, outcome: CellOutcome, summary: RunSummary, reporter: Reporter) -> None:
        if outcome.action == "skipped":
            summary.skipped.append(outcome.cell)
            reporter.skip(outcome.cell, "ok")
            return
        record = outcome.record
        assert record is not None
        if record.status == "ok":
            summary.done.append(outcome.cell)
        else:
            summary.failed.append((outcome.cell, record.error))
        reporter.cell_end(outcome.cell, record)


def create_executor(
    kind: str, settings: RunSettings, skip_check: bool = False, **options: Any
) -> Executor:
    """The executor ``arena run --executor KIND`` uses, built the same way for every
    kind with its own ``options`` (see :class:`Executor`). Raises :class:`UsageError`
    for an unknown kind or option, and with one line saying how to install it when Ray
    or submitit is missing."""
    check_options(kind, options)  # before the executor's module loads
    module, _, name = EXECUTORS[kind].partition(":")
    executor_class = getattr(importlib.import_module(module), name)
    return executor_class(settings, skip_check, **options)
