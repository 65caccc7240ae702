"""A report in any format, looked up by name: :data:`FORMATS` maps each format to the
function that renders it (text formats in :mod:`msda_arena.report.text`, the page in
:mod:`msda_arena.report.html`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msda_arena.api.errors import UsageError
from msda_arena.report.html import html_page
from msda_arena.report.text import report_dict, to_csv, to_json, to_latex, to_markdown, to_rich

if TYPE_CHECKING:
    from msda_arena.report.build import Report
    from msda_arena.report.profiles import ProfilePlot

__all__ = ["FORMATS", "render", "report_dict"]

#: Format name -> renderer ``(report, **options) -> str``; the order is the CLI's.
RENDERERS: dict[str, Callable[..., str]] = {
    "table": lambda report, color=False, width=None, **_: to_rich(report, color=color, width=width),
    "markdown": lambda report, **_: to_markdown(report),
    "html": lambda report, figures=None, profiles=None, **_: html_page(
        report, figures=figures, profiles=profiles
    ),
    "csv": lambda report, **_: to_csv(report),
    "latex": lambda report, **_: to_latex(report),
    "json": lambda report, **_: to_json(report),
}
FORMATS: tuple[str, ...] = tuple(RENDERERS)


def render(
    report: Report,
    fmt: str,
    *,
    color: bool = False,
    width: int | None = None,
    figures: dict[str, bytes] | None = None,
    profiles: ProfilePlot | None = None,
) -> str:
    """Render ``report`` in one of :data:`FORMATS`.

    Args:
        report: from :func:`~msda_arena.report.build.build_report`.
        color: ANSI colours for ``table``.
        width: wrap ``table`` to this width (default: never wrap).
        figures: PNG images (name -> bytes) to embed in ``html``; drawn when omitted.
        profiles: the pair-weight profile plot for ``html``
            (:func:`~msda_arena.report.profiles.profiles_png`); drawn when omitted.

    Raises:
        UsageError: an unknown format.
    """
    renderer: Any = RENDERERS.get(fmt)
    if renderer is None:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderer(report, color=color, width=width, figures=figures, profiles=profiles)
