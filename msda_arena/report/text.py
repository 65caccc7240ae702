"""Text renderings of a :class:`~msda_arena.report.build.Report`.

Formats: ``table`` (rich, for a terminal), ``markdown`` and ``latex`` (tabulate),
``csv`` and ``json`` (for machines, full precision); ``html`` (one self-contained page)
lives in :mod:`msda_arena.report.html`, and :mod:`msda_arena.report.render` looks a format
up by name.

The numbers are those of the report's metric (:mod:`msda_arena.api.metrics`), named
with its unit and direction in the title. The marks (``±``, ``n=``, ``—``, ``★``, ``†``,
``(published)``) are the same in every human format and explained by :func:`legend`,
the notes printed under every table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msda_arena.grid import COMPARED_BASELINES
from msda_arena.report.interaction import INTERACTION_SCENARIOS
from msda_arena.report.stats import ALPHA, MIN_PAIRS, TIE_TOLERANCE

if TYPE_CHECKING:
    from msda_arena.report.build import Report
    from msda_arena.report.interaction import Interaction
    from msda_arena.report.stats import PairedResult
    from msda_arena.report.table import Cell, Row

__all__ = [
    "BEST_MARK", "INCOMPLETE_MARK", "MISSING", "comparison_table", "format_cell",
    "format_locality", "interaction_table", "interaction_title", "legend", "to_csv", "to_json",
    "to_latex", "to_markdown", "to_rich"
]  # fmt: skip

BEST_MARK = "★"
INCOMPLETE_MARK = "†"
MISSING = "—"
PUBLISHED_SUFFIX = " (published)"


def format_cell(cell: Cell) -> str:
    """``"74.83 ± 0.21 (n=3)"``, ``"75.10 (n=1, 2 failed)"``, ``"failed (n=2)"`` or ``"—"``."""
    if cell.n == 0:
        return f"failed (n={cell.n_failed})" if cell.n_failed else MISSING
    text = f"{cell.mean:.2f}"
    if cell.n >= 2:
        text += f" ± {cell.std:.2f}"
    inner = f"n={cell.n}" + (f", {cell.n_failed} failed" if cell.n_failed else "")
    return f"{text} ({inner})"


def _num(value: float, spec: str, complete: bool = True) -> str:
    if value is None or math.isnan(value):
        return MISSING
    return format(value, spec) + ("" if complete else INCOMPLETE_MARK)


def _p(p: float) -> str:
    if math.isnan(p):
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


@dataclass
class _Piece:
    text: str
    best: bool = False
    status: str = "ok"


@dataclass
class _Line:
    label: str
    pieces: list[_Piece]
    published: bool = False


def _headers(report: Report, sep: str) -> list[str]:
    board = report.leaderboard
    multi = len(board.datasets) > 1
    return [
        "method",
        *(c.label(with_dataset=multi, sep=sep) for c in board.columns),
        "avg",
        "avg rank",
        "Δ best baseline",
        "locality",
    ]


def format_locality(value: float) -> str:
    """``"0.79"``, ``"0.00"`` (never ``"-0.00"``) or ``"—"`` when the method has none."""
    if value is None or math.isnan(value):
        return MISSING
    text = f"{value:.2f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def _row_summary(row: Row) -> list[_Piece]:
    return [
        _Piece(_num(row.average, ".2f", row.complete)),
        _Piece(_num(row.avg_rank, ".2f", row.complete)),
        _Piece(_num(row.delta, "+.2f", row.delta_complete)),
        _Piece(format_locality(row.locality)),
    ]


def _lines(report: Report) -> list[_Line]:
    board = report.leaderboard
    lines = [
        _Line(
            row.method,
            [_Piece(format_cell(c), c.best, c.status) for c in row.cells] + _row_summary(row),
        )
        for row in board.rows
    ]
    for pub in board.published:
        pieces = [
            _Piece(MISSING if math.isnan(v) else f"{v:.2f}", status="published") for v in pub.values
        ]
        pieces += [_Piece("") for _ in range(4)]
        lines.append(_Line(pub.method + PUBLISHED_SUFFIX, pieces, published=True))
    return lines


def legend(report: Report) -> list[str]:
    """The notes printed under every human-readable table."""
    metric = report.metric
    lowest = "" if metric.higher_is_better else " (lowest)"
    missing = "not run" if metric.always_measured else "not run or not measured"
    notes = [
        f"Cells: mean ± sample std of {metric.short} {metric.unit} over successful seeds (n); "
        f"{metric.direction}; failed seeds are counted, never averaged; {MISSING} = {missing}; "
        f"{BEST_MARK} = best{lowest} in column.",
        "avg = mean of the cell means; avg rank = mean per-column rank (1 = best, ties "
        f"share); {INCOMPLETE_MARK} = over the columns this method has results in only.",
        "Δ best baseline = mean over columns of (method - best"
        f"{lowest} of {', '.join(COMPARED_BASELINES)} in that column)"
        + ("; negative is better." if not metric.higher_is_better else "."),
        "locality = the method's locality index L at 32 px (arena fingerprint): 0 = Mixup "
        "(pixel distance does not matter), about 0.8 = CutMix (near pixel pairs only); "
        f"{MISSING} = none: vanilla never mixes, and a mixing method mixes through the images, "
        "with no mask of lambda alone to measure.",
    ]
    if report.leaderboard.published:
        sources = sorted({s for p in report.leaderboard.published for s in p.sources if s})
        notes.append(
            "Rows marked (published) are the paper's numbers, not measured here and not "
            f"ranked: {'; '.join(sources)}."
        )
    if report.comparisons:
        notes.append(
            "Paired comparison: matched (dataset, arch, scenario, seed); d = method - baseline "
            f"in {metric.short} {metric.unit} ({metric.direction}: a "
            f"{'positive' if metric.higher_is_better else 'negative'} d wins); W/T/L with ties "
            f"|d| <= {TIE_TOLERANCE}; 95% t-interval; two-sided paired t-test; fewer than "
            f"{MIN_PAIRS} pairs is too few to conclude; p not corrected for the "
            f"{len(report.comparisons)} baselines (alpha = {ALPHA:g})."
        )
    if report.interactions:
        notes.append(_interaction_note(report))
    notes += [f"{note[0].upper()}{note[1:]}." for note in report.interaction_notes]
    if report.regime_note:
        notes.insert(0, f"{report.regime_note[0].upper()}{report.regime_note[1:]}.")
    return notes


def _interaction_note(report: Report) -> str:
    """How to read the scenario interactions: one sentence, whatever their number."""
    metric, its = report.metric, report.interactions
    a, b = its[0].method_a, its[0].method_b
    if len(its) == 1:
        s1, s2 = its[0].first, its[0].second
        text = f"Scenario interaction: i = ({a} - {b} on {s1}) - ({a} - {b} on {s2})"
    else:
        text = (
            f"Scenario interactions: for each pair of scenarios (S1, S2), "
            f"i = ({a} - {b} on S1) - ({a} - {b} on S2)"
        )
    text += (
        f" in {metric.short} {metric.unit}, one i per (dataset, arch, seed) with both methods "
        "in both scenarios; 95% t-interval; two-sided one-sample t-test; "
    )
    if any(it.papers_pair for it in its):
        large, small = INTERACTION_SCENARIOS
        text += (
            "the paper predicts CutMix gains over Mixup with large crops "
            f"({'positive' if metric.higher_is_better else 'negative'} i for cutmix - mixup"
            + (f" on {large} against {small}" if len(its) > 1 else "")
            + "); "
        )
    text += f"fewer than {MIN_PAIRS} pairs is too few to conclude"
    if len(its) > 1:
        text += f"; p not corrected for the {len(its)} pairs (alpha = {ALPHA:g})"
    return text + "."


def interaction_title(report: Report) -> str:
    """The heading of the scenario-interaction table."""
    return (
        f"Scenario interaction on {report.metric.short} ({report.metric.direction}), "
        "matched dataset, arch, seed"
    )


def interaction_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Headers and the rows of the scenario interactions, one per pair of scenarios (no
    rows if none)."""
    headers = ["interaction", "pairs", "mean", "95% CI", "p", "verdict"]
    rows = []
    for it in report.interactions:
        ci = MISSING if math.isnan(it.ci_low) else f"[{it.ci_low:+.2f}, {it.ci_high:+.2f}]"
        rows.append([it.label, str(it.n), _num(it.mean, "+.2f"), ci, _p(it.p_value), it.verdict])
    return headers, rows


def comparison_table(report: Report) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the paired comparison (empty rows if none)."""
    headers = ["baseline", "pairs", "W / T / L", "mean diff", "95% CI", "p", "verdict"]
    rows = []
    for r in report.comparisons:
        ci = MISSING if math.isnan(r.ci_low) else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        rows.append(
            [
                r.baseline,
                str(r.n),
                f"{r.wins} / {r.ties} / {r.losses}",
                _num(r.mean_diff, "+.2f"),
                ci,
                _p(r.p_value),
                r.verdict,
            ]
        )
    return headers, rows


def _comparison_title(report: Report) -> str:
    return (
        f"Paired comparison on {report.metric.short} ({report.metric.direction}): "
        f"{report.compare_method} vs each baseline (matched dataset, arch, scenario, seed)"
    )


def to_rich(report: Report, color: bool = False, width: int | None = None) -> str:
    """The terminal table (rich), as text; ANSI styles only when ``color``."""
    from rich.console import Console, Group
    from rich.table import Table
    from rich.text import Text

    headers = _headers(report, sep="\n")
    table = Table(title=report.title, title_justify="left", header_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right", no_wrap=True)
    published_started = False
    for line in _lines(report):
        if line.published and not published_started:
            table.add_section()
            published_started = True
        cells = [Text(line.label, style="italic" if line.published else "bold")]
        for piece in line.pieces:
            if piece.best:
                cells.append(Text(f"{piece.text} {BEST_MARK}", style="bold green"))
            elif piece.status in ("failed", "partial"):
                cells.append(
                    Text(piece.text, style="red" if piece.status == "failed" else "yellow")
                )
            elif piece.status == "published" or piece.text == MISSING:
                cells.append(Text(piece.text, style="dim italic" if line.published else "dim"))
            else:
                cells.append(Text(piece.text))
        table.add_row(*cells)
    parts: list[Any] = [table]
    if report.comparisons:
        parts.append(_rich_verdicts(_comparison_title(report), *comparison_table(report)))
    if report.interactions:
        parts.append(_rich_verdicts(interaction_title(report), *interaction_table(report)))
    parts.append(Text("\n".join(legend(report)), style="dim"))
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width or 100_000,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        soft_wrap=width is None,
    )
    console.print(Group(*parts))
    text = buf.getvalue()
    if width is None:
        text = "\n".join(line.rstrip() for line in text.splitlines()) + "\n"
    return text


def _body(report: Report, esc: Callable[[str], str], best: str, pub: str) -> list[list[str]]:
    """The leaderboard's lines as cell texts escaped by ``esc``; ``best`` and ``pub`` are
    templates (``{}``: the escaped text) for a best cell and a published number."""
    return [
        [esc(line.label)]
        + [
            best.format(esc(p.text))
            if p.best
            else pub.format(esc(p.text))
            if line.published and p.text not in ("", MISSING)
            else esc(p.text)
            for p in line.pieces
        ]
        for line in _lines(report)
    ]


def to_markdown(report: Report) -> str:
    """GitHub-flavoured markdown: title, leaderboard, paired comparison, notes."""
    from tabulate import tabulate

    body = _body(report, str, f"**{{}}** {BEST_MARK}", "*{}*")
    out = [f"### {report.title}", ""]
    out.append(
        tabulate(body, headers=_headers(report, " / "), tablefmt="github", disable_numparse=True)
    )
    if report.comparisons:
        headers, rows = comparison_table(report)
        out += ["", f"#### {_comparison_title(report)}", ""]
        out.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    if report.interactions:
        headers, rows = interaction_table(report)
        out += ["", f"#### {interaction_title(report)}", ""]
        out.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    out += [""] + [f"- {note}" for note in legend(report)]
    return "\n".join(out) + "\n"


_TEX = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "×": r"$\times$", "ε": r"$\varepsilon$",
}  # fmt: skip


def _tex(text: str) -> str:
    out = "".join(_TEX.get(ch, ch) for ch in text)
    return (
        out.replace("±", r"$\pm$")
        .replace(INCOMPLETE_MARK, r"$^\dagger$")
        .replace("Δ", r"$\Delta$")
        .replace(MISSING, "--")
        .replace("<0.001", r"$<$0.001")
    )


def to_latex(report: Report) -> str:
    """LaTeX tabulars (booktabs-free, plain ``tabular``) with the best cells in bold."""
    from tabulate import tabulate

    body = _body(report, _tex, r"\textbf{{{}}}", r"\textit{{{}}}")
    headers = [_tex(h) for h in _headers(report, " / ")]
    out = [f"% {report.title}"] + [f"% {note}" for note in legend(report)]
    align = ("left",) + ("right",) * (len(headers) - 1)
    out.append(
        tabulate(body, headers=headers, tablefmt="latex_raw", disable_numparse=True, colalign=align)
    )
    if report.comparisons:
        out += ["", f"% {_comparison_title(report)}", _latex_verdicts(*comparison_table(report))]
    if report.interactions:
        out += ["", f"% {interaction_title(report)}", _latex_verdicts(*interaction_table(report))]
    return "\n".join(out) + "\n"


def _rich_verdicts(title: str, headers: list[str], rows: list[list[str]]) -> Any:
    """A rich table whose first column names a row and whose last, a verdict, wraps."""
    from rich.table import Table

    last = len(headers) - 1
    table = Table(title=title, title_justify="left", header_style="bold")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i in (0, last) else "right", no_wrap=i != last)
    for row in rows:
        table.add_row(*row)
    return table


def _latex_verdicts(headers: list[str], rows: list[list[str]]) -> str:
    """A LaTeX table whose first column names a row and whose last is a verdict."""
    from tabulate import tabulate

    return tabulate(
        [[_tex(c) for c in r] for r in rows],
        headers=[_tex(x) for x in headers],
        tablefmt="latex_raw",
        disable_numparse=True,
        colalign=("left",) + ("right",) * (len(headers) - 2) + ("left",),
    )


def _float(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _attrs(obj: Any, *names: str) -> dict[str, Any]:
    """``{name: obj.name}`` for each of ``names``, a float NaN as ``None``."""
    return {n: _float(v) if isinstance(v := getattr(obj, n), float) else v for n in names}


def _json_cell(cell: Cell) -> dict[str, Any]:
    fields = _attrs(cell, "n", "n_failed", "mean", "std", "status", "best", "rank")
    return {**fields, "delta_best_baseline": _float(cell.delta)}


def _json_comparison(r: PairedResult) -> dict[str, Any]:
    return {
        **_attrs(r, "baseline", "n", "wins", "ties", "losses", "mean_diff"),
        "ci95": [_float(r.ci_low), _float(r.ci_high)],
        **_attrs(r, "p_value", "conclusive", "verdict"),
    }


def _json_interaction(it: Interaction) -> dict[str, Any]:
    numbers = ("a_first", "b_first", "a_second", "b_second", "interaction")
    records = it.pairs.to_dict("records") if it.pairs is not None else []
    pairs = [
        {"dataset": str(r["dataset"]), "arch": str(r["arch"]), "seed": int(r["seed"]),
         **{k: _float(r[k]) for k in numbers}}
        for r in records
    ]  # fmt: skip
    return {
        **_attrs(it, "method_a", "method_b", "first", "second", "n", "mean"),
        "ci95": [_float(it.ci_low), _float(it.ci_high)],
        **_attrs(it, "p_value", "conclusive", "verdict"),
        "pairs": pairs,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The report as plain data (NaN as ``None``); what :func:`to_json` writes."""
    board = report.leaderboard
    columns = [
        {"dataset": c.dataset, "arch": c.arch, "scenario": c.scenario} for c in board.columns
    ]
    return {
        "format": "msda-arena-report",
        "version": 2,
        "title": report.title,
        "metric": _attrs(
            report.metric, "name", "column", "label", "unit", "scale", "higher_is_better"
        ),
        "profile": report.profile,
        "scenarios": list(report.scenarios) if report.scenarios is not None else None,
        "n_results": report.n_results,
        "baselines": list(COMPARED_BASELINES),
        "columns": columns,
        "rows": [
            {
                "method": row.method,
                "source": "measured",
                "cells": [
                    {**col, **_json_cell(c)} for col, c in zip(columns, row.cells, strict=True)
                ],
                "average": _float(row.average),
                "average_complete": row.complete,
                "avg_rank": _float(row.avg_rank),
                "delta_best_baseline": _float(row.delta),
                "delta_complete": row.delta_complete,
                "n_columns": row.n_columns,
                "locality": _float(row.locality),
            }
            for row in board.rows
        ],
        "published": [
            {
                "method": pub.method,
                "source": "published",
                "cells": [
                    {**col, "top1": _float(v), "reference": s}
                    for col, v, s in zip(columns, pub.values, pub.sources, strict=True)
                ],
            }
            for pub in board.published
        ],
        "comparison": (
            {
                "method": report.compare_method,
                "against": [_json_comparison(r) for r in report.comparisons],
            }
            if report.compare_method
            else None
        ),
        "interactions": [_json_interaction(it) for it in report.interactions],
        "interaction_notes": list(report.interaction_notes),
        "regime_note": report.regime_note,
        "warnings": list(report.warnings),
    }


def to_json(report: Report) -> str:
    """JSON (strict: no NaN; missing numbers are ``null``)."""
    return json.dumps(report_dict(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


CSV_COLUMNS: tuple[str, ...] = (
    "source", "method", "dataset", "arch", "scenario", "n", "n_failed", "mean", "std",
    "status", "best", "rank", "delta_best_baseline", "row_average", "row_complete",
    "row_avg_rank", "row_delta_best_baseline", "locality", "metric",
)  # fmt: skip


def to_csv(report: Report) -> str:
    """One line per (row, column) cell in tidy form; measured then published rows.

    Numbers are written in full precision, in the display unit of the metric named in
    ``metric`` (ECE in %); empty means "none". ``locality`` is the method's locality
    index (the same on each of its lines). Published lines carry the paper's number in
    ``mean`` and ``status`` = ``published``. The paired comparison is not in the CSV
    (use JSON).
    """
    board = report.leaderboard
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    metric = report.metric.name

    def num(v: float) -> str:
        return "" if v is None or math.isnan(v) else repr(float(v))

    for row in board.rows:
        for col, c in zip(board.columns, row.cells, strict=True):
            writer.writerow(
                [
                    "measured", row.method, col.dataset, col.arch, col.scenario,
                    c.n, c.n_failed, num(c.mean), num(c.std), c.status,
                    "true" if c.best else "false", num(c.rank), num(c.delta),
                    num(row.average), "true" if row.complete else "false",
                    num(row.avg_rank), num(row.delta), num(row.locality), metric,
                ]
            )  # fmt: skip
    for pub in board.published:
        for col, v in zip(board.columns, pub.values, strict=True):
            if math.isnan(v):
                continue
            writer.writerow(
                ["published", pub.method, col.dataset, col.arch, col.scenario,
                 "", "", num(v), "", "published", "false", "", "", "", "", "", "", "",
                 metric]
            )  # fmt: skip
    return buf.getvalue()
