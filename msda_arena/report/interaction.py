"""The paper's Table 1 claim as a statistic: the scenario interaction of two methods,
for every pair of crop scenarios a report holds.

Park et al. (NeurIPS 2022) predict that CutMix gains over Mixup with large crops (small
objects) relative to small crops (large objects). For methods A and B (default
:data:`DEFAULT_METHODS`: A = cutmix, B = mixup) and an ordered pair of scenarios
(S1, S2), every (dataset, arch, seed) with successful results of both methods in both
scenarios, on the report's metric (a NaN metric is missing), gives one value::

    i = (A_S1 - B_S1) - (A_S2 - B_S2)

The statistic is the mean of the ``i`` with its 95% Student-t interval and the
two-sided one-sample t-test p-value (H0: mean 0), the same functions as the paired
comparison (:mod:`msda_arena.report.stats`). Verdict: fewer than
:data:`~msda_arena.report.stats.MIN_PAIRS` values are too few to conclude; otherwise
``p < ALPHA`` names which method gains with S1 relative to S2, by the sign of the mean
and the metric's direction (for ECE, lower is better, so a significantly *negative*
interaction is a gain of A), and anything else is "no significant interaction". For the
paper's pair (:data:`INTERACTION_SCENARIOS`, the only place the arena names it: S1 =
large-crop, S2 = small-crop) with CutMix and Mixup, the verdict adds "as the paper
predicts" or "the opposite of the paper's prediction".

A report holds the interaction of every pair of its scenarios
(:func:`scenario_interactions`): S1 before S2 in the grid's order
(:data:`~msda_arena.grid.SCENARIO_ORDER`), the paper's pair first.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from msda_arena.api.metrics import DEFAULT_METRIC, Metric, get_metric
from msda_arena.api.record import CELL_IDENTITY
from msda_arena.grid import scenario_sort_key
from msda_arena.report.stats import ALPHA, MIN_PAIRS, paired_p_value, t_interval

if TYPE_CHECKING:
    import pandas

__all__ = [
    "DEFAULT_METHODS",
    "INTERACTION_KEYS",
    "INTERACTION_SCENARIOS",
    "Interaction",
    "interaction_pairs",
    "scenario_interaction",
    "scenario_interactions",
]

#: (large-crop scenario, small-crop scenario): the pair of the paper's claim, two of
#: :data:`~msda_arena.grid.SCENARIO_ORDER`; a report puts its interaction first.
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
    """The scenario interaction of two methods between two scenarios (see the module rules).

    Attributes:
        method_a, method_b: A and B.
        first, second: the two scenarios S1 and S2 (for the paper's pair: large crop,
            small crop).
        metric: the metric's name (``"top1"``, ``"ece"``, ``"fgsm"``).
        n: number of (dataset, arch, seed) with all four results.
        mean: mean interaction, in the metric's display unit (NaN when n == 0).
        ci_low, ci_high: its 95% t-interval (NaN when n < 2).
        p_value: two-sided one-sample t-test p-value (NaN when n < 2 or all equal).
        verdict: one plain sentence saying what may be concluded.
        pairs: one row per (dataset, arch, seed): ``a_first``, ``b_first``, ``a_second``,
            ``b_second`` and ``interaction``.
    """

    method_a: str
    method_b: str
    first: str
    second: str
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
    def papers_pair(self) -> bool:
        """Whether the scenarios are the paper's (:data:`INTERACTION_SCENARIOS`)."""
        return (self.first, self.second) == INTERACTION_SCENARIOS

    @property
    def label(self) -> str:
        """``"(cutmix - mixup) on large-crop - (cutmix - mixup) on small-crop"``."""
        d = f"({self.method_a} - {self.method_b})"
        return f"{d} on {self.first} - {d} on {self.second}"


def interaction_pairs(scenarios: Iterable[str]) -> list[tuple[str, str]]:
    """Every ordered pair (S1, S2) of ``scenarios``, S1 before S2 in the grid's order
    (:func:`~msda_arena.grid.scenario_sort_key`), the paper's pair
    (:data:`INTERACTION_SCENARIOS`) first when both are there."""
    ordered = sorted(set(scenarios), key=scenario_sort_key)
    pairs = list(itertools.combinations(ordered, 2))
    if INTERACTION_SCENARIOS in pairs:
        pairs.remove(INTERACTION_SCENARIOS)
        pairs.insert(0, INTERACTION_SCENARIOS)
    return pairs


def scenario_interactions(
    frame: pandas.DataFrame,
    methods: tuple[str, str] = DEFAULT_METHODS,
    metric: str | Metric = DEFAULT_METRIC,
    scenarios: Sequence[str] | None = None,
) -> tuple[tuple[Interaction, ...], tuple[str, ...]]:
    """The interaction of ``methods`` for every pair of scenarios in ``frame``
    (:func:`interaction_pairs`), and the one-line reasons for those that cannot be computed.

    A pair without a (dataset, arch, seed) with both methods in both scenarios gives a
    reason instead of an interaction. So does the paper's pair when only one of its
    scenarios has results, unless ``scenarios`` (the scenarios a report was restricted to)
    leaves the other out. Without any scenario pair (and without the paper's
    scenarios), both are empty: the report is not about crop scenarios.
    """
    present = {str(s) for s in frame["scenario"].unique()}
    pairs = interaction_pairs(present)
    paper = set(INTERACTION_SCENARIOS)
    allowed = scenarios is None or paper <= set(scenarios)
    if INTERACTION_SCENARIOS not in pairs and paper & present and allowed:
        pairs.insert(0, INTERACTION_SCENARIOS)  # to say which of its scenarios is missing
    found: list[Interaction] = []
    reasons: list[str] = []
    for pair in pairs:
        interaction, reason = scenario_interaction(frame, methods, metric, pair)
        if interaction is not None:
            found.append(interaction)
        elif reason is not None:
            reasons.append(reason)
    return tuple(found), tuple(reasons)


def scenario_interaction(
    frame: pandas.DataFrame,
    methods: tuple[str, str] = DEFAULT_METHODS,
    metric: str | Metric = DEFAULT_METRIC,
    scenarios: tuple[str, str] = INTERACTION_SCENARIOS,
) -> tuple[Interaction | None, str | None]:
    """The interaction of ``methods`` between ``scenarios`` (S1, S2) over ``frame``'s records.

    Returns ``(interaction, None)``, or ``(None, reason)`` when it cannot be computed:
    a scenario without results (a one-line reason for the report's notes), or no
    (dataset, arch, seed) with both methods in both scenarios. ``(None, None)`` when
    neither scenario has any result (the report is not about these scenarios).
    """
    metric = get_metric(metric)
    a, b = methods
    first, second = scenarios
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
        for scenario, where in ((first, "first"), (second, "second")):
            sel = ok.loc[(ok["method"] == method) & (ok["scenario"] == scenario), [*keys, "_v"]]
            parts.append(sel.rename(columns={"_v": f"{tag}_{where}"}))
    pairs = parts[0]
    for part in parts[1:]:
        pairs = pairs.merge(part, on=keys, how="inner")
    if pairs.empty:
        return None, (
            f"scenario interaction omitted: no (dataset, arch, seed) with {metric.short} "
            f"results of both {a} and {b} in both {first} and {second}"
        )
    pairs = pairs.sort_values(keys, kind="stable").reset_index(drop=True)
    pairs["interaction"] = (pairs["a_first"] - pairs["b_first"]) - (
        pairs["a_second"] - pairs["b_second"]
    )
    values = [float(v) for v in pairs["interaction"]]
    n = len(values)
    mean = math.fsum(values) / n
    constant = n >= 2 and max(values) - min(values) <= 1e-12
    low, high = t_interval(values)
    p = math.nan if constant else paired_p_value(values)
    verdict = _verdict(a, b, first, second, n, mean, p, constant, metric.higher_is_better)
    result = Interaction(
        a, b, first, second, metric.name, metric.higher_is_better, n, mean, low, high, p,
        verdict, pairs,
    )  # fmt: skip
    return result, None


def _verdict(
    a: str,
    b: str,
    first: str,
    second: str,
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
    a_gains = (mean > 0) == higher_is_better  # A gains over B in S1, relative to S2
    winner, loser = (a, b) if a_gains else (b, a)
    text = f"{winner} gains over {loser} with {first} relative to {second} (p < {ALPHA:g})"
    if {a, b} == set(_PAPER) and (first, second) == INTERACTION_SCENARIOS:
        opposite = ", the opposite of the paper's prediction"
        text += ", as the paper predicts" if winner == _PAPER[0] else opposite
    return text
