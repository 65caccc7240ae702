"""One self-contained HTML page: the leaderboard, the paired comparison, the notes and
the figures embedded as base64 PNG: the report's plots (:mod:`msda_arena.report.plots`,
the learning curves included) and the pair-weight profiles of its methods
(:mod:`msda_arena.report.profiles`, the one figure that needs torch). No script, no
font, no stylesheet or image is fetched from anywhere: the page can be mailed, archived
or opened offline.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

from msda_arena.api.record import LOCALITY_SAMPLES, LOCALITY_SEED, LOCALITY_SIZE
from msda_arena.report.plots import figures_png
from msda_arena.report.profiles import profiles_png
from msda_arena.report.text import (
    BEST_MARK,
    MISSING,
    _headers,
    _lines,
    comparison_table,
    interaction_table,
    interaction_title,
    legend,
)

if TYPE_CHECKING:
    from msda_arena.report.build import Report
    from msda_arena.report.profiles import ProfilePlot

__all__ = ["html_page"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.method, th.method { text-align: left; font-weight: 600; }
td.best { font-weight: 700; background: #e4f5e4; }
td.failed { color: #b00020; } td.partial { color: #a05a00; } td.missing { color: #999; }
tr.published td { font-style: italic; color: #555; background: #fafafa; }
td.verdict { text-align: left; white-space: normal; }
ul.notes { font-size: 0.85em; color: #444; } ul.warnings { font-size: 0.85em; color: #a05a00; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def html_page(
    report: Report,
    figures: dict[str, bytes] | None = None,
    profiles: ProfilePlot | None = None,
) -> str:
    """The page as a string.

    Args:
        report: the report to show.
        figures: PNG images by name; by default drawn with
            :func:`~msda_arena.report.plots.figures_png`.
        profiles: the pair-weight profiles of the report's methods; by default drawn
            with :func:`~msda_arena.report.profiles.profiles_png` (imports torch).
    """
    if figures is None:
        figures = figures_png(report)
    if profiles is None:
        profiles = profiles_png([row.method for row in report.leaderboard.rows])
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(report.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{_e(report.title)}</h1>",
        f"<p>{report.n_results} result(s), {len(report.leaderboard.rows)} method(s), "
        f"{len(report.leaderboard.columns)} column(s).</p>",
        *_leaderboard_table(report),
    ]
    if report.comparisons:
        out.append(
            f"<h2>Paired comparison on {_e(report.metric.short)} "
            f"({_e(report.metric.direction)}): {_e(report.compare_method)} vs each baseline</h2>"
            "<p>Over matched (dataset, arch, scenario, seed) results.</p>"
        )
        out += _verdict_table("comparison", *comparison_table(report))
    if report.interactions:
        out.append(f"<h2>{_e(interaction_title(report))}</h2>")
        out += _verdict_table("interaction", *interaction_table(report))
    out.append(_list("notes", legend(report)))
    if report.warnings:
        out += ["<h2>Warnings</h2>", _list("warnings", report.warnings)]
    metric = report.metric
    captions = {
        "accuracy": f"{metric.short} ({metric.unit}, {metric.direction}) per column, "
        "mean ± 1 std over seeds, by method.",
        "scenarios": f"Each method minus Mixup in {metric.short} ({metric.direction}) per "
        "crop scenario, with 95% paired intervals where there are two or more pairs "
        "(bars without an interval had fewer).",
        "curves": "Learning curves: each method's training loss per epoch (and test top-1 "
        "where the recipe's eval_every evaluated during training), mean over seeds with a "
        "band of ± 1 std, one panel per (arch, scenario).",
    }
    out += [_figure(name, data, captions.get(name, name)) for name, data in figures.items()]
    out += [*_profiles(profiles), "</body></html>"]
    return "\n".join(out) + "\n"


def _list(cls: str, items: list[str], id_: str = "") -> str:
    """``<ul class="cls">`` of the escaped items."""
    at = f' id="{id_}"' if id_ else ""
    return f'<ul class="{cls}"{at}>' + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>"


def _leaderboard_table(report: Report) -> list[str]:
    """The lines of the leaderboard's table: best cells bold and marked, failed, partial
    and missing cells classed, published rows in their own class."""
    out = ['<table id="leaderboard" class="leaderboard">', "<thead><tr>"]
    for i, header in enumerate(_headers(report, " / ")):
        cls = ' class="method"' if i == 0 else ""
        out.append(f'<th scope="col"{cls}>{_e(header)}</th>')
    out.append("</tr></thead><tbody>")
    for line in _lines(report):
        row_cls = ' class="published"' if line.published else ""
        out.append(f"<tr{row_cls}>")
        out.append(f'<td class="method">{_e(line.label)}</td>')
        for piece in line.pieces:
            classes = []
            text = _e(piece.text)
            if piece.best:
                classes.append("best")
                text = f"<strong>{text}</strong> {BEST_MARK}"
            if piece.status in ("failed", "partial"):
                classes.append(piece.status)
            if piece.text == MISSING:
                classes.append("missing")
            cls = f' class="{" ".join(classes)}"' if classes else ""
            out.append(f"<td{cls}>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return out


def _figure(name: str, data: bytes, caption: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure id="fig-{_e(name)}"><img alt="{_e(caption)}" '
        f'src="data:image/png;base64,{b64}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _profiles(profiles: ProfilePlot) -> list[str]:

    h, w = LOCALITY_SIZE
    out = ['<h2 id="profiles">Pair-weight profiles</h2>']
    if profiles.png is not None:
        caption = (
            f"Pair-weight profiles of {', '.join(profiles.methods)} at {h}×{w} px "
            f"({LOCALITY_SAMPLES} masks each, seed {LOCALITY_SEED}): the weight "
            "E[(1−M_p)(1−M_q)] a method's regulariser gives a pixel pair at each distance, "
            "relative to Mixup (1 everywhere); L is the locality index of the leaderboard. "
            "Below: coverage maps E[1−M](p)."
        )
        out.append(_figure("profiles", profiles.png, caption))
    if profiles.notes:
        out.append(_list("notes", profiles.notes, "profiles-notes"))
    return out


def _verdict_table(table_id: str, headers: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of an HTML table whose first column names a row and whose last is a
    verdict (the paired comparison, the scenario interaction)."""
    out = [f'<table id="{table_id}" class="comparison"><thead><tr>']
    out += [f'<th scope="col">{_e(h)}</th>' for h in headers]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = [f'<td class="method">{_e(row[0])}</td>']
        cells += [f"<td>{_e(c)}</td>" for c in row[1:-1]]
        cells.append(f'<td class="verdict">{_e(row[-1])}</td>')
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return out
