"""Statistics over seeds: intervals, Welch's test against the best row, Holm's correction, power.

Everything here works from a cell's summary (mean, unbiased std, n) where the maths
allows it: the t-interval and Welch's t-test need nothing else, so a test computed
from a committed leaderboard CSV (which stores mean, std and n, not the per-seed
numbers) is exactly the test computed from the records.  Only the bootstrap interval
needs the per-seed values, i.e. a results store.

Conventions
-----------
- ``std`` is the unbiased (ddof = 1) standard deviation, as in the tables.
- A cell takes part in a test only with n ≥ 2 seeds.
- Two cells that both have zero spread (deterministic rows such as Pt-s/m/t) differ
  with certainty when their means differ (p = 0) and not at all when they are equal
  (p = 1); Welch's statistic is 0/0 there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "Interval",
    "WelchResult",
    "t_interval",
    "bootstrap_interval",
    "welch",
    "holm",
    "cohens_d",
    "welch_power",
    "seeds_needed",
    "Summary",
    "against_best",
]

#: Significance level of every test and the † mark.
ALPHA = 0.05


@dataclass(frozen=True)
class Interval:
    """A confidence interval ``[low, high]`` for a mean, with the method that made it."""

    low: float
    high: float
    method: str  # "t" or "bootstrap"


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test of two means (two-sided)."""

    statistic: float
    df: float
    p_value: float


def t_interval(mean: float, std: float, n: int, level: float = 0.95) -> Interval | None:
    """Student-t interval ``mean ± t_{(1+level)/2, n-1} · std/√n``; ``None`` for n < 2."""
    from scipy import stats

    if n < 2 or std is None or not math.isfinite(std):
        return None
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * std / math.sqrt(n)
    return Interval(mean - half, mean + half, "t")


def bootstrap_interval(
    values: Sequence[float], level: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> Interval | None:
    """Percentile bootstrap interval of the mean over seeds (``scipy.stats.bootstrap``); ``None`` for n < 2.

    With 3 seeds there are only 10 distinct resamples, so this interval is coarse; the
    t-interval is the default for that reason.
    """
    import numpy as np
    from scipy import stats

    vals = np.asarray([float(v) for v in values], dtype=float)
    if vals.size < 2:
        return None
    if np.all(vals == vals[0]):
        return Interval(float(vals[0]), float(vals[0]), "bootstrap")
    res = stats.bootstrap(
        (vals,), np.mean, confidence_level=level, n_resamples=n_resamples, method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return Interval(float(res.confidence_interval.low), float(res.confidence_interval.high), "bootstrap")


def welch(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int) -> WelchResult | None:
    """Welch's two-sided t-test from summary statistics (``scipy.stats.ttest_ind_from_stats``).

    ``None`` when either side has fewer than 2 seeds.  Both spreads zero: see the
    module docstring.
    """
    from scipy import stats

    if n1 < 2 or n2 < 2:
        return None
    s1, s2 = float(std1 or 0.0), float(std2 or 0.0)
    if s1 == 0.0 and s2 == 0.0:
        same = mean1 == mean2
        return WelchResult(0.0 if same else math.copysign(math.inf, mean1 - mean2), float(n1 + n2 - 2),
                           1.0 if same else 0.0)
    res = stats.ttest_ind_from_stats(mean1, s1, n1, mean2, s2, n2, equal_var=False)
    v1, v2 = s1 * s1 / n1, s2 * s2 / n2
    df = (v1 + v2) ** 2 / ((v1 * v1 / (n1 - 1) if v1 else 0.0) + (v2 * v2 / (n2 - 1) if v2 else 0.0))
    return WelchResult(float(res.statistic), float(df), float(res.pvalue))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    Sorted ascending, the k-th smallest of m p-values (k = 1 … m) is multiplied by
    m − k + 1, then a running maximum keeps them monotone, and each is capped at 1.
    Rejecting where the adjusted value is < α controls the family-wise error at α.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * float(p_values[i])))
        out[i] = running
    return out


def cohens_d(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int) -> float:
    """Cohen's d: the difference of means over the pooled (unbiased) standard deviation."""
    pooled = math.sqrt(((n1 - 1) * std1**2 + (n2 - 1) * std2**2) / (n1 + n2 - 2))
    diff = mean1 - mean2
    if pooled == 0.0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / pooled


def welch_power(diff: float, std1: float, std2: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Welch test with ``n`` seeds per model for a true difference ``diff``.

    Exact under normality for the Welch–Satterthwaite degrees of freedom: the
    statistic follows a non-central t with non-centrality ``diff / √((s1²+s2²)/n)``.
    """
    from scipy import stats

    v1, v2 = std1**2 / n, std2**2 / n
    se = math.sqrt(v1 + v2)
    if se == 0.0:
        return 1.0 if diff != 0 else alpha
    df = (v1 + v2) ** 2 / (v1 * v1 / (n - 1) + v2 * v2 / (n - 1))
    nc = abs(diff) / se
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(
    diff: float, std1: float, std2: float, power: float = 0.8, alpha: float = ALPHA, limit: int = 100_000
) -> int | None:
    """Smallest seeds per model giving ``power`` to detect ``diff`` with these spreads (``None`` above ``limit``).

    The spreads are the observed ones, so this is a planning estimate, not a guarantee.
    """
    if diff == 0:
        return None
    if std1 == 0 and std2 == 0:
        return 2
    if welch_power(diff, std1, std2, 2, alpha) >= power:
        return 2
    lo, hi = 2, 4  # power grows with n: double until it suffices, then bisect
    while welch_power(diff, std1, std2, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if lo > limit:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if welch_power(diff, std1, std2, mid, alpha) < power else (lo, mid)
    return hi if hi <= limit else None


@dataclass(frozen=True)
class Summary:
    """A cell's statistics over seeds (stored units): mean, unbiased std, n."""

    mean: float
    std: float | None
    n: int


def against_best(cells: dict[object, Summary]) -> tuple[object | None, dict[object, float]]:
    """Welch's test of every cell against the lowest-mean cell, Holm-corrected over the group.

    Returns the best cell's key and, for each other cell with n ≥ 2, its adjusted
    p-value.  No tests (an empty mapping) when the best cell has fewer than 2 seeds.
    A ``p ≥ ALPHA`` means the cell is not distinguishable from the best at that level.
    """
    if not cells:
        return None, {}
    best = min(cells, key=lambda k: cells[k].mean)
    b = cells[best]
    raw: dict[object, float] = {}
    for k, c in cells.items():
        if k == best:
            continue
        res = welch(c.mean, c.std or 0.0, c.n, b.mean, b.std or 0.0, b.n)
        if res is not None:
            raw[k] = res.p_value
    keys = list(raw)
    return best, dict(zip(keys, holm([raw[k] for k in keys]), strict=True))
