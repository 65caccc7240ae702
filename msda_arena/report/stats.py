"""The statistics behind the leaderboard: per-cell summaries and the paired test.

Rules (documented in the README, tested in ``tests/test_report.py``):

* A cell's mean is over its successful seeds; its standard deviation is the sample
  standard deviation (``ddof=1``) and exists only for two or more seeds.
* A paired comparison matches two methods' successful results on the same
  (dataset, architecture, scenario, seed). For each pair ``d = method - baseline``, in
  the metric's display unit (:mod:`msda_arena.api.metrics`). For a higher-is-better
  metric a win is ``d > TIE_TOLERANCE`` and a loss ``d < -TIE_TOLERANCE``; for a
  lower-is-better one (ECE) the other way round; anything else is a tie (the tolerance
  is half the last printed digit, so a "tie" looks equal on screen).
* The interval is the 95% Student-t interval of the mean difference,
  ``mean(d) +- t(0.975, n-1) * sd(d) / sqrt(n)``, and the p-value is the two-sided
  paired t-test, ``2 * P(T_{n-1} > |mean(d)| / (sd(d) / sqrt(n)))``; both need
  ``n >= 2``. The t distribution comes from :mod:`scipy.special` (``stdtr``,
  ``stdtrit``): the same numbers as :func:`scipy.stats.ttest_rel` (the tests check
  this) without the second of import time ``scipy.stats`` costs.
* Fewer than :data:`MIN_PAIRS` pairs are "too few to conclude", whatever the p-value.
  Otherwise ``p < ALPHA`` reads "better" or "worse" by the sign of the mean and the
  metric's direction (a significantly lower ECE is "better"), and anything else "no
  significant difference". p-values are not corrected for the
  several baselines compared at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "MIN_PAIRS",
    "MIN_SEEDS",
    "TIE_TOLERANCE",
    "PairedResult",
    "paired_p_value",
    "paired_test",
    "t_interval",
]

#: Significance level of the paired test (and 1 - coverage of the interval).
ALPHA = 0.05
#: Fewest matched pairs from which a comparison draws a conclusion.
MIN_PAIRS = 3
#: Fewest distinct seeds among the pairs: with one seed, seed-to-seed noise is unmeasured.
MIN_SEEDS = 2
#: Paired differences (in the metric's display unit, percentage points for every metric
#: of :data:`~msda_arena.api.metrics.METRICS`) at most this large count as ties.
TIE_TOLERANCE = 0.005


@dataclass(frozen=True)
class PairedResult:
    """A method against one baseline over matched (dataset, arch, scenario, seed) cells.

    Attributes:
        n: number of matched pairs.
        wins, ties, losses: pairs where the method is ahead, level, behind (by the
            metric's direction: a lower ECE is ahead).
        mean_diff: mean of ``method - baseline`` in the metric's display unit (NaN when
            n == 0); negative is better for a lower-is-better metric.
        ci_low, ci_high: the 95% t-interval of ``mean_diff`` (NaN when n < 2).
        p_value: two-sided paired t-test p-value (NaN when n < 2 or all differences equal).
        verdict: one plain sentence saying what may be concluded.
    """

    method: str
    baseline: str
    n: int
    wins: int
    ties: int
    losses: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str

    @property
    def conclusive(self) -> bool:
        """Whether there are enough pairs (and seeds) to draw a conclusion at all."""
        return self.n >= MIN_PAIRS and not self.verdict.startswith("too few")


def t_interval(diffs: Sequence[float], level: float = 1 - ALPHA) -> tuple[float, float]:
    """The Student-t confidence interval of the mean of ``diffs`` (NaNs when n < 2)."""
    from scipy.special import stdtrit

    n = len(diffs)
    if n < 2:
        return math.nan, math.nan
    mean, sd = _mean_sd(diffs)
    half = float(stdtrit(n - 1, 0.5 + level / 2)) * sd / math.sqrt(n)
    return mean - half, mean + half


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, sd


def paired_p_value(diffs: Sequence[float]) -> float:
    """Two-sided p-value of the paired t-test on ``diffs`` (NaN when n < 2 or sd == 0)."""
    from scipy.special import stdtr

    n = len(diffs)
    if n < 2:
        return math.nan
    mean, sd = _mean_sd(diffs)
    if sd == 0.0:
        return math.nan
    t = mean / (sd / math.sqrt(n))
    return float(min(1.0, 2.0 * stdtr(n - 1, -abs(t))))


def paired_test(
    method: str,
    baseline: str,
    method_values: Sequence[float],
    baseline_values: Sequence[float],
    seeds: int | None = None,
    higher_is_better: bool = True,
) -> PairedResult:
    """Compare two equally long sequences of matched measurements (see the module rules).

    ``seeds`` is the number of distinct seeds among the pairs, when known: fewer than
    :data:`MIN_SEEDS` is too few to conclude, however many pairs there are.
    ``higher_is_better`` is the metric's direction (``False`` for ECE): it decides
    wins and losses and whether a significant difference reads "better" or "worse".
    """
    if len(method_values) != len(baseline_values):
        raise ValueError("paired_test needs two sequences of equal length")
    diffs = [float(a) - float(b) for a, b in zip(method_values, baseline_values, strict=True)]
    n = len(diffs)
    ahead = sum(d > TIE_TOLERANCE for d in diffs)
    behind = sum(d < -TIE_TOLERANCE for d in diffs)
    wins, losses = (ahead, behind) if higher_is_better else (behind, ahead)
    ties = n - wins - losses
    mean = math.fsum(diffs) / n if n else math.nan
    constant = n >= 2 and max(diffs) - min(diffs) <= 1e-12
    low, high = t_interval(diffs)
    p = paired_p_value(diffs) if not constant else math.nan
    verdict = _verdict(method, baseline, n, mean, p, constant, higher_is_better)
    if n >= MIN_PAIRS and seeds is not None and seeds < MIN_SEEDS:
        verdict = (
            f"too few seeds to conclude ({seeds} seed; need at least {MIN_SEEDS} to measure "
            "seed-to-seed noise)"
        )
    return PairedResult(method, baseline, n, wins, ties, losses, mean, low, high, p, verdict)


def _verdict(
    method: str,
    baseline: str,
    n: int,
    mean: float,
    p: float,
    constant: bool,
    higher_is_better: bool = True,
) -> str:
    if n == 0:
        return (
            f"no matched results: run {method} and {baseline} on the same "
            "architecture, scenario and seed"
        )
    if n < MIN_PAIRS:
        return f"too few seeds to conclude (n={n}; need at least {MIN_PAIRS} matched pairs)"
    if constant:
        return f"every pair differs by exactly {mean:+.2f}; no variance to test"
    if p < ALPHA:
        word = "better" if (mean > 0) == higher_is_better else "worse"
        return f"{method} is {word} than {baseline} (p < {ALPHA:g})"
    return f"no significant difference (p >= {ALPHA:g})"
