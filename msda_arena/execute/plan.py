"""``arena run`` as a library call: :func:`plan_run` builds the grid's cells and the
executor that runs them (``executor.run(cells, reporter)``)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from msda_arena.execute.base import Executor, create_executor
from msda_arena.execute.worker import RunSettings
from msda_arena.grid.cells import GridCell, build_cells, parse_seeds, validate_archs
from msda_arena.grid.config import ArenaConfig, Profile, load_config
from msda_arena.methods.registry import get_method
from msda_arena.store.results import check_writable

__all__ = ["default_cell_timeout", "plan_run"]

#: The default cell time limit (:func:`default_cell_timeout`; stated in --cell-timeout's help).
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
    recipe: dict[str, Any] | None = None,
    **options: Any,
) -> tuple[Executor, list[GridCell]]:
    """Plan ``arena run``: the cells of ``methods`` (and the profile's baselines) and
    executor ``executor`` built with its ``options`` and ``settings`` (more
    :class:`RunSettings` fields; ``cell_timeout_s`` None: the recipe's default, 0: none),
    the profile's recipe changed where ``recipe`` gives a value (``--threads``).
    One-line errors for bad input, and unless ``dry_run`` for an unwritable store."""
    cfg = load_config(config)
    prof = cfg.profile(profile, cuda=device.startswith("cuda"))
    changed = {k: v for k, v in (recipe or {}).items() if v is not None}
    if changed:  # part of the recipe, so of its hash: results with other values are new cells
        new = replace(cfg.recipes[prof.recipe], **changed)
        cfg = replace(cfg, recipes={**cfg.recipes, prof.recipe: new})
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
    return create_executor(executor, run_settings, skip_check, **options), cells
