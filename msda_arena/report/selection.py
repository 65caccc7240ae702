"""Choosing which stored results a report is about: one profile, some methods, one result
per cell.

Rules:

* A report covers one profile. Without ``profile`` the store must hold exactly one;
  results of different profiles (different epochs, recipes) are never averaged together.
* ``methods`` (canonical specs) restricts the rows to those methods plus the baselines
  (:data:`BASELINES`), which the "difference from the best baseline" column and the
  paired comparison need. Without it every method in the profile is shown.
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

from msda_arena.errors import StoreError, UsageError
from msda_arena.report.metrics import METRICS

if TYPE_CHECKING:
    import pandas

__all__ = [
    "BASELINES",
    "REFERENCE_METHODS",
    "REPORT_COLUMNS",
    "Selection",
    "latest_code",
    "latest_recipe",
    "select_results",
]

#: The methods every other method is measured against (the paper's four masks).
BASELINES: tuple[str, ...] = ("mixup", "cutmix", "hmix", "gmix")
#: Methods that come with the arena; anything else is "a method under test".
REFERENCE_METHODS: tuple[str, ...] = ("vanilla", "mixup", "cutmix", "mixup-cutmix", "hmix", "gmix")

CELL_IDENTITY: tuple[str, ...] = ("dataset", "arch", "scenario", "method", "seed")
#: The result columns a report reads (``load_results(columns=REPORT_COLUMNS)`` is faster):
#: the cell's identity, every metric's column (:data:`~msda_arena.report.metrics.METRICS`),
#: the method's locality index, what the selection rules need, and the training loss
#: and epochs that say why vanilla leads (:mod:`~msda_arena.report.regime`).
REPORT_COLUMNS: tuple[str, ...] = (
    "status", "profile", "dataset", "arch", "scenario", "method", "seed",
    *dict.fromkeys(m.column for m in METRICS.values()), "locality",
    "finished_at", "recipe_hash", "method_code", "train_loss", "epochs",
)  # fmt: skip


@dataclass
class Selection:
    """The results one report is built from."""

    frame: pandas.DataFrame
    profile: str
    methods: list[str] | None
    warnings: list[str] = field(default_factory=list)


def _listing(values: Sequence[str], limit: int = 12) -> str:
    values = list(values)
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def select_results(
    frame: pandas.DataFrame,
    profile: str | None = None,
    methods: Sequence[str] | None = None,
) -> Selection:
    """Filter ``frame`` (from :func:`msda_arena.store.load_results`) for one report.

    Raises:
        StoreError: the frame holds no results.
        UsageError: an unknown profile or method, or several profiles and none chosen.
    """
    if len(frame) == 0:
        raise StoreError("the result store holds no results; run `arena run` first")
    profiles = sorted(frame["profile"].unique())
    if profile is None:
        if len(profiles) > 1:
            raise UsageError(
                f"the store holds results of several profiles ({_listing(profiles)}); "
                "choose one with --profile"
            )
        profile = profiles[0]
    elif profile not in profiles:
        raise UsageError(
            f"no results for profile {profile!r}; profiles in the store: {_listing(profiles)}"
        )
    if len(profiles) > 1:
        frame = frame[frame["profile"] == profile]
    present = set(frame["method"].unique())
    wanted: list[str] | None = None
    if methods:
        wanted = []
        for spec in methods:
            if spec not in present:
                raise UsageError(
                    f"no results for method {spec!r} in profile {profile!r}; "
                    f"methods there: {_listing(sorted(present))}"
                )
            if spec not in wanted:
                wanted.append(spec)
        keep = wanted + [b for b in BASELINES if b in present and b not in wanted]
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
        frame = latest if len(frame) == 0 else _concat(frame, latest)
        warnings.append(
            f"{n_old} older result(s) for cells that have a newer one (same dataset, arch, "
            "scenario, method and seed) were left out"
        )
    return Selection(
        frame=frame.reset_index(drop=True), profile=profile, methods=wanted, warnings=warnings
    )


def _concat(a: pandas.DataFrame, b: pandas.DataFrame) -> pandas.DataFrame:
    import pandas as pd

    return pd.concat([a, b], ignore_index=True)


def latest_code(frame: pandas.DataFrame, warnings: list[str]) -> pandas.DataFrame:
    """Keep, per method, the results of the method code that finished last; append
    a note to ``warnings`` when any are left out.

    Editing a method's code (or bumping its version) makes its stored results stale;
    `arena run` retrains them, and until it has, old and new numbers are never mixed.
    """
    if "method_code" not in frame.columns:
        return frame
    codes = frame[frame["method_code"] != ""]
    if codes.groupby("method")["method_code"].nunique().max() <= 1:
        return frame
    last = (
        codes.sort_values("finished_at", kind="stable")
        .drop_duplicates("method", keep="last")
        .set_index("method")["method_code"]
    )
    current = frame["method"].map(last)
    keep = current.isna() | (frame["method_code"] == current)
    dropped = sorted(frame.loc[~keep, "method"].unique())
    warnings.append(
        f"{int((~keep).sum())} result(s) of {_listing(dropped)} from older code of the method "
        "(stale) were left out; rerun `arena run` to retrain them"
    )
    return frame[keep]


def latest_recipe(frame: pandas.DataFrame, warnings: list[str]) -> pandas.DataFrame:
    """Keep, per (dataset, scenario), the results of the recipe that finished last;
    append a note to ``warnings`` when any are left out.

    Editing arena.toml changes the recipe hash of new results; older results stay in
    the store but must not be averaged, ranked or paired with the new ones.
    """
    if "recipe_hash" not in frame.columns or frame["recipe_hash"].nunique() <= 1:
        return frame
    place = ["dataset", "scenario"]
    last = (
        frame.groupby([*place, "recipe_hash"], sort=False)["finished_at"]
        .max()
        .reset_index()
        .sort_values("finished_at", kind="stable")
        .drop_duplicates(place, keep="last")[[*place, "recipe_hash"]]
    )
    keep = frame.set_index([*place, "recipe_hash"]).index.isin(
        last.set_index([*place, "recipe_hash"]).index
    )
    dropped = int((~keep).sum())
    if dropped:
        warnings.append(
            f"{dropped} result(s) from an older recipe (arena.toml changed since) were left out; "
            "rerun `arena run` to measure them under the current recipe"
        )
    return frame[keep]
