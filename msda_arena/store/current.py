"""Which stored results are current: the latest method code and the latest recipe per
place, so old and new numbers are never mixed (the report and the gradient maps both
ask)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas

__all__ = ["latest_code", "latest_recipe", "listing"]


def listing(values: Sequence[str], limit: int = 12) -> str:
    """``values`` joined with commas, the first ``limit`` of them and a count beyond."""
    values = list(values)
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


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
        f"{int((~keep).sum())} result(s) of {listing(dropped)} from older code of the method "
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
            f"{dropped} result(s) from an older recipe (arena.toml, --threads or --deterministic "
            "changed since) were left out; "
            "rerun `arena run` to measure them under the current recipe"
        )
    return frame[keep]
