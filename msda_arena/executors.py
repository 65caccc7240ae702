"""Run grid cells and store one result per cell. The local executor is the default.

An executor decides where and when cells run; what running one means belongs to
:func:`msda_arena.worker.run_cell` (claim, train, store). Before the first cell, every
executor proves the store is writable, removes temporary files left by dead writers,
and runs the cheap conformance rules (:func:`msda_arena.testing.preflight`) on every
method it is about to train: a method that fails gets failed records naming the rule
(``skip_check`` turns this off). A cell another run is training is waited for, then
taken over only if that run died, so concurrent runs never train one cell twice and
never lose one. A Ctrl-C stops at once: the interrupted cell writes nothing, every
finished cell is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msda_arena.config import ArenaConfig, Profile
from msda_arena.grid import GridCell
from msda_arena.record import ResultRecord
from msda_arena.worker import (
    CellOutcome,
    RunSettings,
    describe_exception,
    failed_record,
    run_cell,
    store_failure,
    stored_status,
)

__all__ = ["LocalExecutor", "Reporter", "RunSummary", "preflight_methods"]

#: Seconds between looks at a cell that another run is training.
WAIT_POLL_S = 1.0


class Reporter:
    """Receives progress; the CLI's display subclasses it. Default: silent."""

    def start(self, total: int, to_run: int) -> None:
        """The run starts: ``total`` cells, of which ``to_run`` will train."""

    def cell_start(self, cell: GridCell, epochs: int) -> None:
        """A cell starts training."""

    def epoch(self, cell: GridCell, event: Any) -> None:
        """A cell finished an epoch (:class:`msda_arena.train.EpochEvent`)."""

    def cell_end(self, cell: GridCell, record: ResultRecord) -> None:
        """A cell finished (ok or failed) and its record is stored."""

    def skip(self, cell: GridCell, status: str) -> None:
        """A cell is skipped because its result is already stored."""

    def note(self, message: str) -> None:
        """Something the user should know that is not a cell's end (waiting, cleaning)."""


@dataclass
class RunSummary:
    """What a run did."""

    done: list[GridCell] = field(default_factory=list)
    skipped: list[GridCell] = field(default_factory=list)
    failed: list[tuple[GridCell, str]] = field(default_factory=list)


def preflight_methods(methods: list[str], device: str = "cpu") -> dict[str, str]:
    """The cheap conformance rules for each method spec; spec -> one-line failure for
    those that fail (``"conformance rule 'vectorised' failed: ..."``)."""
    from msda_arena import get_method, interrupts
    from msda_arena.testing import preflight

    failures: dict[str, str] = {}
    for spec in dict.fromkeys(methods):
        try:
            result = preflight(get_method(spec), device)
        except BaseException as exc:
            if interrupts.from_user(exc):
                raise
            failures[spec] = f"conformance check could not run: {describe_exception(exc)}"
            continue
        if result is not None:
            failures[spec] = (
                f"conformance rule '{result.rule}' failed before training: {result.detail} "
                "(see `arena check`; --skip-check trains anyway)"
            )
    return failures


class LocalExecutor:
    """Runs cells one after another in this process, on one device.

    The dataset is loaded once and kept on the device for every cell.
    """

    def __init__(
        self,
        config: ArenaConfig,
        profile: Profile,
        results: str | Path,
        device: str = "cpu",
        data_root: str | None = None,
        save_checkpoints: bool = False,
        force: bool = False,
        skip_check: bool = False,
        claim_ttl_s: float | None = None,
    ) -> None:
        self.settings = RunSettings(
            config=config,
            profile=profile,
            results=Path(results),
            device=device,
            data_root=data_root or profile.data_root,
            save_checkpoints=save_checkpoints,
            force=force,
            claim_ttl_s=claim_ttl_s,
        )
        self.skip_check = skip_check
        self._data: Any = None

    @property
    def results(self) -> Path:
        """The result store."""
        return self.settings.results

    def data(self) -> Any:
        """The profile's dataset, loaded on first use and moved to the device."""
        if self._data is None:
            from msda_arena.data import load_dataset

            s = self.settings
            data = load_dataset(s.profile.dataset, s.data_root, **s.profile.dataset_options)
            self._data = data.to(s.device) if hasattr(data, "to") else data
        return self._data

    def pending(self, cells: list[GridCell]) -> list[tuple[GridCell, str | None]]:
        """Each cell with its stored status: ok, stale, failed or None (nothing)."""
        return [(c, stored_status(self.results, c)) for c in cells]

    def run(self, cells: list[GridCell], reporter: Reporter | None = None) -> RunSummary:
        """Train every cell that has no current ``ok`` result (all of them with ``force``)."""
        from msda_arena.store import check_writable, clean_temporaries

        reporter = reporter or Reporter()
        summary = RunSummary()
        plan = self.pending(cells)
        to_run = [c for c, s in plan if self.settings.force or s != "ok"]
        rejected: dict[str, str] = {}
        if to_run:  # problems with the store, the data or a method stop before any cell
            self.data()
            check_writable(self.results)
            removed = clean_temporaries(self.results)
            if removed:
                reporter.note(f"removed {len(removed)} temporary file(s) left by dead runs")
            if not self.skip_check:
                rejected = preflight_methods([c.method for c in to_run])
        reporter.start(len(cells), len(to_run))
        for cell, status in plan:
            if cell not in to_run:
                summary.skipped.append(cell)
                reporter.skip(cell, status or "")
        waiting: list[GridCell] = []
        for cell in to_run:
            if cell.method in rejected:
                self._reject(cell, rejected[cell.method], summary, reporter)
                continue
            outcome = self._run_one(cell, reporter)
            if outcome.action == "busy":
                waiting.append(cell)
            else:
                self._count(outcome, summary, reporter)
        self._wait_for(waiting, summary, reporter)
        return summary

    def run_cell(self, cell: GridCell, reporter: Reporter | None = None) -> ResultRecord | None:
        """Claim, train and store one cell now, whatever is stored; return its record
        (``None`` when another run holds the cell's claim or stored it meanwhile)."""
        return self._run_one(cell, reporter or Reporter()).record

    def _run_one(self, cell: GridCell, reporter: Reporter) -> CellOutcome:
        return run_cell(
            cell,
            self.settings,
            self.data(),
            on_start=reporter.cell_start,
            on_epoch=reporter.epoch,
        )

    def _wait_for(self, cells: list[GridCell], summary: RunSummary, reporter: Reporter) -> None:
        """Cells another run was training: wait until each is stored (skip it) or its
        claim is released or stale (train it here)."""
        announced = False
        while cells:
            if not announced:
                reporter.note(f"waiting for {len(cells)} cell(s) that another run is training")
                announced = True
            still: list[GridCell] = []
            for cell in cells:
                outcome = self._run_one(cell, reporter)
                if outcome.action == "busy":
                    still.append(cell)
                else:
                    self._count(outcome, summary, reporter)
            cells = still
            if cells:
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

    def _reject(self, cell: GridCell, error: str, summary: RunSummary, reporter: Reporter) -> None:
        record = failed_record(cell, self.settings, error)
        if not store_failure(self.settings, record):
            record = record.replace(error=record.error + " (the stored ok result was kept)")
        summary.failed.append((cell, record.error))
        reporter.cell_end(cell, record)
