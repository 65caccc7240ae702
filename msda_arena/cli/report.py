"""``arena report``: the leaderboard, paired statistics, plots and pages from the store.

The report and store modules import nothing heavy at module level (pandas, matplotlib
and friends load inside their functions), so they are imported here at the top and
``arena --help`` stays instant; the method registry and arena.toml's loader (torch)
load inside, when needed. torch loads only to canonicalise a spec that is not in the
store, to read a --config file, and for ``--format html`` (the pair-weight profiles).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.report import build_report, load_published, render
from msda_arena.report.metrics import DEFAULT_METRIC, get_metric, metric_help
from msda_arena.report.plots import figures_png
from msda_arena.report.published import default_published_files
from msda_arena.report.render import FORMATS as FORMAT_NAMES
from msda_arena.report.selection import REPORT_COLUMNS
from msda_arena.store.results import load_results


def _canonical(spec: str, known: set[str] | frozenset[str] = frozenset()) -> str:
    """The canonical form of a ``--method``/``--compare`` spec.

    A spec already present in the store is canonical (the store holds canonical specs),
    so that case needs no plugin loading. Otherwise the method registry canonicalises
    it (``"hmix( r = 0.5 )"`` -> ``"hmix"``); if that is unavailable, or the method is
    not installed (its results may still be in the store), the spec is used with its
    spaces removed.
    """
    text = "".join(spec.split())
    if text in known:
        return text
    try:
        from msda_arena.methods.registry import get_method

        return str(get_method(text).spec)
    except Exception:  # registry missing, plugin not installed, malformed spec
        return text


def _warn(message: str) -> None:
    print(f"arena: warning: {message}", file=sys.stderr)


def _info(message: str) -> None:
    print(f"arena: {message}", file=sys.stderr)


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
        help="Write accuracy.png and scenarios.png (of the --metric) into this directory.",
    ),
    published: bool = typer.Option(
        False, "--published", help="Show the paper's numbers beside the measured rows."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Fail on a corrupt or foreign file instead of skipping it."
    ),
) -> None:
    """Leaderboard of stored results: mean ± std per cell, ranks, paired tests, plots."""
    if fmt not in FORMAT_NAMES:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMAT_NAMES)}")
    chosen = get_metric(metric)  # an unknown name fails before the store is read

    if results is None or config is not None:  # a --config file is checked even then
        from msda_arena.grid.config import default_results

        configured = Path(default_results(config))
        results = results if results is not None else configured
    if not results.exists():
        raise StoreError(
            f"no result store at {results}; run `arena run` first or point --results at one"
        )
    frame, warnings = load_results(results, strict=strict, columns=REPORT_COLUMNS)
    for warning in warnings:
        _warn(f"skipped {warning}")
    if len(frame) == 0:
        raise StoreError(
            f"no results in {results}; run `arena run` first or point --results at a store"
        )
    known = set(frame["method"].unique())
    methods = [_canonical(m, known) for m in method] if method else None
    target = _canonical(compare, known) if compare else None
    pub = None
    if published:
        files = default_published_files(results)
        if not files:
            raise StoreError(
                f"no published numbers in {results / 'published'} nor in the package's "
                "msda_arena/published/; reinstall msda-arena"
            )
        pub = load_published(files)
    rep = build_report(
        frame,
        profile=profile,
        methods=methods,
        compare=target,
        published=pub,
        warnings=warnings,
        metric=chosen,
    )
    for warning in rep.warnings[len(warnings) :]:
        _warn(warning)
    if rep.compare_method is None:
        _info("no paired comparison: name the method to test with --compare SPEC")
    figures = None
    if plots is not None or fmt == "html":
        figures = figures_png(rep)
    if plots is not None:
        written = _save(figures or {}, plots)
        for path in written:
            _info(f"wrote {path}")
    color = fmt == "table" and out is None and sys.stdout.isatty()
    text = render(rep, fmt, color=color, figures=figures)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        _info(f"wrote {out}")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def _save(figures: dict[str, bytes], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in figures.items():
        path = directory / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    return written
