"""One report: selection, leaderboard, paired comparison, scenario interactions and
published rows together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msda_arena.api.errors import UsageError
from msda_arena.api.metrics import DEFAULT_METRIC, Metric, get_metric
from msda_arena.grid import REFERENCE_METHODS
from msda_arena.report.compare import compare_to_baselines
from msda_arena.report.interaction import DEFAULT_METHODS, Interaction, scenario_interactions
from msda_arena.report.regime import vanilla_lead_note
from msda_arena.report.selection import select_results
from msda_arena.report.stats import PairedResult
from msda_arena.report.table import Leaderboard, build_leaderboard

if TYPE_CHECKING:
    import pandas

__all__ = ["Report", "build_report", "default_compare"]


@dataclass
class Report:
    """Everything a renderer needs.

    Attributes:
        leaderboard: columns, measured rows in display order, published rows.
        comparisons: the compared method against each baseline (empty if none chosen).
        compare_method: the method compared, or ``None``.
        profile: the profile the results come from.
        frame: the selected result records (one per cell), for plots.
        warnings: what was left out and why (bad files, superseded results, results
            that did not measure the metric).
        interactions: the scenario interaction of two methods (by default CutMix and
            Mixup; :mod:`msda_arena.report.interaction`) for every pair of the report's
            scenarios, the paper's pair (large-crop, small-crop) first, then in the grid's
            scenario order; empty when there is no pair with the matched runs.
        interaction_notes: for each interaction that cannot be computed (the paper's pair
            with one of its scenarios missing, a pair without the matched runs), the
            one-line reason (printed with the notes under the table; not a warning:
            nothing is wrong with the store).
        regime_note: when ``vanilla`` leads an accuracy leaderboard, the one-line reason
            read from its training loss (:func:`~msda_arena.report.regime.vanilla_lead_note`).
        scenarios: the scenarios the report was restricted to (``--scenario``), in the
            grid's order; ``None`` when it covers every scenario of the profile.
    """

    leaderboard: Leaderboard
    comparisons: list[PairedResult]
    compare_method: str | None
    profile: str
    frame: pandas.DataFrame
    warnings: list[str] = field(default_factory=list)
    interactions: tuple[Interaction, ...] = ()
    interaction_notes: tuple[str, ...] = ()
    regime_note: str | None = None
    scenarios: tuple[str, ...] | None = None

    @property
    def n_results(self) -> int:
        """Result records behind the table (successful and failed)."""
        return len(self.frame)

    @property
    def metric(self) -> Metric:
        """The metric the leaderboard and the paired tests are built on."""
        return self.leaderboard.metric

    @property
    def title(self) -> str:
        """A one-line title: datasets, profile (and the scenarios kept, when the report was
        restricted to some), and the metric with its unit and direction."""
        datasets = ", ".join(self.leaderboard.datasets)
        kept = ""
        if self.scenarios is not None:
            noun = "scenario" if len(self.scenarios) == 1 else "scenarios"
            kept = f"; {noun} {', '.join(self.scenarios)} only"
        return (
            f"msda-arena leaderboard: {datasets} (profile {self.profile}{kept}): "
            f"{self.metric.caption}"
        )


def default_compare(methods_in_store: Sequence[str], requested: Sequence[str] | None) -> str | None:
    """The method to compare against the baselines when none is named.

    The first requested method that is not one of the arena's own
    (:data:`~msda_arena.grid.REFERENCE_METHODS`); else the only such method in
    the results, if there is exactly one; else ``None``.
    """
    for spec in requested or ():
        if spec not in REFERENCE_METHODS:
            return spec
    others = sorted(m for m in set(methods_in_store) if m not in REFERENCE_METHODS)
    return others[0] if len(others) == 1 else None


def build_report(
    frame: pandas.DataFrame,
    *,
    profile: str | None = None,
    methods: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    compare: str | None = None,
    published: pandas.DataFrame | None = None,
    warnings: Sequence[str] = (),
    metric: str | Metric = DEFAULT_METRIC,
    interaction: tuple[str, str] | None = DEFAULT_METHODS,
) -> Report:
    """Build a report from stored results.

    Args:
        frame: records from :func:`msda_arena.store.results.load_results`.
        profile: the profile to report (required when the store holds several).
        methods: canonical specs of the rows to show (baselines are always kept).
        scenarios: report only these crop scenarios' cells (leaderboard, paired tests,
            interactions, plots); each must have results in the profile. ``None``: all.
        compare: the method to compare against each baseline; by default
            :func:`default_compare`.
        published: published numbers to show beside the measured rows.
        warnings: warnings from loading, carried into the report.
        metric: what the leaderboard and the paired tests are built on, a name of
            :data:`~msda_arena.api.metrics.METRICS`; results that did not measure it are
            missing for it (one warning counts them); published numbers are top-1.
        interaction: methods (A, B) of the scenario interactions
            (:mod:`~msda_arena.report.interaction`) on ``metric``; ``None`` skips them, and
            ``Report.interaction_notes`` say why one is missing when it cannot be computed.

    Raises:
        StoreError: no results.
        UsageError: unknown profile, method, scenario or metric, or several profiles and
            none chosen.
    """
    metric = get_metric(metric)
    selection = select_results(frame, profile=profile, methods=methods, scenarios=scenarios)
    chosen = selection.frame
    present = [str(m) for m in chosen["method"].unique()]
    if compare is not None and compare not in present:
        raise UsageError(
            f"--compare {compare!r}: no results for that method in profile "
            f"{selection.profile!r}; pick one of: {', '.join(sorted(present))}"
        )
    target = compare if compare is not None else default_compare(present, selection.methods)
    shown = present if selection.methods is not None else None
    notes = list(selection.warnings)
    unmeasured = int(((chosen["status"] == "ok") & metric.values(chosen).isna()).sum())
    if unmeasured:
        notes.append(
            f"{unmeasured} successful result(s) have no {metric.short} (not measured: stored "
            f"before the metric existed); they count as missing for --metric {metric.name}, "
            "never averaged; rerun `arena run --force` on those cells to measure it"
        )
    if published is not None and not metric.published:
        notes.append(f"published numbers are top-1 accuracy; not shown for --metric {metric.name}")
        published = None
    board = build_leaderboard(chosen, published=published, published_methods=shown, metric=metric)
    comparisons = compare_to_baselines(chosen, target, metric=metric) if target else []
    interactions: tuple[Interaction, ...] = ()
    reasons: tuple[str, ...] = ()
    if interaction is not None:
        interactions, reasons = scenario_interactions(
            chosen, tuple(interaction), metric=metric, scenarios=selection.scenarios
        )
    return Report(
        leaderboard=board,
        comparisons=comparisons,
        compare_method=target,
        profile=selection.profile,
        frame=chosen,
        warnings=[*warnings, *notes],
        interactions=interactions,
        interaction_notes=reasons,
        regime_note=vanilla_lead_note(chosen, board),
        scenarios=tuple(selection.scenarios) if selection.scenarios is not None else None,
    )
