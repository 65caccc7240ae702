"""Run grid cells and store one result per cell. The local executor is the default.

A cell whose result file holds ``status = ok`` is skipped (resume) unless forced; a
failed or missing one runs. A cell that raises (a plugin's bug, a bad mask, a
diverged loss) gets a ``failed`` record with its error and the run goes on; a forced
retrain that fails keeps the stored ``ok`` result instead. A
Ctrl-C stops at once: the interrupted cell writes nothing (results are written
atomically, whole or not at all), every finished cell is kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msda_arena.config import ArenaConfig, Profile
from msda_arena.grid import Cell

__all__ = ["LocalExecutor", "Reporter", "RunSummary", "cached_status"]


def cached_status(root: str | Path, cell: Cell) -> str | None:
    """``"ok"`` or ``"failed"`` for a cell with a readable result file, else None."""
    from msda_arena.store import cell_path, read_result

    record = read_result(cell_path(root, cell.dataset, cell.key))
    if record is None or record.get("key") != cell.key:
        return None
    return record.get("status")


class Reporter:
    """Receives progress; the CLI's rich display subclasses it. Default: silent."""

    def start(self, total: int, to_run: int) -> None:
        """The run starts: ``total`` cells, of which ``to_run`` will train."""

    def cell_start(self, cell: Cell, epochs: int) -> None:
        """A cell starts training."""

    def epoch(self, cell: Cell, event: Any) -> None:
        """A cell finished an epoch (:class:`msda_arena.train.EpochEvent`)."""

    def cell_end(self, cell: Cell, record: dict[str, Any]) -> None:
        """A cell finished (ok or failed) and its record is stored."""

    def skip(self, cell: Cell, status: str) -> None:
        """A cell is skipped because its result is already stored."""


@dataclass
class RunSummary:
    """What a run did."""

    done: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)


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
    ) -> None:
        self.config = config
        self.profile = profile
        self.results = Path(results)
        self.device = device
        self.data_root = data_root or profile.data_root
        self.save_checkpoints = save_checkpoints
        self.force = force
        self._data: Any = None

    def data(self) -> Any:
        """The profile's dataset, loaded on first use and moved to the device."""
        if self._data is None:
            from msda_arena.data import load_dataset

            data = load_dataset(
                self.profile.dataset, self.data_root, **self.profile.dataset_options
            )
            self._data = data.to(self.device) if hasattr(data, "to") else data
        return self._data

    def pending(self, cells: list[Cell]) -> list[tuple[Cell, str | None]]:
        """Each cell with its stored status (None: nothing stored)."""
        return [(c, cached_status(self.results, c)) for c in cells]

    def run(self, cells: list[Cell], reporter: Reporter | None = None) -> RunSummary:
        """Train every cell that has no ``ok`` result (all of them with ``force``)."""
        reporter = reporter or Reporter()
        summary = RunSummary()
        plan = self.pending(cells)
        to_run = [c for c, s in plan if self.force or s != "ok"]
        if to_run:  # a missing dataset stops the run before any cell or progress, with its error
            self.data()
        reporter.start(len(cells), len(to_run))
        for cell, status in plan:
            if not self.force and status == "ok":
                summary.skipped.append(cell)
                reporter.skip(cell, status)
        for cell in to_run:
            record = self.run_cell(cell, reporter)
            if record["status"] == "ok":
                summary.done.append(cell)
            else:
                summary.failed.append((cell, record["error"]))
        return summary

    def run_cell(self, cell: Cell, reporter: Reporter | None = None) -> dict[str, Any]:
        """Train one cell and store its record (ok or failed); return the record."""
        from msda_arena import get_method, method_info
        from msda_arena.provenance import environment, utc_now
        from msda_arena.store import write_result
        from msda_arena.train import device_name, train_cell

        reporter = reporter or Reporter()
        recipe = self.config.recipes[self.profile.recipe]
        started = utc_now()
        record: dict[str, Any] = {
            "schema_version": 1,
            "key": cell.key,
            "status": "ok",
            "error": "",
            "profile": cell.profile,
            "dataset": cell.dataset,
            "arch": cell.arch,
            "scenario": cell.scenario,
            "method": cell.method,
            "seed": cell.seed,
            "recipe_hash": cell.recipe_hash,
            "epochs": recipe.epochs,
            "top1": math.nan,
            "top5": math.nan,
            "train_loss": math.nan,
            "wall_time_s": 0.0,
            "images_per_s": 0.0,
            "peak_mem_mb": 0.0,
            "config_hash": self.config.config_hash(self.profile),
            "started_at": started,
            **environment(),
        }
        try:
            info = method_info(cell.method)
            record.update(
                method_name=info.name, method_package=info.package, method_version=info.version
            )
        except Exception:
            record.update(
                method_name=cell.method.split("(")[0], method_package="", method_version=""
            )
        import torch

        record["device_name"] = device_name(torch.device(self.device))
        reporter.cell_start(cell, recipe.epochs)
        try:
            result = train_cell(
                cell.arch,
                get_method(cell.method),
                self.data(),
                recipe,
                self.config.scenarios[cell.scenario],
                cell.seed,
                device=self.device,
                progress=lambda event: reporter.epoch(cell, event),
                keep_weights=self.save_checkpoints,
            )
        except Exception as exc:
            text = str(exc).strip().splitlines()
            record.update(status="failed", error=f"{type(exc).__name__}: {text[0] if text else ''}")
        else:
            record.update(
                top1=result.top1,
                top5=result.top5,
                train_loss=result.train_loss,
                epochs=result.epochs,
                wall_time_s=result.wall_time_s,
                images_per_s=result.images_per_s,
                peak_mem_mb=result.peak_mem_mb,
                device_name=result.device_name,
            )
            if self.save_checkpoints and result.state_dict is not None:
                self._save_checkpoint(cell, result.state_dict)
        record["finished_at"] = utc_now()
        if record["status"] == "ok" or cached_status(self.results, cell) != "ok":
            write_result(self.results, record)
        else:  # a forced retrain failed: the finished result stays, the failure is reported
            record["error"] += " (the stored ok result was kept)"
        reporter.cell_end(cell, record)
        return record

    def _save_checkpoint(self, cell: Cell, state: dict[str, Any]) -> Path:
        import os
        import tempfile

        from safetensors.torch import save_file

        target = self.results / cell.dataset / "checkpoints" / f"{cell.key}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            save_file(
                state, tmp, metadata={"arch": cell.arch, "method": cell.method, "key": cell.key}
            )
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target
