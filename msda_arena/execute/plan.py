"""``arena run`` as a library call: :func:`plan_run` builds the grid's cells and the
executor that runs them (:class:`GridRun`); :meth:`GridRun.run` runs them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from msda_arena.execute.base import Executor, Reporter, RunSummary, create_executor
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import GridCell, build_cells, parse_seeds, validate_archs
from msda_arena.grid.config import ArenaConfig, Profile, load_config
from msda_arena.methods.registry import get_method
from msda_arena.store.results import check_writable

__all__ = ["GridRun", "default_cell_timeout", "plan_run"]

#: The default cell time limit: seconds per training step, per epoch where the
#: training set's size is not in arena.toml, and at least (see --cell-timeout's help).
STEP_S, EPOCH_S, FLOOR_S = 2.0, 1200.0, 1800.0


def default_cell_timeout(config: ArenaConfig, profile: Profile) -> float:
    """A generous limit from the recipe: :data:`STEP_S` per training step (epochs x
    steps per epoch), :data:`EPOCH_S` per epoch where the training set's size is not
    known from arena.toml, at least :data:`FLOOR_S`."""
    recipe = config.recipes[profile.recipe]
    images = recipe.train_subset or profile.dataset_options.get("train_size")
    if isinstance(images, int) and images > 0:
        expected = STEP_S * recipe.epochs * math.ceil(images / recipe.batch_size)
    else:
        expected = EPOCH_S * recipe.epochs
    return max(FLOOR_S, expected)


@dataclass
class GridRun:
    """A planned ``arena run``: the profile's cells and the executor that runs them."""

    profile: Profile
    cells: list[GridCell]
    #: The methods asked for, then the baselines (canonical specs).
    methods: list[str]
    executor: Executor
    kind: str

    def describe(self) -> str:
        """``profile P (dataset, recipe R) on DEVICE: N cells, results in ROOT (K executor)``."""
        p, settings = self.profile, self.executor.settings
        return (
            f"profile {p.name} ({p.dataset}, recipe {p.recipe}) on {settings.device}: "
            f"{len(self.cells)} cells, results in {self.executor.results} ({self.kind} executor)"
        )

    def pending(self) -> list[tuple[GridCell, str | None]]:
        """Each cell with its stored status (``arena run --dry-run``)."""
        return self.executor.pending(self.cells)

    def run(self, reporter: Reporter | None = None) -> RunSummary:
        """Train every cell without a current ok result (see :meth:`Executor.run`)."""
        return self.executor.run(self.cells, reporter)


def plan_run(
    methods: list[str],
    device: str,
    config: str | Path | None = None,
    profile: str | None = None,
    archs: tuple[str, ...] | None = None,
    scenarios: tuple[str, ...] | None = None,
    seeds: str | None = None,
    results: str | Path | None = None,
    baselines: bool = True,
    dry_run: bool = False,
    executor: str = "local",
    skip_check: bool = False,
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> GridRun:
    """Plan ``arena run``: arena.toml, the profile, the cells of ``methods`` (and the
    profile's baselines), and executor ``executor`` built with ``options`` (its own;
    see :mod:`msda_arena.execute.options`). ``settings``: more :class:`RunSettings`
    fields (``force``, ``data_root``, ``save_checkpoints``, ``cell_timeout_s``: None for
    the recipe's default, 0 for none; ``threads``). Raises one-line errors for bad input;
    unless ``dry_run``, an unwritable store too."""
    cfg = load_config(config)
    prof = cfg.profile(profile, cuda=device.startswith("cuda"))
    specs = [get_method(m).spec for m in methods]
    extra = [get_method(b).spec for b in prof.baselines] if baselines else []
    validate_archs(archs or prof.archs)
    cells = build_cells(
        cfg,
        prof,
        specs,
        archs=archs,
        scenarios=scenarios,
        seeds=parse_seeds(seeds) if seeds else None,
        baselines=extra,
    )
    root = Path(results) if results else Path(cfg.results)
    if not dry_run:
        check_writable(root, create=False)
    fields = dict(settings or {})
    if fields.get("cell_timeout_s") is None:
        fields["cell_timeout_s"] = default_cell_timeout(cfg, prof)
    fields["cell_timeout_s"] = fields["cell_timeout_s"] or None  # 0: no limit
    run_settings = RunSettings(cfg, prof, root, device, **fields)
    built = create_executor(executor, run_settings, skip_check, **options)
    return GridRun(prof, cells, specs + extra, built, executor)
