"""Figures of a report (matplotlib, drawn off-screen; no pyplot state, no display needed).

Both show the report's metric (:mod:`msda_arena.api.metrics`: top-1 by default; the
file names stay ``accuracy.png`` and ``scenarios.png`` whatever the metric), with its
unit and direction on the axis.

* ``accuracy``: one panel per leaderboard column; each method's mean metric with a
  +- 1 sample-std error bar (no bar for a single seed); the paper's numbers as hollow
  diamonds when published rows are in the report. Methods without a result in a
  panel have a label but no point.
* ``scenarios``: the paper's crop-scenario view. One panel per (dataset, arch) where
  Mixup has results; for every crop scenario, each method's mean minus Mixup's mean
  (CutMix - Mixup drawn in its own colour), with the 95% t-interval of the paired
  differences over matched seeds as error bar only when there are two or more pairs
  (the caption says that bars without one had fewer; never a zero-width bar); the
  paper's CutMix - Mixup as a black cross when published rows are shown. For ECE
  (lower is better) a bar below zero is an improvement over Mixup.
* ``curves``: the learning curves (:mod:`msda_arena.report.curves`), one panel per
  (arch, scenario); absent when no result stored a curve.
"""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msda_arena.grid import REFERENCE_METHODS
from msda_arena.report.compare import matched_pairs
from msda_arena.report.curves import curve_points, mean_curves
from msda_arena.report.stats import t_interval

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from msda_arena.report.build import Report

#: Fewest matched pairs for which the scenario figure draws a 95% interval.
MIN_INTERVAL_PAIRS = 2

__all__ = [
    "FIGURE_NAMES",
    "accuracy_figure",
    "curves_figure",
    "figures_png",
    "scenario_figure",
    "write_plots",
]

#: Names of the figures :func:`figures_png` draws (file names without ``.png``).
FIGURE_NAMES: tuple[str, ...] = ("accuracy", "scenarios", "curves")
#: Colours of the arena's own methods (tab10), in the order of REFERENCE_METHODS.
_FIXED = dict(zip(REFERENCE_METHODS, ("#7f7f7f", "#1f77b4", "#ff7f0e", "#8c564b", "#2ca02c",
                                      "#9467bd"), strict=True))  # fmt: skip
#: How a published (paper) number is drawn: a hollow diamond.
_PAPER_MARK = {"marker": "D", "markerfacecolor": "none", "markersize": 6, "linestyle": "none"}
#: Colours of other methods, in turn.
_OTHERS = ("#d62728", "#e377c2", "#17becf", "#bcbd22", "#393b79", "#637939", "#843c39",
           "#7b4173", "#3182bd", "#e6550d")  # fmt: skip


def _colors(methods: list[str]) -> dict[str, str]:
    others = iter(_OTHERS * (1 + len(methods) // len(_OTHERS)))
    return {m: _FIXED[m] if m in _FIXED else next(others) for m in methods}


def _panels(n: int, most: int, width: float, height: float) -> tuple[Figure, list[Any]]:
    """A figure of ``n`` panels of ``width`` x ``height`` inches, ``most`` per row."""
    from matplotlib.figure import Figure

    ncols = min(most, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = [ax for row in fig.subplots(nrows, ncols, squeeze=False) for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def accuracy_figure(report: Report) -> Figure:
    """Per-column mean of the report's metric with error bars, by method."""
    board = report.leaderboard
    measured = [r.method for r in board.rows]
    pub_only = [p.method for p in board.published if p.method not in measured]
    methods = measured + pub_only
    colors = _colors(methods)
    fig, axes = _panels(len(board.columns), 3, 4.6, 0.28 * len(methods) + 1.4)
    multi = len(board.datasets) > 1
    ys = list(range(len(methods)))[::-1]
    for j, (ax, column) in enumerate(zip(axes, board.columns, strict=True)):
        for y, row in zip(ys[: len(board.rows)], board.rows, strict=True):
            cell = row.cells[j]
            if not cell.has_result:
                continue
            err = cell.std if cell.n >= 2 else 0.0
            ax.errorbar(
                cell.mean, y, xerr=err, fmt="o", color=colors[row.method], capsize=3, markersize=5
            )
        for pub in board.published:
            v = pub.values[j]
            if not math.isnan(v):
                y = ys[methods.index(pub.method)]
                ax.plot(v, y, color=colors[pub.method], **_PAPER_MARK)
        labels = []
        for m in methods:
            if m in measured:
                cell = board.row(m).cells[j]
                labels.append(m if cell.has_result else f"{m} ({cell.status})")
            else:
                labels.append(f"{m} (paper)")
        ax.set_yticks(ys, labels, fontsize=8)
        ax.set_title(column.label(with_dataset=multi), fontsize=9)
        ax.set_xlabel(report.metric.axis_label, fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    caption = "mean ± 1 std over seeds"
    if board.published:
        caption += "; ◇ = published (paper)"
    width = fig.get_figwidth()  # about 12 characters of 10-pt text per inch
    title = textwrap.fill(report.title, width=max(40, int(12 * width)))
    fig.suptitle(f"{title}\n{caption}", fontsize=10)
    return fig


def scenario_figure(report: Report) -> Figure | None:
    """Every method minus Mixup per crop scenario; ``None`` when Mixup has no results."""
    board = report.leaderboard
    measured = [r.method for r in board.rows]
    if "mixup" not in measured:
        return None
    mixup = board.row("mixup")
    groups: dict[tuple[str, str], list[int]] = {}
    for j, column in enumerate(board.columns):
        if mixup.cells[j].has_result:
            groups.setdefault((column.dataset, column.arch), []).append(j)
    if not groups:
        return None
    others = [m for m in measured if m not in ("mixup", "cutmix")]
    others = (["cutmix"] if "cutmix" in measured else []) + others
    if not others:
        return None
    colors = _colors(measured)
    published = {p.method: p for p in board.published}
    fig, axes = _panels(
        len(groups), 2, max(5.5, 1.0 + 0.7 * len(others)), 3.4 + 0.2 * math.ceil(len(others) / 3)
    )
    width = 0.8 / len(others)
    for ax, ((dataset, arch), col_idx) in zip(axes, groups.items(), strict=True):
        for k, method in enumerate(others):
            _difference_bars(ax, report, method, col_idx, width, k, colors[method])
        if "cutmix" in published and "mixup" in published:
            shift = -0.4 + width * 0.5 if "cutmix" in others else 0.0  # on cutmix's bar
            _paper_crosses(
                ax, published["cutmix"].values, published["mixup"].values, col_idx, shift
            )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(col_idx)), [board.columns[j].scenario for j in col_idx])
        ax.set_ylabel(f"{report.metric.short} difference (points)", fontsize=8)
        ax.set_title(f"{dataset} / {arch}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    fig.suptitle(
        f"Each method minus Mixup per crop scenario: {report.metric.short} "
        f"({report.metric.direction})\n"
        "(large crop = small objects, small crop = large objects)\n"
        "bars: mean paired difference; error bars: its 95% t-interval "
        f"(bars without one had fewer than {MIN_INTERVAL_PAIRS} pairs)",
        fontsize=10,
    )
    return fig


def _difference_bars(
    ax: Any, report: Report, method: str, col_idx: list[int], width: float, k: int, color: str
) -> None:
    """The ``k``-th method's bars of one panel: its paired mean difference from Mixup in
    each scenario (columns ``col_idx``), with the 95% interval where there are enough pairs."""
    board, frame = report.leaderboard, report.frame
    row = board.row(method)
    xs, hs, errs = [], [], []
    for x, j in enumerate(col_idx):
        if not row.cells[j].has_result:
            continue
        column = board.columns[j]
        in_column = (
            (frame["dataset"] == column.dataset)
            & (frame["arch"] == column.arch)
            & (frame["scenario"] == column.scenario)
        )
        pairs = matched_pairs(frame[in_column], method, "mixup", report.metric)
        diffs = (pairs["method_value"] - pairs["baseline_value"]).tolist()
        if not diffs:  # nothing matched: no paired difference to draw
            continue
        low, high = t_interval(diffs) if len(diffs) >= MIN_INTERVAL_PAIRS else (math.nan, math.nan)
        xs.append(x - 0.4 + width * (k + 0.5))
        hs.append(math.fsum(diffs) / len(diffs))  # paired mean, like its interval
        errs.append(math.nan if math.isnan(low) else (high - low) / 2)
    if not xs:
        return
    edge = "black" if method == "cutmix" else None
    ax.bar(xs, hs, width=width * 0.9, color=color, label=f"{method} − mixup", edgecolor=edge)
    # an interval only where there are enough pairs for one: never a zero-width
    # "interval" from a single seed
    with_err = [i for i, e in enumerate(errs) if not math.isnan(e)]
    if with_err:
        ax.errorbar(
            [xs[i] for i in with_err],
            [hs[i] for i in with_err],
            yerr=[errs[i] for i in with_err],
            fmt="none",
            ecolor="black",
            capsize=2,
        )


def _paper_crosses(
    ax: Any, cutmix: list[float], mixup: list[float], col_idx: list[int], shift: float
) -> None:
    """The paper's CutMix - Mixup as black crosses at ``x + shift`` in each scenario ``x``."""
    labelled = False
    for x, j in enumerate(col_idx):
        if not (math.isnan(cutmix[j]) or math.isnan(mixup[j])):
            label = None if labelled else "cutmix − mixup (paper)"
            ax.plot(x + shift, cutmix[j] - mixup[j], marker="x", color="black", markersize=8,
                    linestyle="none", label=label)  # fmt: skip
            labelled = True


def curves_figure(report: Report) -> Figure | None:
    """The learning curves of the report's methods, one panel per (arch, scenario);
    ``None`` when no result has a curve."""
    points = curve_points(report.frame)
    if points.empty:
        return None
    methods = [r.method for r in report.leaderboard.rows if r.method in set(points["method"])]
    colors = _colors(methods)
    loss = mean_curves(points, "train_loss")
    top1 = mean_curves(points, "top1")
    # a top-1 row only where some cell was evaluated before its last epoch
    with_top1 = not top1.empty and int(top1.groupby("method")["epoch"].nunique().max()) > 1
    groups = list(loss.groupby(["dataset", "arch", "scenario"], sort=True).groups)
    multi = len({g[0] for g in groups}) > 1
    rows = 2 if with_top1 else 1
    fig, axes = _panels(len(groups) * rows, len(groups) if with_top1 else 3, 4.2, 3.2)
    for j, (dataset, arch, scenario) in enumerate(groups):
        title = f"{dataset} / {arch} / {scenario}" if multi else f"{arch} / {scenario}"
        _draw(axes[j], loss, (dataset, arch, scenario), methods, colors, "training loss")
        axes[j].set_title(title, fontsize=9)
        if with_top1:
            ax = axes[len(groups) + j]
            _draw(ax, top1, (dataset, arch, scenario), methods, colors, "test top-1 (%)")
            ax.set_title(f"{title}: test top-1", fontsize=9)
    axes[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Learning curves ({report.profile}): mean over seeds, band ± 1 std", fontsize=10)
    return fig


def _draw(
    ax: Any,
    means: pandas.DataFrame,
    where: tuple[str, str, str],
    methods: list[str],
    colors: dict[str, str],
    label: str,
) -> None:
    """One panel: each method's mean curve at ``where`` with its +- 1 std band."""
    dataset, arch, scenario = where
    here = means[
        (means["dataset"] == dataset) & (means["arch"] == arch) & (means["scenario"] == scenario)
    ]
    for method in methods:
        m = here[here["method"] == method]
        if m.empty:
            continue
        x, y, sd = m["epoch"].to_numpy(), m["mean"].to_numpy(), m["std"].to_numpy()
        marker = "o" if len(x) == 1 else None
        ax.plot(x, y, color=colors[method], label=method, marker=marker, linewidth=1.4)
        if any(not math.isnan(s) for s in sd):
            ax.fill_between(x, y - sd, y + sd, color=colors[method], alpha=0.18, linewidth=0)
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole
    ax.set_xlabel("epoch", fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)


def figures_png(report: Report, dpi: int = 100) -> dict[str, bytes]:
    """The report's figures as PNG bytes, by name (a figure that cannot be drawn is absent)."""
    out = {}
    for name, figure in (
        ("accuracy", accuracy_figure(report)),
        ("scenarios", scenario_figure(report)),
        ("curves", curves_figure(report)),
    ):
        if figure is None:
            continue
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=dpi)
        out[name] = buf.getvalue()
    return out


def write_plots(
    report: Report, directory: str | Path, dpi: int = 100, figures: dict[str, bytes] | None = None
) -> list[Path]:
    """Write the figures (drawn unless ``figures`` holds them) as ``<directory>/<name>.png``;
    returns the files written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in (figures_png(report, dpi=dpi) if figures is None else figures).items():
        path = directory / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    return written
