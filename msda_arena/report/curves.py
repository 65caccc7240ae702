"""Learning curves: how each method's cells trained, epoch by epoch.

Every ``ok`` result stores its curve (:data:`~msda_arena.api.record.CURVE_SERIES`:
training loss, learning rate, seconds and test top-1 per epoch, the last always, earlier
ones where the recipe's ``eval_every`` asks). :func:`curve_points` spreads them into one
row per (cell, epoch), :func:`mean_curves` averages them over seeds and
:func:`msda_arena.report.plots.curves_figure` draws them. Results stored before curves
existed have none and are simply not drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from msda_arena.api.record import CURVE_SERIES, RecordError, decode_curve

if TYPE_CHECKING:
    import pandas

__all__ = ["PLATEAU", "curve_points", "mean_curves", "plateau_epoch"]

#: Columns of :func:`curve_points` that say which cell a point belongs to.
_CELL = ("dataset", "arch", "scenario", "method", "seed")
#: :func:`plateau_epoch`: the model stopped improving at the first epoch after which its
#: training loss never falls by more than this fraction.
PLATEAU = 0.02


def curve_points(frame: pandas.DataFrame) -> pandas.DataFrame:
    """One row per (ok cell, epoch) with the cell's identity and every curve series;
    empty when no result in ``frame`` has a curve (stored before curves, or a frame
    without the ``curve`` column). A curve that does not decode is skipped (the store's
    rules reject such a file before it gets here)."""
    import pandas as pd

    columns = [*_CELL, *CURVE_SERIES]
    if "curve" not in frame.columns or frame.empty:
        return pd.DataFrame(columns=columns)
    rows = frame[(frame["status"] == "ok") & (frame["curve"].astype(str) != "")]
    data: dict[str, list] = {name: [] for name in columns}  # one frame at the end, not one a cell
    for record in rows[[*_CELL, "curve"]].itertuples(index=False):
        try:
            series = decode_curve(record.curve)
        except RecordError:
            continue
        for name in CURVE_SERIES:
            data[name].extend(series[name])
        for i, name in enumerate(_CELL):
            data[name].extend([record[i]] * len(series["epoch"]))
    if not data["epoch"]:
        return pd.DataFrame(columns=columns)
    points = pd.DataFrame(data)
    points["epoch"] = points["epoch"].astype(int)
    return points


def mean_curves(points: pandas.DataFrame, series: str = "train_loss") -> pandas.DataFrame:
    """Per (dataset, arch, scenario, method, epoch): the mean of ``series`` over seeds,
    its sample std (NaN for one seed) and how many seeds had a value."""
    keys = [c for c in _CELL if c != "seed"] + ["epoch"]
    grouped = points.dropna(subset=[series]).groupby(keys, sort=True)[series]
    return grouped.agg(["mean", "std", "count"]).reset_index()


def plateau_epoch(losses: list[float]) -> int | None:
    """The 1-based epoch after which training loss ``losses`` (one per epoch) never fell
    by more than :data:`PLATEAU` of its value there; ``None`` when it still did in the
    last epoch (or there are fewer than two epochs)."""
    if len(losses) < 2:
        return None
    for k, loss in enumerate(losses[:-1]):
        if min(losses[k + 1 :]) >= loss * (1 - PLATEAU):
            return k + 1
    return None
