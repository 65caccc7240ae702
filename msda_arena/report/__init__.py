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

import importlib
from typing import Any

# Eager: the CLI needs FORMATS anyway, and a lazy ``render`` would be shadowed by the
# submodule of that name once anything imports it.
from msda_arena.report.render import FORMATS, render, report_dict

#: Where each public name lives. Loaded on first use (:func:`__getattr__`): the CLI imports
#: this package, and ``arena --help`` must not load pandas and the renderers.
_OWNERS: dict[str, tuple[str, ...]] = {
    "msda_arena.api.metrics": ("DEFAULT_METRIC", "METRICS", "Metric", "get_metric"),
    "msda_arena.grid": ("BASELINES", "REFERENCE_METHODS"),
    "msda_arena.report.build": ("Report", "build_report", "default_compare"),
    "msda_arena.report.compare": ("compare_to_baselines", "matched_pairs"),
    "msda_arena.report.html": ("html_page",),
    "msda_arena.report.interaction": (
        "INTERACTION_SCENARIOS", "Interaction", "interaction_pairs", "scenario_interaction",
        "scenario_interactions",
    ),
    "msda_arena.report.plots": ("figures_png", "write_plots"),
    "msda_arena.report.profiles": ("ProfilePlot", "profiles_png"),
    "msda_arena.report.published": ("default_published_files", "load_published"),
    "msda_arena.report.selection": ("select_results",),
    "msda_arena.report.show": ("leaderboard", "leaderboard_after_run"),
    "msda_arena.report.stats": ("PairedResult", "paired_test", "t_interval"),
    "msda_arena.report.table": (
        "Cell", "Column", "Leaderboard", "PublishedRow", "Row", "build_leaderboard"
    ),
}  # fmt: skip
_HOME = {name: module for module, names in _OWNERS.items() for name in names}
_RENAMED = {"BASELINES": "COMPARED_BASELINES"}

__all__ = [
    "BASELINES", "DEFAULT_METRIC", "FORMATS", "INTERACTION_SCENARIOS", "METRICS",
    "REFERENCE_METHODS", "Cell", "Column", "Interaction", "Leaderboard", "Metric",
    "PairedResult", "ProfilePlot", "PublishedRow", "Report", "Row", "build_leaderboard",
    "build_report", "compare_to_baselines", "default_compare", "default_published_files",
    "figures_png", "get_metric", "html_page", "interaction_pairs", "leaderboard",
    "leaderboard_after_run",
    "load_published", "matched_pairs", "paired_test", "profiles_png", "render", "report_dict",
    "scenario_interaction", "scenario_interactions", "select_results", "t_interval",
    "write_plots"
]  # fmt: skip


def __getattr__(name: str) -> Any:
    """Import the module that owns ``name`` (see :data:`_OWNERS`) and return the name."""
    if name not in _HOME:
        raise AttributeError(f"module 'msda_arena.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), _RENAMED.get(name, name))
    globals()[name] = value
    return value
