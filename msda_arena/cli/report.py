"""``arena report``: parse the command line, then :func:`msda_arena.report.show.leaderboard`.

The report modules import nothing heavy at module level (pandas, matplotlib and torch
load inside their functions), so ``arena --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from msda_arena.api.metrics import DEFAULT_METRIC, metric_help
from msda_arena.report.render import FORMATS as FORMAT_NAMES


def report(
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Report this profile (needed when the store holds several)."
    ),
    results: Path | None = typer.Option(
        None,
        "--results",
        help="The result store directory (default: [defaults] results of the --config "
        "file, else of ./arena.toml, else ./results).",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="arena.toml whose [defaults] results is the default store, as for arena run "
        "(--results wins).",
    ),
    method: list[str] | None = typer.Option(
        None,
        "--method",
        "-m",
        help="Show only this method spec (repeatable); the baselines are always shown. "
        "The first one that is not a built-in method is compared against the baselines.",
    ),
    scenario: list[str] | None = typer.Option(
        None,
        "--scenario",
        help="Report only this crop scenario's cells (repeatable): the leaderboard, the "
        "paired tests, the scenario interactions and the plots; the title names it.",
    ),
    compare: str | None = typer.Option(
        None, "--compare", "-c", help="Compare this method spec against each baseline."
    ),
    metric: str = typer.Option(
        DEFAULT_METRIC,
        "--metric",
        help=f"Rank and compare by this metric: {metric_help()}. ECE is shown in % "
        "(the stored fraction × 100).",
    ),
    fmt: str = typer.Option(
        "table", "--format", "-f", help=f"Output format: {', '.join(FORMAT_NAMES)}."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the output to this file."),
    plots: Path | None = typer.Option(
        None,
        "--plots",
        help="Write accuracy.png and scenarios.png (of the --metric) and curves.png (the "
        "learning curves) into this directory.",
    ),
    published: bool = typer.Option(
        False, "--published", help="Show the paper's numbers beside the measured rows."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on a corrupt or foreign file instead of skipping it."
    ),
) -> None:
    """Leaderboard of stored results: mean ± std per cell, ranks, paired tests, plots."""
    from msda_arena.report.show import leaderboard  # start-up: --help need not load it

    leaderboard(
        results,
        config=config,
        profile=profile,
        methods=method,
        scenarios=scenario,
        compare=compare,
        metric=metric,
        fmt=fmt,
        out=out,
        plots=plots,
        published=published,
        strict=strict,
    )
