"""The metrics a report can rank by, each declared once with :func:`register_metric`
(its name, record column, how it is measured, valid range, label, unit, scale,
direction and whether the paper published it): the record's validation
(:func:`msda_arena.api.record.problems`), ``arena report --metric``,
``build_report(..., metric=)``, the plots and every output format read it.

Every number of a report (cell means and stds, averages, differences, paired
differences and their intervals) is in the metric's *display* unit, the stored value
× :attr:`Metric.scale`; so ECE reads in percent like the other two, and the tie
tolerance of the paired test (half the last printed digit) means the same for all.
A successful result whose metric is NaN was stored before the metric was measured:
it is missing for that metric (never averaged, never paired); see
:func:`~msda_arena.report.build.build_report`. The measurements themselves are
defined in :mod:`msda_arena.train.evaluate`.

This module imports nothing heavy: the CLI reads it for ``--metric``'s help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from msda_arena.api.errors import UsageError

if TYPE_CHECKING:
    import pandas

__all__ = ["DEFAULT_METRIC", "METRICS", "Metric", "get_metric", "metric_help", "register_metric"]


@dataclass(frozen=True)
class Metric:
    """One rankable measurement of a result record.

    Attributes:
        name: what ``--metric`` takes.
        column: the result column (:data:`msda_arena.api.record.COLUMNS`) it is read from.
        measured: how the trainer computes it (:mod:`msda_arena.train.evaluate`).
        valid: the stored value's range in an ``ok`` record (else the record is invalid).
        label: what it is, for titles (``"top-1 accuracy"``).
        short: a short name for axes and notes (``"top-1"``, ``"ECE"``).
        unit: the display unit (``"%"``).
        higher_is_better: direction of ranks, best marks, the best baseline and the
            paired verdicts.
        scale: display value = stored value × scale.
        unit_note: how the display unit relates to what is stored, if it differs.
        published: whether the shipped published numbers (top-1 only) measure it.
        always_measured: whether every successful result has it (top-1); the others
            are NaN in results stored before they were measured.
    """

    name: str
    column: str
    measured: str
    valid: tuple[float, float]
    label: str
    short: str
    unit: str
    higher_is_better: bool
    scale: float = 1.0
    unit_note: str = ""
    published: bool = False
    always_measured: bool = False

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``."""
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def caption(self) -> str:
        """The metric, its unit and its direction, for a table's title."""
        note = f", {self.unit_note}" if self.unit_note else ""
        return f"{self.label} in {self.unit}{note} ({self.direction})"

    @property
    def axis_label(self) -> str:
        """``"ECE (%, lower is better)"``."""
        return f"{self.short} ({self.unit}, {self.direction})"

    def values(self, frame: pandas.DataFrame) -> pandas.Series:
        """The metric of every record of ``frame`` in display units (NaN: not measured)."""
        values = frame[self.column].astype("float64")
        return values * self.scale if self.scale != 1.0 else values


#: Every metric a report can be built on, by ``--metric`` name (:func:`register_metric`).
METRICS: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Declare ``metric`` (its name must be new); returns it."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is declared twice")
    METRICS[metric.name] = metric
    return metric


register_metric(
    Metric(
        name="top1",
        column="top1",
        measured="share of test images whose highest logit is their label, in %",
        valid=(0.0, 100.0),
        label="top-1 accuracy",
        short="top-1",
        unit="%",
        higher_is_better=True,
        published=True,
        always_measured=True,
    )
)
register_metric(
    Metric(
        name="ece",
        column="ece",
        measured="expected calibration error over 15 equal-width confidence bins, a fraction",
        valid=(0.0, 1.0),
        label="expected calibration error (ECE, 15 bins)",
        short="ECE",
        unit="%",
        higher_is_better=False,
        scale=100.0,
        unit_note="the stored fraction × 100",
    )
)
register_metric(
    Metric(
        name="fgsm",
        column="fgsm_top1",
        measured="top-1 in % on test images moved by one FGSM step of 8/255 in input range",
        valid=(0.0, 100.0),
        label="top-1 accuracy under FGSM (ε = 8/255)",
        short="FGSM top-1",
        unit="%",
        higher_is_better=True,
    )
)
#: The metric of a report when none is named.
DEFAULT_METRIC = "top1"


def metric_help() -> str:
    """``top1 (top-1 accuracy, higher is better), ece (...)``: for ``--metric``'s help."""
    return ", ".join(f"{m.name} ({m.short} {m.unit}, {m.direction})" for m in METRICS.values())


def get_metric(metric: str | Metric) -> Metric:
    """The :class:`Metric` named ``metric`` (a :class:`Metric` is returned as is).

    Raises:
        UsageError: an unknown name (the message lists the known ones).
    """
    if isinstance(metric, Metric):
        return metric
    found = METRICS.get(metric)
    if found is None:
        raise UsageError(f"unknown --metric {metric!r}; choose one of {metric_help()}")
    return found
