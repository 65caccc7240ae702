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

from msda_arena.config import ArenaConfig, Profile, stable_hash
from msda_arena.errors import UsageError
from msda_arena.spec import slug

__all__ = ["Cell", "build_cells", "parse_seeds", "validate_archs"]


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    profile: str
    dataset: str
    arch: str
    scenario: str
    method: str  # canonical spec
    seed: int
    recipe_hash: str

    @property
    def key(self) -> str:
        """A file-name-safe unique key: profile, arch, scenario, method, seed, recipe hash.

        The profile is part of it so that two profiles sharing a dataset never share
        (and overwrite) each other's files, and a report per profile sees all of its own.
        """
        return (
            f"{self.profile}__{self.arch}__{self.scenario}__{slug(self.method)}"
            f"__s{self.seed}__{self.recipe_hash}"
        )

    def label(self) -> str:
        """Short text for progress displays."""
        return f"{self.method} | {self.arch} | {self.scenario} | seed {self.seed}"


def parse_seeds(text: str) -> tuple[int, ...]:
    """``"0,1,2"``, ``"0-4"`` or ``"3"`` -> a tuple of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UsageError(f"--seeds {text!r}: write seeds like 0,1,2 or a range 0-4")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"--seeds {text!r}: the range {part} is empty")
        seeds.extend(range(lo, hi + 1))
    return tuple(dict.fromkeys(seeds))


def validate_archs(archs: tuple[str, ...]) -> None:
    """Raise :class:`UsageError` for a name that is not in timm's registry."""
    import timm

    import msda_arena.models  # noqa: F401  (registers the CIFAR-stem models)

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


def build_cells(
    config: ArenaConfig,
    profile: Profile,
    methods: list[str],
    archs: tuple[str, ...] | None = None,
    scenarios: tuple[str, ...] | None = None,
    seeds: tuple[int, ...] | None = None,
    baselines: Sequence[str] = (),
) -> list[Cell]:
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
    return [
        Cell(profile.name, profile.dataset, arch, scen, method, seed, hashes[scen])
        for method in all_methods
        for arch in archs
        for scen in scenarios
        for seed in seeds
    ]
