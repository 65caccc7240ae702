"""Choosing which stored results a report is about: one profile, some methods, some
scenarios, one result per cell.

Rules:

* A report covers one profile. Without ``profile`` the store must hold exactly one;
  results of different profiles (different epochs, recipes) are never averaged together.
* ``methods`` (canonical specs) restricts the rows to those methods plus the baselines
  (:data:`~msda_arena.grid.COMPARED_BASELINES`), which the "difference from the
  best baseline" column and the paired comparison need. Without it every method in the
  profile is shown.
* ``scenarios`` restricts every cell of the report (leaderboard, paired tests, scenario
  interactions, plots) to those crop scenarios; each must have results in the profile.
  Without it every scenario in the profile is kept.
* Two results for the same cell (dataset, arch, scenario, method, seed) - a re-run after
  a recipe change, or a copied file - are never both counted: the one that finished last
  wins, and a warning says how many were set aside. Likewise results of an older recipe
  and results of an older version of a method's code (stale) are left out, with a
  warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.api.metrics import METRICS
from msda_arena.api.record import CELL_IDENTITY
from msda_arena.grid import COMPARED_BASELINES, scenario_sort_key
from msda_arena.store.current import latest_code, latest_recipe, listing

if TYPE_CHECKING:
    import pandas

__all__ = [
    "REPORT_COLUMNS",
    "Selection",
    "select_results",
]

#: The result columns a report reads (``load_results(columns=REPORT_COLUMNS)`` is faster):
#: the cell's identity, every metric's column (:data:`~msda_arena.api.metrics.METRICS`),
#: the method's locality index, what the selection rules need, a failure's error, and
#: the training loss and epochs that say why vanilla leads (:mod:`~msda_arena.report.regime`).
#: The learning curves (``curve``, kilobytes a cell) are read only for a report that
#: draws them (``--format html``, ``--plots``): on a large store they would dominate.
REPORT_COLUMNS: tuple[str, ...] = (
    "status", "error", "profile", *CELL_IDENTITY,
    *dict.fromkeys(m.column for m in METRICS.values()), "locality",
    "finished_at", "recipe_hash", "method_code", "train_loss", "epochs",
)  # fmt: skip


@dataclass
class Selection:
    """The results one report is built from.

    Attributes:
        frame: one result record per cell.
        profile: the profile reported.
        methods: the methods asked for (``None``: every method).
        warnings: what was left out and why.
        scenarios: the scenarios kept, in the grid's order (``None``: every scenario of
            the profile, asked for or not).
    """

    frame: pandas.DataFrame
    profile: str
    methods: list[str] | None
    warnings: list[str] = field(default_factory=list)
    scenarios: list[str] | None = None


def select_results(
    frame: pandas.DataFrame,
    profile: str | None = None,
    methods: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
) -> Selection:
    """Filter ``frame`` (from :func:`msda_arena.store.results.load_results`) for one report.

    Raises:
        StoreError: the frame holds no results.
        UsageError: an unknown profile, method or scenario, or several profiles and none
            chosen.
    """
    import pandas as pd  # loaded already: ``frame`` is a DataFrame

    if len(frame) == 0:
        raise StoreError("the result store holds no results; run `arena run` first")
    profiles = sorted(frame["profile"].unique())
    if profile is None:
        if len(profiles) > 1:
            raise UsageError(
                f"the store holds results of several profiles ({listing(profiles)}); "
                "choose one with --profile"
            )
        profile = profiles[0]
    elif profile not in profiles:
        raise UsageError(
            f"no results for profile {profile!r}; profiles in the store: {listing(profiles)}"
        )
    if len(profiles) > 1:
        frame = frame[frame["profile"] == profile]
    kept: list[str] | None = None
    if scenarios:
        there = sorted({str(s) for s in frame["scenario"].unique()}, key=scenario_sort_key)
        unknown = [s for s in dict.fromkeys(scenarios) if s not in there]
        if unknown:
            raise UsageError(
                f"no results for scenario {unknown[0]!r} in profile {profile!r}; "
                f"scenarios there: {listing(there)}"
            )
        kept = sorted(set(scenarios), key=scenario_sort_key)
        frame = frame[frame["scenario"].isin(kept)]
        if len(kept) == len(there):  # every scenario: the whole grid after all
            kept = None
    present = set(frame["method"].unique())
    wanted: list[str] | None = None
    if methods:
        wanted = []
        for spec in methods:
            if spec not in present:
                raise UsageError(
                    f"no results for method {spec!r} in profile {profile!r}; "
                    f"methods there: {listing(sorted(present))}"
                )
            if spec not in wanted:
                wanted.append(spec)
        keep = wanted + [b for b in COMPARED_BASELINES if b in present and b not in wanted]
        frame = frame[frame["method"].isin(keep)]
    warnings: list[str] = []
    frame = latest_recipe(frame, warnings)
    frame = latest_code(frame, warnings)
    duplicated = frame.duplicated(list(CELL_IDENTITY), keep=False)
    if duplicated.any():
        dup = frame[duplicated].sort_values("finished_at", kind="stable")
        latest = dup.drop_duplicates(list(CELL_IDENTITY), keep="last")
        n_old = len(dup) - len(latest)
        frame = frame[~duplicated]
        frame = latest if len(frame) == 0 else pd.concat([frame, latest], ignore_index=True)
        warnings.append(
            f"{n_old} older result(s) for cells that have a newer one (same dataset, arch, "
            "scenario, method and seed) were left out"
        )
    return Selection(
        frame=frame.reset_index(drop=True),
        profile=profile,
        methods=wanted,
        warnings=warnings,
        scenarios=kept,
    )
