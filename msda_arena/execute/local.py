"""The local executor: cells on this machine, in this process with one slot (one GPU, or
a CPU without ``--workers``), else one worker process per slot
(:mod:`msda_arena.execute.pool`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from msda_arena.api.record import ResultRecord
from msda_arena.execute.base import Executor, Reporter
from msda_arena.execute.pool import run_pool
from msda_arena.execute.worker import CellOutcome, RunSettings, load_data, run_cell
from msda_arena.grid.cells import GridCell
from msda_arena.grid.config import ArenaConfig, Profile
from msda_arena.store import claims

__all__ = ["LocalExecutor"]

class LocalExecutor(Executor):
    """Cells on this machine: in this process with one slot, else one worker process per
    slot (see the module docstring). The dataset is loaded once per process."""

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
        slots: list[str] | None = None,
    ) -> None:
        settings = RunSettings(
            config=config,
            profile=profile,
            results=Path(results),
            device=device,
            data_root=data_root or profile.data_root,
            save_checkpoints=save_checkpoints,
            force=force,
            claim_ttl_s=claim_ttl_s,
        )
        self.slots = list(slots) if slots else [device]
        if len(self.slots) == 1:  # one slot runs here: on that slot's device (--gpus 1)
            settings = replace(settings, device=self.slots[0])
        super().__init__(settings, skip_check)

    def data(self) -> Any:
        """The profile's dataset on this process's device (loaded once)."""
        return load_data(self.settings)

    def prepare(self, reporter: Reporter) -> None:
        """A missing dataset stops the run before anything is written (the data first:
        its error names the folder to fill), then the store checks."""
        if len(self.slots) == 1:
            self.data()
        else:  # the workers load their own copy; check the data exists once, here
            from dataclasses import replace

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
