"""The local executor's worker processes: one per slot, each on its own device.

:func:`run_pool` starts one process per slot (``spawn``, so CUDA initialises cleanly in
each), hands each a cell at a time over a pipe and yields outcomes as they finish. A
worker keeps its copy of the dataset on its device between cells. Each cell runs
through :func:`msda_arena.execute.worker.run_cell_here`. A worker that dies mid-cell (a segfault, an
out-of-memory kill) is noticed through its process sentinel: its cell gets a failed
record naming the signal, and the slot gets a fresh process. Ctrl-C (or any error in
the driver) stops every worker; their cells write nothing.

Each cell trains with its recipe's torch threads (``threads``), as under every executor:
keep ``--workers`` x threads within the cores, or they fight over them.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from msda_arena.api.errors import ArenaError, StoreError
from msda_arena.execute.worker import (
    CellOutcome,
    RunSettings,
    fail_cell,
    run_cell_here,
    timeout_error,
)
from msda_arena.grid.cells import GridCell

if TYPE_CHECKING:
    from msda_arena.execute.base import Reporter  # keep-lazy

__all__ = ["run_pool"]

#: Seconds past its time limit after which a cell's worker is killed (the limit inside
#: the worker stops a sleep or a Python loop at the limit; this stops anything else).
GRACE_S = 10.0
KILLED = " (its worker process was killed)"


def _worker_main(conn: Connection, settings: RunSettings, gpu: str | None) -> None:
    """A slot's process: receive cells, send progress and outcomes, until told to stop."""
    if gpu is not None:  # this process sees only its GPU, as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; it stops us

    def on_start(cell: GridCell, epochs: int) -> None:
        conn.send(("start", cell, epochs))

    def on_epoch(cell: GridCell, event: Any) -> None:
        conn.send(("epoch", cell, event))

    while True:
        try:
            cell = conn.recv()
        except EOFError:
            return
        if cell is None:
            return
        try:
            outcome = run_cell_here(cell, settings, on_start=on_start, on_epoch=on_epoch)
        except ArenaError as exc:  # the store cannot be written...: the driver stops, one line
            conn.send(("error", cell, f"{type(exc).__name__}\x00{exc}"))
            return
        conn.send(("done", cell, outcome))


@dataclass
class _Slot:
    device: str
    process: Any = None
    conn: Connection | None = None
    cell: GridCell | None = None
    deadline: float = math.inf  # when the cell's worker is killed (its time limit)


def _start(slot: _Slot, settings: RunSettings) -> None:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    gpu = slot.device.split(":", 1)[1] if slot.device.startswith("cuda:") else None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if gpu is not None and visible:  # index among the visible devices -> the same device
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        gpu = entries[int(gpu)] if int(gpu) < len(entries) else gpu
    device = "cuda" if gpu is not None else slot.device
    slot.process = ctx.Process(
        target=_worker_main,
        args=(child, replace(settings, device=device), gpu),
        daemon=False,  # a worker may start DataLoader processes of its own
        name=f"arena-worker-{slot.device}",
    )
    slot.process.start()
    child.close()
    slot.conn = parent
    slot.cell = None


def _death(process: Any) -> str:
    """Why a worker died: the signal's name; out of memory only for a SIGKILL, and only
    as a guess unless the kernel log says it killed that process for memory."""
    exitcode = process.exitcode
    if exitcode is None or exitcode >= 0:
        return f"worker process exited with code {exitcode} while training this cell"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    if name == "SIGKILL":
        name += " (out of memory)" if _oom_killed(process.pid) else " (out of memory?)"
    return f"worker process died of {name} while training this cell"


def _oom_killed(pid: int) -> bool:
    """Whether the kernel log (where this user may read it) says the out-of-memory
    killer killed ``pid``."""
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(rf"(Out of memory|oom).*\b[Kk]illed process {pid}\b", log) is not None


def _stop(slots: list[_Slot]) -> None:
    for slot in slots:
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()  # mid-cell: atomic writes leave nothing partial
    for slot in slots:
        if slot.process is not None:
            slot.process.join(timeout=10)
        if slot.conn is not None:
            slot.conn.close()


def run_pool(
    cells: list[GridCell], settings: RunSettings, devices: list[str], reporter: Reporter
) -> Iterator[CellOutcome]:
    """Train ``cells`` on one worker process per entry of ``devices``; yield outcomes
    as they finish (see the module docstring)."""
    queue = list(cells)
    slots = [_Slot(d) for d in devices[: max(1, len(queue))]]
    limit = (settings.cell_timeout_s or math.inf) + GRACE_S
    try:
        for slot in slots:
            _start(slot, settings)
        while True:
            for slot in slots:
                if slot.cell is None and queue:
                    slot.cell = queue.pop(0)
                    try:
                        slot.conn.send(slot.cell)
                    except OSError:  # the idle worker died: a fresh one takes the cell
                        cell = slot.cell
                        _start(slot, settings)
                        slot.cell = cell
                        slot.conn.send(cell)
            busy = [s for s in slots if s.cell is not None]
            reporter.running(len(busy))
            if not busy:
                break
            due = min(s.deadline for s in busy) - time.monotonic()
            ready = wait(
                [s.conn for s in busy] + [s.process.sentinel for s in busy],
                timeout=max(0.0, due) if due < math.inf else None,
            )
            for slot in busy:
                if slot.conn in ready:
                    try:
                        kind, cell, payload = slot.conn.recv()
                    except (EOFError, OSError):
                        kind, cell, payload = "dead", slot.cell, None
                    if kind == "start":
                        slot.deadline = time.monotonic() + limit
                        reporter.cell_start(cell, payload)
                        continue
                    if kind == "epoch":
                        reporter.epoch(cell, payload)
                        continue
                    if kind == "done":
                        slot.cell, slot.deadline = None, math.inf
                        yield payload
                        continue
                    if kind == "error":  # a harness error on the worker stops the run
                        raise StoreError(payload.split("\x00", 1)[1])
                late = slot.cell is not None and time.monotonic() > slot.deadline
                if late:  # the limit did not stop it inside (run_cell): kill the worker
                    slot.process.kill()
                if slot.cell is not None and (late or not slot.process.is_alive()):
                    cell, slot.cell, slot.deadline = slot.cell, None, math.inf
                    slot.process.join()
                    error = timeout_error(settings.cell_timeout_s, KILLED) if late else None
                    yield fail_cell(cell, settings, error or _death(slot.process))
                    with contextlib.suppress(OSError):
                        slot.conn.close()
                    _start(slot, settings)  # the slot is refilled
        for slot in slots:
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in slots:
            slot.process.join(timeout=30)
    finally:
        _stop(slots)
