"""A profile plus command-line choices -> the grid cells to run, with stable keys.

A cell is (dataset, architecture, scenario, method spec, seed, recipe hash). The
recipe hash covers everything else that shapes training (the recipe, the dataset and
its options, the scenario's geometry), so editing arena.toml never reuses a stale
result, while unrelated edits (another profile, a new seed) keep every finished cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import msda_arena.models.cifar  # noqa: F401
from msda_arena.api.errors import UsageError
from msda_arena.api.record import RecordError, cell_key
from msda_arena.grid.config import (
    ARCH_PATTERN,
    ARCH_RULE,
    MAX_SEED,
    MAX_SEEDS,
    ArenaConfig,
    Profile,
    stable_hash,
)
from msda_arena.methods.registry import method_info

__all__ = ["GridCell", "build_cells", "parse_seeds", "validate_archs"]


@dataclass(frozen=True)
class GridCell:
    """One training run of the grid.

    ``method_code`` is the identity of the method's implementation the cell trains
    with (:attr:`msda_arena.methods.registry.MethodInfo.code`: package version and source hash).
    It is not part of the key: a stored result whose ``method_code`` differs is *stale*
    and retrained in place, so one cell always has one file.
    """

    profile: str
    dataset: str
    arch: str
    scenario: str
    method: str  # canonical spec
    seed: int
    recipe_hash: str
    method_code: str = ""

    @property
    def key(self) -> str:
        """The file-name-safe unique key (:func:`msda_arena.api.record.cell_key`).

        The profile is part of it so that two profiles sharing a dataset never share
        (and overwrite) each other's files, and a report per profile sees all of its own.
        """
        return cell_key(
            self.profile, self.arch, self.scenario, self.method, self.seed, self.recipe_hash
        )

    def label(self) -> str:
        """Short text for progress displays."""
        return f"{self.method} | {self.arch} | {self.scenario} | seed {self.seed}"


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-4"`` or ``"3"`` -> a tuple of seeds.

    Only ASCII digits; each seed in ``0 .. MAX_SEED`` (2**31 - 1); at most ``MAX_SEEDS``
    seeds, counted before any range is expanded.
    """

    shown = repr(text) if len(text) <= 60 else repr(text[:57]) + "..."
    bounds: list[tuple[int, int]] = []
    count = 0
    for raw in text.split(","):
        part = raw.strip()
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", part)
        if not m:
            raise UsageError(
                f"--seeds {shown}: write seeds like 0,1,2 or a range 0-4 "
                f"(ASCII digits, each seed 0 to {MAX_SEED})"
            )
        for digits in m.groups(default="0"):
            if len(digits) > 10 or int(digits) > MAX_SEED:  # int() only of a few digits
                big = digits if len(digits) <= 20 else digits[:17] + "..."
                raise UsageError(
                    f"--seeds {shown}: {big} is too large; each seed is 0 to {MAX_SEED}"
                )
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"--seeds {shown}: the range {part} is empty")
        count += hi - lo + 1
        if count > MAX_SEEDS:
            raise UsageError(
                f"--seeds {shown}: more than {MAX_SEEDS} seeds in one run; "
                "name fewer (or run in several commands)"
            )
        bounds.append((lo, hi))
    seeds = (seed for lo, hi in bounds for seed in range(lo, hi + 1))
    return tuple(dict.fromkeys(seeds))


def validate_archs(archs: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` for a name that is malformed, named twice, or not in
    timm's registry. The name's form is checked before any lookup, since it becomes part
    of result file names."""

    seen: set[str] = set()
    for arch in archs:
        if not isinstance(arch, str) or not ARCH_PATTERN.fullmatch(arch):
            shown = repr(arch) if len(repr(arch)) <= 60 else repr(arch)[:57] + "..."
            raise UsageError(f"architecture name {shown} is not allowed: use {ARCH_RULE}")
        if arch in seen:
            raise UsageError(f"architecture {arch!r} is named twice; name each once")
        seen.add(arch)

    import timm


    for arch in archs:
        if not timm.is_model(arch):
            import difflib

            close = difflib.get_close_matches(arch, timm.list_models(), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UsageError(
                f"unknown architecture {arch!r}.{hint} Use a timm model name "
                "(`python -c \"import timm; print(timm.list_models('resnet*'))\"`)"
            )


def recipe_hash(config: ArenaConfig, profile: Profile, scenario: str) -> str:
    """Hash of the recipe, dataset (with options) and scenario geometry of a cell."""
    return stable_hash(
        {
            "recipe": config.recipes[profile.recipe].to_dict(),
            "dataset": profile.dataset,
            "dataset_options": profile.dataset_options,
            "scenario": {
                k: v for k, v in config.scenarios[scenario].to_dict().items() if k != "description"
            },
        },
        length=10,
    )


def _method_code(spec: str) -> str:

    return method_info(spec).code


def build_cells(
    config: ArenaConfig,
    profile: Profile,
    methods: list[str],
    archs: tuple[str, ...] | None = None,
    scenarios: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    baselines: Sequence[str] = (),
) -> list[GridCell]:
    """Every cell for ``methods`` then ``baselines`` (canonical specs, duplicates once).

    ``archs``, ``scenarios`` and ``seeds`` narrow or replace the profile's; a scenario
    must be defined in the config. Order: method, then arch, scenario, seed.
    """
    archs = tuple(archs) if archs else profile.archs
    scenarios = tuple(scenarios) if scenarios else profile.scenarios
    seeds = tuple(seeds) if seeds else profile.seeds
    for s in scenarios:
        if s not in config.scenarios:
            raise UsageError(
                f"unknown scenario {s!r}; defined in {config.path}: "
                f"{', '.join(sorted(config.scenarios))}"
            )
    all_methods = list(dict.fromkeys([*methods, *baselines]))
    hashes = {s: recipe_hash(config, profile, s) for s in scenarios}
    codes = {m: _method_code(m) for m in all_methods}
    cells = [
        GridCell(
            profile.name, profile.dataset, arch, scen, method, seed, hashes[scen], codes[method]
        )
        for method in all_methods
        for arch in archs
        for scen in scenarios
        for seed in dict.fromkeys(seeds)
    ]
    cells = list(dict.fromkeys(cells))  # a scenario or arch named twice gives one cell
    if not cells:
        raise UsageError("the grid is empty: name at least one method, architecture and seed")
    try:
        for cell in cells:
            cell.key  # noqa: B018  (builds and checks the key: file-name safe, short enough)
    except RecordError as exc:
        raise UsageError(str(exc)) from None
    return cells
