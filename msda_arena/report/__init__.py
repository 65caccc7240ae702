"""Leaderboards, paired statistics, plots and pages from the result store.

Usable without the CLI::

    from msda_arena.store.results import load_results
    from msda_arena.report import build_report, load_published, render, write_plots

    frame, warnings = load_results("results")
    report = build_report(frame, compare="mymask", published=load_published())
    print(render(report, "markdown"))
    write_plots(report, "plots/")
    ece = build_report(frame, compare="mymask", metric="ece")  # lower is better

One module per concern, each saying what it owns. Nothing here imports torch, except
:func:`profiles_png` when it runs.
"""

from __future__ import annotations

from msda_arena.api.metrics import DEFAULT_METRIC, METRICS, Metric, get_metric
from msda_arena.grid import COMPARED_BASELINES as BASELINES
from msda_arena.grid import REFERENCE_METHODS
from msda_arena.report.build import Report, build_report, default_compare
from msda_arena.report.compare import compare_to_baselines, matched_pairs
from msda_arena.report.html import html_page
from msda_arena.report.interaction import (
    INTERACTION_SCENARIOS,
    Interaction,
    scenario_interaction,
)
from msda_arena.report.plots import figures_png, write_plots
from msda_arena.report.profiles import ProfilePlot, profiles_png
from msda_arena.report.published import default_published_files, load_published
from msda_arena.report.render import FORMATS, render, report_dict
from msda_arena.report.selection import select_results
from msda_arena.report.show import leaderboard, leaderboard_after_run
from msda_arena.report.stats import PairedResult, paired_test, t_interval
from msda_arena.report.table import Cell, Column, Leaderboard, PublishedRow, Row, build_leaderboard

__all__ = [
    "BASELINES", "DEFAULT_METRIC", "FORMATS", "INTERACTION_SCENARIOS", "METRICS",
    "REFERENCE_METHODS", "Cell", "Column", "Interaction", "Leaderboard", "Metric",
    "PairedResult", "ProfilePlot", "PublishedRow", "Report", "Row", "build_leaderboard",
    "build_report", "compare_to_baselines", "default_compare", "default_published_files",
    "figures_png", "get_metric", "html_page", "leaderboard", "leaderboard_after_run",
    "load_published", "matched_pairs", "paired_test", "profiles_png", "render", "report_dict",
    "scenario_interaction", "select_results", "t_interval", "write_plots"
]  # fmt: skip
