"""The paper's Table 1 claim as a statistic: the crop-scenario interaction of two methods.

Park et al. (NeurIPS 2022) predict that CutMix gains over Mixup with large crops (small
objects) relative to small crops (large objects). For methods A and B (default
:data:`DEFAULT_METHODS`: A = cutmix, B = mixup) and the two scenarios of
:data:`INTERACTION_SCENARIOS` (the only place the arena names them for this purpose),
every (dataset, arch, seed) with successful results of both methods in both scenarios,
on the report's metric (a NaN metric is missing), gives one value::

    i = (A_large - B_large) - (A_small - B_small)

The statistic is the mean of the ``i`` with its 95% Student-t interval and the
two-sided one-sample t-test p-value (H0: mean 0), the same functions as the paired
comparison (:mod:`msda_arena.report.stats`). Verdict: fewer than
:data:`~msda_arena.report.stats.MIN_PAIRS` values are too few to conclude; otherwise
``p < ALPHA`` reads "as the paper predicts" or "the opposite of the paper's prediction"
by the sign of the mean and the metric's direction (for ECE, lower is better, so a
significantly *negative* interaction is the paper's prediction), and anything else is
"no significant interaction". For methods other than CutMix and Mixup the verdict names
which method gains, without the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msda_arena.api.metrics import DEFAULT_METRIC, Metric, get_metric
from msda_arena.api.record import CELL_IDENTITY
from msda_arena.report.stats import ALPHA, MIN_PAIRS, paired_p_value, t_interval

if TYPE_CHECKING:
    import pandas

__all__ = [
    "DEFAULT_METHODS",
    "INTERACTION_KEYS",
    "INTERACTION_SCENARIOS",
    "Interaction",
    "scenario_interaction",
]

#: (large-crop scenario, small-crop scenario): the pair the interaction contrasts, two
#: of :data:`~msda_arena.grid.SCENARIO_ORDER`.
INTERACTION_SCENARIOS: tuple[str, str] = ("large-crop", "small-crop")
#: (A, B) of the interaction by default: the paper's claim is about CutMix against Mixup.
DEFAULT_METHODS: tuple[str, str] = ("cutmix", "mixup")
#: What makes the four results of one interaction value: the cell's identity but the
#: method and the scenario.
INTERACTION_KEYS: tuple[str, ...] = tuple(
    k for k in CELL_IDENTITY if k not in ("method", "scenario")
)
#: The paper's prediction: A = cutmix gains over B = mixup with large crops.
_PAPER = ("cutmix", "mixup")


@dataclass(frozen=True, eq=False)
class Interaction:
    """The scenario interaction of two methods (see the module rules).

    Attributes:
        method_a, method_b: A and B.
        large, small: the two scenarios (large crop, small crop).
        metric: the metric's name (``"top1"``, ``"ece"``, ``"fgsm"``).
        n: number of (dataset, arch, seed) with all four results.
        mean: mean interaction, in the metric's display unit (NaN when n == 0).
        ci_low, ci_high: its 95% t-interval (NaN when n < 2).
        p_value: two-sided one-sample t-test p-value (NaN when n < 2 or all equal).
        verdict: one plain sentence saying what may be concluded.
        pairs: one row per (dataset, arch, seed): ``a_large``, ``b_large``, ``a_small``,
            ``b_small`` and ``interaction``.
    """

    method_a: str
    method_b: str
    large: str
    small: str
    metric: str
    higher_is_better: bool
    n: int
    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    pairs: pandas.DataFrame | None = field(default=None, repr=False)

    @property
    def conclusive(self) -> bool:
        """Whether there are enough values to draw a conclusion at all."""
        return self.n >= MIN_PAIRS and not self.verdict.startswith("too few")

    @property
    def label(self) -> str:
        """``"(cutmix - mixup) on large-crop - (cutmix - mixup) on small-crop"``."""
        d = f"({self.method_a} - {self.method_b})"
        return f"{d} on {self.large} - {d} on {self.small}"


def scenario_interaction(
    frame: pandas.DataFrame,
    methods: tuple[str, str] = DEFAULT_METHODS,
    metric: str | Metric = DEFAULT_METRIC,
    scenarios: tuple[str, str] = INTERACTION_SCENARIOS,
) -> tuple[Interaction | None, str | None]:
    """The interaction of ``methods`` between ``scenarios`` over ``frame``'s records.

    Returns ``(interaction, None)``, or ``(None, reason)`` when it cannot be computed:
    a scenario without results (a one-line reason for the report's notes), or no
    (dataset, arch, seed) with both methods in both scenarios. ``(None, None)`` when
    neither scenario has any result (the report is not about crop scenarios).
    """
    metric = get_metric(metric)
    a, b = methods
    large, small = scenarios
    present = set(frame["scenario"].unique())
    missing = [s for s in scenarios if s not in present]
    if len(missing) == 2:
        return None, None
    if missing:
        return None, f"scenario interaction omitted: no {missing[0]} results"
    keys = list(INTERACTION_KEYS)
    ok = frame.loc[frame["status"] == "ok", [*keys, "scenario", "method"]].assign(
        _v=metric.values(frame)
    )
    ok = ok[ok["_v"].notna()]
    parts = []
    for method, tag in ((a, "a"), (b, "b")):
        for scenario, where in ((large, "large"), (small, "small")):
            sel = ok.loc[(ok["method"] == method) & (ok["scenario"] == scenario), [*keys, "_v"]]
            parts.append(sel.rename(columns={"_v": f"{tag}_{where}"}))
    pairs = parts[0]
    for part in parts[1:]:
        pairs = pairs.merge(part, on=keys, how="inner")
    if pairs.empty:
        return None, (
            f"scenario interaction omitted: no (dataset, arch, seed) with {metric.short} "
            f"results of both {a} and {b} in both {large} and {small}"
        )
    pairs = pairs.sort_values(keys, kind="stable").reset_index(drop=True)
    pairs["interaction"] = (pairs["a_large"] - pairs["b_large"]) - (
        pairs["a_small"] - pairs["b_small"]
    )
    values = [float(v) for v in pairs["interaction"]]
    n = len(values)
    mean = math.fsum(values) / n
    constant = n >= 2 and max(values) - min(values) <= 1e-12
    low, high = t_interval(values)
    p = math.nan if constant else paired_p_value(values)
    verdict = _verdict(a, b, large, small, n, mean, p, constant, metric.higher_is_better)
    result = Interaction(
        a, b, large, small, metric.name, metric.higher_is_better, n, mean, low, high, p,
        verdict, pairs,
    )  # fmt: skip
    return result, None


def _verdict(
    a: str,
    b: str,
    large: str,
    small: str,
    n: int,
    mean: float,
    p: float,
    constant: bool,
    higher_is_better: bool,
) -> str:
    if n < MIN_PAIRS:
        return f"too few pairs to conclude (n={n}; need at least {MIN_PAIRS})"
    if constant:
        return f"every pair gives exactly {mean:+.2f}; no variance to test"
    if not p < ALPHA:
        return f"no significant interaction (p >= {ALPHA:g})"
    a_gains = (mean > 0) == higher_is_better  # A gains over B with large crops, relatively
    winner, loser = (a, b) if a_gains else (b, a)
    text = f"{winner} gains over {loser} with {large} relative to {small} (p < {ALPHA:g})"
    if {a, b} == set(_PAPER):
        opposite = ", the opposite of the paper's prediction"
        text += ", as the paper predicts" if winner == _PAPER[0] else opposite
    return text
