"""The leaderboard: one row per method spec, one column per (dataset, arch, scenario),
built on one metric (:data:`~msda_arena.api.metrics.METRICS`: top-1 by default).

Rules (each one tested). "Better" follows the metric's direction: higher top-1 and
FGSM top-1, lower ECE.

* **Cell**: mean +- sample std (``ddof=1``) of the metric (in its display unit) over
  the seeds whose run succeeded and measured it, with ``n`` those seeds. Failed seeds
  are counted (``n_failed``) and shown, never averaged in; a successful seed whose
  metric is NaN (stored before the metric existed) is missing for this metric, neither
  averaged nor counted. A cell is ``ok`` (all seeds succeeded), ``partial`` (some
  failed), ``failed`` (all failed) or ``missing`` (no result for this metric).
* **Best**: in each column, the measured row(s) with the best mean are marked best
  (ties all marked).
* **Rank**: in each column, measured rows with a result are ranked by mean, 1 = best,
  tied means share the average of their ranks. A row's rank is the mean of its ranks.
* **Average**: the mean of the row's cell means. It and the rank are over the columns
  where the row has a result; if it lacks any column (missing or failed), the row is
  *incomplete*: its average and rank are marked, because they are not comparable with
  complete rows.
* **Difference from the best baseline**: per column, the row's mean minus the best
  mean among :data:`~msda_arena.grid.COMPARED_BASELINES` in that column (the
  highest, or for a lower-is-better metric the lowest: a negative ECE difference is an
  improvement); the row's figure is the mean of these per-column differences, marked
  incomplete unless the row and some baseline have results in every column.
* **Locality**: the mean of the ``locality`` column over the method's records (every
  record of a method stores the same value, its locality index at 32 px from
  :mod:`msda_arena.theory.fingerprint`); NaN when none has one (``vanilla``). Not ranked.
* **Order**: complete rows first, then by average rank, then by average (better
  first), then by name.

Means are compared after rounding to 1e-9 so that float noise never splits a tie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from msda_arena.api.metrics import DEFAULT_METRIC, METRICS, Metric, get_metric
from msda_arena.api.record import CELL_IDENTITY
from msda_arena.grid import COMPARED_BASELINES, scenario_sort_key
from msda_arena.report.published import match_published

if TYPE_CHECKING:
    import pandas

__all__ = [
    "Cell",
    "Column",
    "Leaderboard",
    "PublishedRow",
    "Row",
    "build_leaderboard",
]

_NAN = math.nan


@dataclass(frozen=True)
class Column:
    """One leaderboard column: a dataset, an architecture and a crop scenario."""

    dataset: str
    arch: str
    scenario: str

    def label(self, with_dataset: bool = True, sep: str = " / ") -> str:
        """``"cifar100 / resnet56_cifar / standard"`` (dataset optional)."""
        parts = (
            [self.dataset, self.arch, self.scenario] if with_dataset else [self.arch, self.scenario]
        )
        return sep.join(parts)


@dataclass
class Cell:
    """The results of one method in one column."""

    n: int = 0
    n_failed: int = 0
    mean: float = _NAN
    std: float = _NAN
    best: bool = False
    rank: float = _NAN
    delta: float = _NAN

    @property
    def status(self) -> str:
        """``ok``, ``partial`` (some seeds failed), ``failed`` (all failed) or ``missing``."""
        if self.n and self.n_failed:
            return "partial"
        if self.n:
            return "ok"
        return "failed" if self.n_failed else "missing"

    @property
    def has_result(self) -> bool:
        """Whether at least one seed succeeded."""
        return self.n > 0


@dataclass
class Row:
    """One measured method: its cells (aligned with the columns) and its summary.

    ``locality`` is the method's locality index at 32 px (NaN when it has none).
    """

    method: str
    cells: list[Cell]
    average: float = _NAN
    avg_rank: float = _NAN
    delta: float = _NAN
    complete: bool = False
    delta_complete: bool = False
    locality: float = _NAN

    @property
    def n_columns(self) -> int:
        """Columns in which the method has a result."""
        return sum(c.has_result for c in self.cells)


@dataclass
class PublishedRow:
    """The paper's numbers for one method, aligned with the columns (NaN where none)."""

    method: str
    values: list[float]
    sources: list[str]


@dataclass
class Leaderboard:
    """Columns, measured rows (in display order) and published rows, of one metric."""

    columns: list[Column]
    rows: list[Row]
    published: list[PublishedRow] = field(default_factory=list)
    metric: Metric = field(default_factory=lambda: METRICS[DEFAULT_METRIC])

    def row(self, method: str) -> Row:
        """The measured row of ``method`` (KeyError if absent)."""
        for row in self.rows:
            if row.method == method:
                return row
        raise KeyError(method)

    @property
    def datasets(self) -> list[str]:
        """The datasets the columns cover, in column order."""
        return list(dict.fromkeys(c.dataset for c in self.columns))


def build_leaderboard(
    frame: pandas.DataFrame,
    published: pandas.DataFrame | None = None,
    published_methods: list[str] | None = None,
    metric: str | Metric = DEFAULT_METRIC,
) -> Leaderboard:
    """Build the leaderboard of ``frame`` (already selected: one profile, one result per
    cell; see :func:`~msda_arena.report.selection.select_results`).

    Args:
        frame: result records (columns of :data:`msda_arena.api.record.COLUMNS`).
        published: published numbers (:func:`~msda_arena.report.published.load_published`)
            to add as unranked rows where dataset, scenario and arch match (top-1
            only: ignored for another metric).
        published_methods: show only these methods' published rows (default: all).
        metric: the metric of the cells (a name of
            :data:`~msda_arena.api.metrics.METRICS`).

    Raises:
        UsageError: an unknown metric.
    """
    metric = get_metric(metric)
    col_keys = sorted(
        {tuple(t) for t in frame[list(_COLUMN_KEYS)].drop_duplicates().to_numpy()},
        key=lambda t: (t[0], t[1], scenario_sort_key(t[2])),
    )
    columns = [Column(str(d), str(a), str(s)) for d, a, s in col_keys]
    methods = sorted(str(m) for m in frame["method"].unique())
    grid = _grid(frame, methods, columns, metric)
    locality = _locality(frame)
    rows = [_row(grid, i, m, locality.get(m, _NAN)) for i, m in enumerate(methods)]
    higher = metric.higher_is_better
    rows.sort(
        key=lambda r: (
            not r.complete,
            r.avg_rank if not math.isnan(r.avg_rank) else math.inf,
            (-r.average if higher else r.average) if not math.isnan(r.average) else math.inf,
            r.method,
        )
    )
    board = Leaderboard(columns=columns, rows=rows, metric=metric)
    if published is not None and metric.published:  # the paper's numbers are top-1 only
        board.published = _published_rows(published, columns, published_methods)
    return board


#: A leaderboard column's part of the cell identity (a row is the method; seeds average).
_COLUMN_KEYS: tuple[str, ...] = tuple(k for k in CELL_IDENTITY if k not in ("method", "seed"))


def _grid(
    frame: pandas.DataFrame, methods: list[str], columns: list[Column], metric: Metric
) -> dict[str, Any]:
    """Methods x columns arrays (numpy) of a leaderboard: counts, means, ranks, best marks
    and the difference from the best baseline (the module's rules)."""
    import numpy as np
    import pandas as pd

    keys = [*_COLUMN_KEYS, "method"]
    col_pos = {(c.dataset, c.arch, c.scenario): i for i, c in enumerate(columns)}
    m_pos = {m: i for i, m in enumerate(methods)}
    values = metric.values(frame)
    measured = (frame["status"] == "ok") & values.notna()
    ok = frame.loc[measured, keys].assign(_value=values[measured])
    agg = ok.groupby(keys, sort=False)["_value"].agg(["count", "mean", "std"])
    fails = frame[frame["status"] != "ok"].groupby(keys, sort=False).size()
    shape = (len(methods), len(columns))
    count, nfail = np.zeros(shape, dtype=int), np.zeros(shape, dtype=int)
    mean, std = np.full(shape, np.nan), np.full(shape, np.nan)
    for (d, a, s, m), (c, mu, sd) in zip(agg.index, agg.to_numpy(), strict=True):
        i, j = m_pos[m], col_pos[(d, a, s)]
        count[i, j], mean[i, j], std[i, j] = int(c), mu, sd
    for (d, a, s, m), c in fails.items():
        nfail[m_pos[m], col_pos[(d, a, s)]] = int(c)

    higher = metric.higher_is_better
    means = pd.DataFrame(np.round(mean, 9), index=methods)
    ranks = means.rank(axis=0, ascending=not higher, method="average").to_numpy()
    col_best = (means.max(axis=0) if higher else means.min(axis=0)).to_numpy()
    base = mean[[m_pos[b] for b in COMPARED_BASELINES if b in m_pos]]
    has_base = ~np.isnan(base).all(axis=0)  # False everywhere when no baseline ran
    best_base = np.full(len(columns), np.nan)
    if len(base):
        filled = np.where(np.isnan(base), -np.inf if higher else np.inf, base)
        best_base = np.where(has_base, (np.max if higher else np.min)(filled, axis=0), np.nan)
    return dict(
        count=count, nfail=nfail, mean=mean, std=std, rank=ranks, has_base=has_base,
        best=(means.to_numpy() == col_best[None, :]) & ~np.isnan(mean),
        delta=mean - best_base[None, :],
    )  # fmt: skip


def _row(grid: dict[str, Any], i: int, method: str, locality: float) -> Row:
    """The row of the ``i``-th method of :func:`_grid`, its summary filled in."""
    fields = ("n", "n_failed", "mean", "std", "best", "rank", "delta")
    arrays = [grid[k] for k in ("count", "nfail", "mean", "std", "best", "rank", "delta")]
    cells = [
        Cell(**{f: a[i, j].item() for f, a in zip(fields, arrays, strict=True)})
        for j in range(grid["count"].shape[1])
    ]
    have = grid["count"][i] > 0
    row = Row(method=method, cells=cells, locality=locality, complete=bool(have.all()))
    if have.any():
        row.average = float(grid["mean"][i, have].mean())
        row.avg_rank = float(grid["rank"][i, have].mean())
    with_delta = have & grid["has_base"]
    if with_delta.any():
        row.delta = float(grid["delta"][i, with_delta].mean())
    row.delta_complete = bool(with_delta.all())
    return row


def _locality(frame: pandas.DataFrame) -> dict[str, float]:
    """Each method's locality index: the mean over its records (NaN where none has one)."""
    if "locality" not in frame.columns:
        return {}
    means = frame.groupby("method", sort=False)["locality"].mean()
    return {str(m): float(v) for m, v in means.items()}


def _published_rows(
    published: pandas.DataFrame, columns: list[Column], methods: list[str] | None
) -> list[PublishedRow]:
    names = list(dict.fromkeys(str(m) for m in published["method"]))  # the files' order
    out = []
    for method in names:
        if methods is not None and method not in methods:
            continue
        values, sources = [], []
        for col in columns:
            hit = match_published(published, method, col.dataset, col.arch, col.scenario)
            values.append(hit[0] if hit else _NAN)
            sources.append(hit[1] if hit else "")
        if any(not math.isnan(v) for v in values):
            out.append(PublishedRow(method=method, values=values, sources=sources))
    return out
