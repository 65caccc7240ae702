"""Paired comparison of one method against each baseline over matched cells.

Two results are matched when they share dataset, architecture, scenario and seed and
both runs succeeded and measured the metric (a NaN metric, stored before the metric
existed, is missing); see :mod:`msda_arena.report.stats` for the test and its rules,
and :mod:`msda_arena.api.metrics` for the metrics and their directions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from msda_arena.api.metrics import DEFAULT_METRIC, Metric, get_metric
from msda_arena.api.record import CELL_IDENTITY
from msda_arena.grid import COMPARED_BASELINES
from msda_arena.report.stats import PairedResult, paired_test

if TYPE_CHECKING:
    import pandas

__all__ = ["MATCH_KEYS", "compare_to_baselines", "matched_pairs"]

#: What makes two results a pair: the cell's identity but the method.
MATCH_KEYS: tuple[str, ...] = tuple(k for k in CELL_IDENTITY if k != "method")


def matched_pairs(
    frame: pandas.DataFrame,
    method: str,
    baseline: str,
    metric: str | Metric = DEFAULT_METRIC,
) -> pandas.DataFrame:
    """Matched successful results that measured ``metric``: columns MATCH_KEYS +
    ``method_value`` + ``baseline_value`` (the metric in its display unit)."""
    metric = get_metric(metric)
    keys = list(MATCH_KEYS)
    ok = frame.loc[frame["status"] == "ok", [*keys, "method"]].assign(_v=metric.values(frame))
    ok = ok[ok["_v"].notna()]
    a = ok.loc[ok["method"] == method, [*keys, "_v"]].rename(columns={"_v": "_a"})
    b = ok.loc[ok["method"] == baseline, [*keys, "_v"]].rename(columns={"_v": "_b"})
    pairs = a.merge(b, on=keys, how="inner").sort_values(keys, kind="stable")
    return pairs.rename(columns={"_a": "method_value", "_b": "baseline_value"}).reset_index(
        drop=True
    )


def compare_to_baselines(
    frame: pandas.DataFrame,
    method: str,
    baselines: Sequence[str] = COMPARED_BASELINES,
    metric: str | Metric = DEFAULT_METRIC,
) -> list[PairedResult]:
    """One :class:`PairedResult` per baseline (the method itself is skipped), on ``metric``.

    When every result of the method (or of a baseline) failed, the verdict says so and
    quotes the first error, rather than asking for runs that were made."""
    metric = get_metric(metric)
    keys = list(MATCH_KEYS)
    involved = frame.loc[
        (frame["status"] == "ok") & frame["method"].isin([method, *baselines]),
        [*keys, "status", "method", metric.column],
    ]
    results = []
    for baseline in baselines:
        if baseline == method:
            continue
        pairs = matched_pairs(involved, method, baseline, metric)
        result = paired_test(
            method,
            baseline,
            pairs["method_value"].tolist(),
            pairs["baseline_value"].tolist(),
            seeds=pairs["seed"].nunique() if "seed" in pairs else None,
            higher_is_better=metric.higher_is_better,
        )
        failed = _all_failed(frame, method) or _all_failed(frame, baseline)
        results.append(replace(result, verdict=failed) if result.n == 0 and failed else result)
    return results


def _all_failed(frame: pandas.DataFrame, method: str) -> str | None:
    """The verdict when every result of ``method`` failed (quoting the first error), else
    ``None``."""
    mine = frame[frame["method"] == method]
    if len(mine) == 0 or (mine["status"] == "ok").any():
        return None
    error = " ".join(str(mine["error"].iloc[0]).split()) if "error" in mine.columns else ""
    error = error if len(error) <= 160 else error[:157] + "..."
    return (
        f"every {method} cell failed ({len(mine)} failed result(s)), so nothing to pair"
        + (f"; the first error: {error}" if error else "")
        + "; each failed result stores its error in the store, and `arena run` lists them"
    )
