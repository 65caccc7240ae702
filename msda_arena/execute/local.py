"""The local executor: cells on this machine, in this process with one slot (one GPU, or
a CPU without ``--workers``), else one worker process per slot
(:mod:`msda_arena.execute.pool`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import torch

from msda_arena.api.errors import UsageError
from msda_arena.api.record import ResultRecord
from msda_arena.execute.base import Executor, Reporter
from msda_arena.execute.options import LocalOptions
from msda_arena.execute.pool import run_pool
from msda_arena.execute.worker import CellOutcome, RunSettings, load_data, run_cell
from msda_arena.grid.cells import GridCell
from msda_arena.store import claims

__all__ = ["LocalExecutor", "slot_devices"]


class LocalExecutor(Executor):
    """Cells on this machine: in this process with one slot, else one worker process per
    slot (see the module docstring). The dataset is loaded once per process."""

    name = "local"

    def __init__(self, settings: RunSettings, skip_check: bool = False, **options: Any) -> None:
        super().__init__(settings, skip_check, **options)
        self.slots = slot_devices(settings.device, self.options)
        if len(self.slots) == 1:  # one slot runs here: on that slot's device (--gpus 1)
            self.settings = replace(settings, device=self.slots[0])

    def data(self) -> Any:
        """The profile's dataset on this process's device (loaded once)."""
        return load_data(self.settings)

    def prepare(self, reporter: Reporter) -> None:
        """A missing dataset stops the run before anything is written (the data first:
        its error names the folder to fill), then the store checks."""
        if len(self.slots) == 1:
            self.data()
        else:  # the workers load their own copy; check the data exists once, here
            load_data(replace(self.settings, device="cpu"))
        super().prepare(reporter)

    def execute(self, cells: list[GridCell], reporter: Reporter) -> Iterator[CellOutcome]:
        """In this process with one slot; in a pool of worker processes otherwise."""
        if len(self.slots) == 1:
            for cell in cells:
                yield self._run_here(cell, reporter)
            return

        free = []
        for cell in cells:  # cells another run is training: no worker is started for them
            path = claims.claim_path(self.results, cell.dataset, cell.key)
            info = claims.read_claim(path) if path.exists() else None
            ttl = self.settings.claim_ttl_s
            if info is not None and claims.stale_reason(path, info, ttl) is None:
                yield CellOutcome(cell, "busy", detail="being trained by another run")
            else:
                free.append(cell)
        if free:
            yield from run_pool(free, self.settings, self.slots, reporter)

    def run_cell(self, cell: GridCell, reporter: Reporter | None = None) -> ResultRecord | None:
        """Claim, train and store one cell now, in this process, whatever is stored;
        return its record (``None`` when another run holds the cell's claim)."""
        return self._run_here(cell, reporter or Reporter()).record

    def _run_here(self, cell: GridCell, reporter: Reporter) -> CellOutcome:
        return run_cell(
            cell, self.settings, self.data(), on_start=reporter.cell_start, on_epoch=reporter.epoch
        )


def slot_devices(device: str, options: LocalOptions) -> list[str]:
    """The device of each local worker slot: ``cells_per_gpu`` slots per GPU of
    ``options.gpus`` (default: every visible one) on CUDA, ``workers`` CPU slots else.

    Raises :class:`UsageError` for a GPU index that is not visible.
    """
    if not device.startswith("cuda"):
        if options.gpus:
            raise UsageError("--gpus needs CUDA; this run is on the CPU (use --workers N)")
        return ["cpu"] * options.workers
    visible = torch.cuda.device_count()
    if options.gpus is not None:
        gpus = list(options.gpus)
    elif ":" in device:
        gpus = [int(device.split(":")[1])]
    else:
        gpus = list(range(visible))
    bad = [g for g in gpus if not 0 <= g < visible]
    if bad:
        raise UsageError(f"--gpus {bad[0]}: only {visible} CUDA device(s) are visible here")
    if not gpus:
        raise UsageError("--gpus names no GPU")
    return [f"cuda:{g}" for g in gpus for _ in range(options.cells_per_gpu)]
