"""Paired comparison of one method against each baseline over matched cells.

Two results are matched when they share dataset, architecture, scenario and seed and
both runs succeeded; see :mod:`msda_arena.report.stats` for the test and its rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from msda_arena.report.selection import BASELINES
from msda_arena.report.stats import PairedResult, paired_test

if TYPE_CHECKING:
    import pandas

__all__ = ["MATCH_KEYS", "compare_to_baselines", "matched_pairs"]

#: What makes two results a pair.
MATCH_KEYS: tuple[str, ...] = ("dataset", "arch", "scenario", "seed")


def matched_pairs(frame: pandas.DataFrame, method: str, baseline: str) -> pandas.DataFrame:
    """Matched successful results: columns MATCH_KEYS + ``method`` + ``baseline`` (top1)."""
    ok = frame[frame["status"] == "ok"]
    keys = list(MATCH_KEYS)
    a = ok.loc[ok["method"] == method, [*keys, "top1"]].rename(columns={"top1": "_a"})
    b = ok.loc[ok["method"] == baseline, [*keys, "top1"]].rename(columns={"top1": "_b"})
    pairs = a.merge(b, on=keys, how="inner").sort_values(keys, kind="stable")
    return pairs.rename(columns={"_a": "method_top1", "_b": "baseline_top1"}).reset_index(drop=True)


def compare_to_baselines(
    frame: pandas.DataFrame, method: str, baselines: Sequence[str] = BASELINES
) -> list[PairedResult]:
    """One :class:`PairedResult` per baseline (the method itself is skipped)."""
    keys = list(MATCH_KEYS)
    involved = frame.loc[
        (frame["status"] == "ok") & frame["method"].isin([method, *baselines]),
        [*keys, "status", "method", "top1"],
    ]
    results = []
    for baseline in baselines:
        if baseline == method:
            continue
        pairs = matched_pairs(involved, method, baseline)
        results.append(
            paired_test(
                method,
                baseline,
                pairs["method_top1"].tolist(),
                pairs["baseline_top1"].tolist(),
                seeds=pairs["seed"].nunique() if "seed" in pairs else None,
            )
        )
    return results
