"""The local executor's worker processes: one per slot, each on its own device.

:func:`run_pool` starts one process per slot (``spawn``, so CUDA initialises cleanly in
each), hands each a cell at a time over a pipe and yields outcomes as they finish. A
worker keeps its copy of the dataset on its device between cells. Each cell runs
through :func:`msda_arena.execute.worker.run_cell_here`, so claims, records and failures are
exactly those of every other executor. A worker that dies mid-cell (a segfault, an
out-of-memory kill) is noticed through its process sentinel: its cell gets a failed
record naming the signal, and the slot gets a fresh process. Ctrl-C (or any error in
the driver) stops every worker; their cells write nothing.

CPU workers share the machine's cores: each gets ``cores // workers`` torch threads
(:func:`cpu_threads`), unless ``OMP_NUM_THREADS`` says otherwise, so two workers on
two cores do not run four threads that fight over them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from msda_arena.api.errors import ArenaError, StoreError
from msda_arena.execute.worker import CellOutcome, RunSettings, fail_cell, run_cell_here
from msda_arena.grid.cells import GridCell

if TYPE_CHECKING:
    from msda_arena.execute.base import Reporter  # keep-lazy

__all__ = ["cpu_threads", "run_pool"]


def cpu_threads(cpu_workers: int) -> int | None:
    """Torch threads for each of ``cpu_workers`` CPU worker processes: the cores this
    process may use divided among them (at least 1); ``None`` (torch's default) when
    ``OMP_NUM_THREADS`` is set or there are no CPU workers."""
    if cpu_workers < 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // cpu_workers)


def _worker_main(
    conn: Connection, settings: RunSettings, gpu: str | None, threads: int | None = None
) -> None:
    """A slot's process: receive cells, send progress and outcomes, until told to stop."""
    if gpu is not None:  # this process sees only its GPU, as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; it stops us
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

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


def _start(slot: _Slot, settings: RunSettings, threads: int | None = None) -> None:
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
        args=(child, replace(settings, device=device), gpu, threads if gpu is None else None),
        daemon=False,  # a worker may start DataLoader processes of its own
        name=f"arena-worker-{slot.device}",
    )
    slot.process.start()
    child.close()
    slot.conn = parent
    slot.cell = None


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (killed: out of memory?)" if name == "SIGKILL" else ""
        return f"worker process died of {name}{hint} while training this cell"
    return f"worker process exited with code {exitcode} while training this cell"


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
    threads = cpu_threads(sum(not s.device.startswith("cuda") for s in slots))
    try:
        for slot in slots:
            _start(slot, settings, threads)
        while True:
            for slot in slots:
                if slot.cell is None and queue:
                    slot.cell = queue.pop(0)
                    try:
                        slot.conn.send(slot.cell)
                    except OSError:  # the idle worker died: a fresh one takes the cell
                        cell = slot.cell
                        _start(slot, settings, threads)
                        slot.cell = cell
                        slot.conn.send(cell)
            busy = [s for s in slots if s.cell is not None]
            reporter.running(len(busy))
            if not busy:
                break
            ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy])
            for slot in busy:
                if slot.conn in ready:
                    try:
                        kind, cell, payload = slot.conn.recv()
                    except (EOFError, OSError):
                        kind, cell, payload = "dead", slot.cell, None
                    if kind == "start":
                        reporter.cell_start(cell, payload)
                        continue
                    if kind == "epoch":
                        reporter.epoch(cell, payload)
                        continue
                    if kind == "done":
                        slot.cell = None
                        yield payload
                        continue
                    if kind == "error":  # a harness error on the worker stops the run
                        raise StoreError(payload.split("\x00", 1)[1])
                if slot.cell is not None and not slot.process.is_alive():
                    cell, slot.cell = slot.cell, None
                    slot.process.join()
                    yield _dead_outcome(cell, settings, slot.process.exitcode)
                    with contextlib.suppress(OSError):
                        slot.conn.close()
                    _start(slot, settings, threads)  # the slot is refilled
        for slot in slots:
            with contextlib.suppress(OSError):
                slot.conn.send(None)
        for slot in slots:
            slot.process.join(timeout=30)
    finally:
        _stop(slots)


def _dead_outcome(cell: GridCell, settings: RunSettings, exitcode: int | None) -> CellOutcome:
    """The failed record of a dead worker's cell (its claim is stale at once: its
    process is gone)."""
    return fail_cell(cell, settings, _death(exitcode))
