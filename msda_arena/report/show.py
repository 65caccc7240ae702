"""The one path from a result store to the screen: ``arena report`` calls
:func:`leaderboard`, ``arena run`` :func:`leaderboard_after_run` with the methods it ran.
Output goes to stdout (or a file), warnings and notes to stderr. Nothing heavy at import."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from msda_arena.api.errors import StoreError, UsageError
from msda_arena.api.metrics import DEFAULT_METRIC, get_metric
from msda_arena.report.build import Report, build_report
from msda_arena.report.plots import figures_png, write_plots
from msda_arena.report.published import default_published_files, load_published
from msda_arena.report.render import FORMATS, render
from msda_arena.report.selection import REPORT_COLUMNS
from msda_arena.store.results import load_results

__all__ = ["leaderboard", "leaderboard_after_run"]


def _say(message: str, warning: bool = False) -> None:
    print(f"arena: {'warning: ' if warning else ''}{message}", file=sys.stderr)


def _canonical(spec: str, known: set[str] | frozenset[str] = frozenset()) -> str:
    """The canonical form of a spec: as is when the store holds it, else the registry's
    (``"hmix( r = 0.5 )"`` -> ``"hmix"``), else (not installed) without its spaces."""
    text = "".join(spec.split())
    if text in known:
        return text
    try:
        # Here, not at the top: the registry imports torch and the plugins.
        from msda_arena.methods.registry import get_method

        return str(get_method(text).spec)
    except Exception:  # registry missing, plugin not installed, malformed spec
        return text


def _store(results: str | os.PathLike[str] | None, config: str | os.PathLike[str] | None) -> Path:
    """``results``, else ``[defaults] results`` of ``config`` (checked even when
    ``results`` is given), of ./arena.toml, else ./results; it must exist."""
    # Here, not at the top: arena.toml's parser is not needed for `arena --help`.
    from msda_arena.grid.config import default_results

    configured = default_results(config) if results is None or config is not None else None
    root = Path(results if results is not None else configured)
    if not root.exists():
        raise StoreError(
            f"no result store at {root}; run `arena run` first or point --results at one"
        )
    return root


def leaderboard(
    results: str | os.PathLike[str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    methods: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    compare: str | None = None,
    metric: str = DEFAULT_METRIC,
    fmt: str = "table",
    out: str | os.PathLike[str] | None = None,
    plots: str | os.PathLike[str] | None = None,
    published: bool = False,
    strict: bool = False,
) -> Report:
    """``arena report``: read the store, build the report, write its plots, print it.

    The arguments are ``arena report``'s options (``methods`` is ``--method``,
    ``scenarios`` ``--scenario``, ``fmt`` ``--format``); specs are canonicalised, the rest go to
    :func:`~msda_arena.report.build.build_report`. Returns the report shown; raises
    :class:`UsageError` or :class:`StoreError` (one line) for bad options or no results.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    chosen = get_metric(metric)  # an unknown name fails before the store is read
    root = _store(results, config)
    drawn = plots is not None or fmt == "html"  # the curves are read only to be drawn
    columns = (*REPORT_COLUMNS, "curve") if drawn else REPORT_COLUMNS
    frame, warnings = load_results(root, strict=strict, columns=columns)
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
        scenarios=scenarios or None,
        compare=_canonical(compare, known) if compare else None,
        published=load_published(default_published_files(root)) if published else None,
        warnings=warnings,
        metric=chosen,
    )
    for warning in report.warnings[len(warnings) :]:
        _say(warning, warning=True)
    if report.compare_method is None:
        _say("no paired comparison: name the method to test with --compare SPEC")
    figures = figures_png(report) if drawn else None
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
    """What ``arena run`` prints at the end: :func:`leaderboard` of ``methods`` (and the
    baselines, with the paper's numbers) comparing ``compare``, then how to see more. Never
    raises: the results are stored, so a failure says which ``arena report`` to run."""
    hint = f"arena report --profile {profile} --results {results}"
    try:
        leaderboard(results, profile=profile, methods=methods, compare=compare, published=True)
    except Exception as exc:  # the run's results are stored whatever the report does
        _say(f"could not render the leaderboard ({type(exc).__name__}: {exc}); run `{hint}`")
    else:
        print(f"More: {hint} --format html --out leaderboard.html --plots plots/", file=sys.stderr)
