"""The one path from a result store to what the user sees: ``arena report`` calls
:func:`leaderboard`, and ``arena run`` calls :func:`leaderboard_after_run` with the
methods it just ran. Output goes to stdout (or ``out``); warnings and notes to stderr.

Imports nothing heavy at module level (the CLI imports this at start-up).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.grid.config import default_results
from msda_arena.report.build import Report, build_report
from msda_arena.report.metrics import DEFAULT_METRIC, get_metric
from msda_arena.report.plots import figures_png, write_plots
from msda_arena.report.published import default_published_files, load_published
from msda_arena.report.render import FORMATS, render
from msda_arena.report.selection import REPORT_COLUMNS
from msda_arena.store.results import load_results

if TYPE_CHECKING:
    import pandas

__all__ = ["leaderboard", "leaderboard_after_run"]


def _say(message: str, warning: bool = False) -> None:
    print(f"arena: {'warning: ' if warning else ''}{message}", file=sys.stderr)


def _canonical(spec: str, known: set[str] | frozenset[str] = frozenset()) -> str:
    """The canonical form of a ``--method``/``--compare`` spec.

    A spec already in the store is canonical (the store holds canonical specs), so that
    case loads no plugin. Otherwise the method registry canonicalises it
    (``"hmix( r = 0.5 )"`` -> ``"hmix"``); if that fails, or the method is not installed
    (its results may still be in the store), the spec is used with its spaces removed.
    """
    text = "".join(spec.split())
    if text in known:
        return text
    try:
        # Here, not at the top: the registry imports torch and the plugins, which only a
        # spec that is not in the store needs.
        from msda_arena.methods.registry import get_method

        return str(get_method(text).spec)
    except Exception:  # registry missing, plugin not installed, malformed spec
        return text


def _store(results: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None) -> Path:
    """The result store: ``results``, else ``[defaults] results`` of ``config`` (checked
    even when ``results`` is given), of ./arena.toml, else ./results."""
    if results is None or config is not None:
        configured = Path(default_results(config))
        results = results if results is not None else configured
    root = Path(results)
    if not root.exists():
        raise StoreError(
            f"no result store at {root}; run `arena run` first or point --results at one"
        )
    return root


def _published(root: Path) -> pandas.DataFrame:
    files = default_published_files(root)
    if not files:
        raise StoreError(
            f"no published numbers in {root / 'published'} nor in the package's "
            "msda_arena/published/; reinstall msda-arena"
        )
    return load_published(files)


def leaderboard(
    results: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    methods: Sequence[str] | None = None,
    compare: str | None = None,
    metric: str = DEFAULT_METRIC,
    fmt: str = "table",
    out: str | os.PathLike[str] | None = None,
    plots: str | os.PathLike[str] | None = None,
    published: bool = False,
    strict: bool = False,
) -> Report:
    """Read the store, build the report, write its plots and print it: ``arena report``.

    Args:
        results: the result store (default: ``[defaults] results`` of ``config``, else of
            ./arena.toml, else ./results).
        config: an arena.toml whose ``[defaults] results`` is the default store.
        profile, methods, compare, metric: as :func:`~msda_arena.report.build.build_report`
            takes them, except that specs are canonicalised first (``"hmix( r=0.5 )"``).
        fmt: one of :data:`~msda_arena.report.render.FORMATS`.
        out: write the output to this file (default: stdout).
        plots: write ``accuracy.png`` and ``scenarios.png`` into this folder.
        published: show the paper's numbers beside the measured rows.
        strict: fail on a corrupt or foreign file instead of skipping it with a warning.

    Returns the report shown. Raises :class:`UsageError` or :class:`StoreError` with one
    line (an unknown format, metric, profile or method; no store, no results).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    chosen = get_metric(metric)  # an unknown name fails before the store is read
    root = _store(results, config)
    frame, warnings = load_results(root, strict=strict, columns=REPORT_COLUMNS)
    for warning in warnings:
        _say(f"skipped {warning}", warning=True)
    if len(frame) == 0:
        raise StoreError(
            f"no results in {root}; run `arena run` first or point --results at a store"
        )
    known = set(frame["method"].unique())
    report = build_report(
        frame,
        profile=profile,
        methods=[_canonical(m, known) for m in methods] if methods else None,
        compare=_canonical(compare, known) if compare else None,
        published=_published(root) if published else None,
        warnings=warnings,
        metric=chosen,
    )
    for warning in report.warnings[len(warnings) :]:
        _say(warning, warning=True)
    if report.compare_method is None:
        _say("no paired comparison: name the method to test with --compare SPEC")
    figures = figures_png(report) if plots is not None or fmt == "html" else None
    if plots is not None:
        for path in write_plots(report, plots, figures=figures):
            _say(f"wrote {path}")
    color = fmt == "table" and out is None and sys.stdout.isatty()
    text = render(report, fmt, color=color, figures=figures)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return report
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(text, encoding="utf-8")
    _say(f"wrote {out}")
    return report


def leaderboard_after_run(
    results: str | os.PathLike[str], profile: str, methods: Sequence[str], compare: str
) -> None:
    """What ``arena run`` prints when its cells are done: :func:`leaderboard` of ``methods``
    (with the baselines and the paper's numbers) comparing ``compare``, then how to see
    more. Never raises: the run's results are stored whatever the report does, so a
    failure is one line saying which ``arena report`` command to run instead."""
    hint = f"arena report --profile {profile} --results {results}"
    try:
        leaderboard(results, profile=profile, methods=methods, compare=compare, published=True)
    except Exception as exc:  # the run's results are stored whatever the report does
        _say(f"could not render the leaderboard ({type(exc).__name__}: {exc}); run `{hint}`")
    else:
        print(f"More: {hint} --format html --out leaderboard.html --plots plots/", file=sys.stderr)
