"""Progress of `arena run` on stderr: a live display on a terminal, plain lines elsewhere.

Where stderr is not a terminal (cluster logs, CI, a pipe) progress is one plain line per
finished cell, with the count, the failures and an ETA, never a redrawn bar.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from msda_arena.execute.base import Reporter

__all__ = ["PlainReporter", "RichReporter", "make_reporter"]


def _eta(started: float, done: int, total: int) -> str:
    if done == 0 or total <= done:
        return "0:00:00" if total <= done else "-:--:--"
    left = (time.monotonic() - started) / done * (total - done)
    return time.strftime("%H:%M:%S", time.gmtime(left))


class PlainReporter(Reporter):
    """One line per finished cell: ``[3/12] done ...`` with running, failed and ETA."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.finished = 0
        self.failed = 0
        self.busy = 0
        self.started = time.monotonic()

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def stop(self) -> None:
        """Nothing to tear down."""

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, total: int, to_run: int) -> None:
        self.total = to_run
        self.started = time.monotonic()
        if total - to_run:
            self._print(f"{total - to_run} of {total} cells already stored: skipped")
        self._print(f"{to_run} cell(s) to train")

    def running(self, count: int) -> None:
        self.busy = count

    def note(self, message: str) -> None:
        self._print(message)

    def cell_end(self, cell: Any, record: Any) -> None:
        self.finished += 1
        self.failed += record.status != "ok"
        where = f"[{self.finished}/{self.total}]"
        busy = f"{self.busy} running, " if self.busy > 1 else ""
        tail = f"({busy}{self.failed} failed, eta {self._eta()})"
        if record.status == "ok":
            self._print(
                f"{where} done   {cell.label()}: top-1 {record.top1:.2f}% "
                f"({record.wall_time_s:.1f} s, {record.images_per_s:.0f} img/s) {tail}"
            )
        else:
            self._print(f"{where} FAILED {cell.label()}: {record.error} {tail}")

    def _eta(self) -> str:
        return _eta(self.started, self.finished, self.total)


class RichReporter(Reporter):
    """A live display: cells done with ETA, running and failed counts, and the current
    cell's epochs when one cell trains at a time."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.cells_task: Any = None
        self.epoch_task: Any = None
        self.busy = 0
        self.failed = 0

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stop(self) -> None:
        """Stop the live display (before printing an interruption message)."""
        self.progress.stop()

    def start(self, total: int, to_run: int) -> None:
        self.cells_task = self.progress.add_task("cells", total=max(to_run, 1) if to_run else 0)
        self.epoch_task = self.progress.add_task("", total=1, visible=False)
        if total - to_run:
            self.console.print(f"{total - to_run} of {total} cells already stored: skipped")

    def _describe(self) -> None:
        parts = []
        if self.busy > 1:
            parts.append(f"{self.busy} running")
        if self.failed:
            parts.append(f"{self.failed} failed")
        text = "cells" + (f" ({', '.join(parts)})" if parts else "")
        self.progress.update(self.cells_task, description=text)

    def running(self, count: int) -> None:
        self.busy = count
        if count > 1:  # several cells at once: one epoch bar would mislead
            self.progress.update(self.epoch_task, visible=False)
        self._describe()

    def cell_start(self, cell: Any, epochs: int) -> None:
        if self.busy > 1:
            return
        self.progress.reset(
            self.epoch_task, total=epochs, visible=True, description=f"  {cell.label()}"
        )

    def epoch(self, cell: Any, event: Any) -> None:
        if self.busy > 1:
            return
        self.progress.update(
            self.epoch_task,
            completed=event.epoch,
            description=f"  {cell.label()} | loss {event.train_loss:.3f}",
        )

    def cell_end(self, cell: Any, record: Any) -> None:
        self.progress.advance(self.cells_task)
        if record.status == "ok":
            self.console.print(
                f"[green]done[/]   {cell.label()}: top-1 {record.top1:.2f}% "
                f"({record.wall_time_s:.1f} s, {record.images_per_s:.0f} img/s)"
            )
        else:
            self.failed += 1
            self.console.print(f"[red]FAILED[/] {cell.label()}: {record.error}")
        self._describe()

    def note(self, message: str) -> None:
        self.console.print(message)


def make_reporter() -> RichReporter | PlainReporter:
    """The live display on a terminal, plain lines elsewhere."""
    return RichReporter() if sys.stderr.isatty() else PlainReporter()
