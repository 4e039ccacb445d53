"""Verdicts decided by seed statistics: one method, one confidence level, one mapping.

A prediction is judged on replicates (one value per seed) of the quantity it is about:

* a **difference** of two conditions' means, a − b, with the Welch t-interval (unequal variances,
  Welch–Satterthwaite degrees of freedom);
* a **ratio** of two means, a / b, with the Welch t-interval of log(mean a) − log(mean b) by the
  delta method (each side's variance divided by n·mean²), exponentiated;
* a **mean** of one condition, with the one-sample t-interval.

The interval is then read against the prediction's threshold or band (:func:`verdict`):

* ``"greater"`` than t: *held* when the whole interval lies above t, *failed* when it lies wholly
  at or below t, *inconclusive* when it contains t;
* ``"less"`` than t: the mirror image;
* ``"within"`` a band [lo, hi] (an equivalence: "comparable", "as useful"): *held* when the whole
  interval lies inside the band, *failed* when it lies wholly outside it, *inconclusive* when it
  straddles an edge.

Every verdict needs at least :data:`MIN_SEEDS` replicates on each side. Only exact computations
(:data:`DETERMINISTIC`) are judged without seeds. :func:`rule` returns the sentence the book
prints, made from the same constants this module applies. These are statistical decisions about
predictions; what a re-execution on another machine may move is a different question, answered by
:mod:`dfsae.paper.record`'s tolerances, and no verdict uses one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

CONFIDENCE = 0.95
"""The confidence level of every verdict's interval."""
MIN_SEEDS = 3
"""The fewest replicates per condition a verdict is judged on."""
VERDICTS = ("held", "failed", "inconclusive")
KINDS = ("greater", "less", "within")
DETERMINISTIC = ("parameter count", "the identity ∂L_LSE/∂E = softmax(−E)")
"""The only quantities judged without seeds: exact computations that no seed can change."""


@dataclass(frozen=True)
class Interval:
    """A two-sided interval of ``estimate`` at ``confidence``, from ``seeds`` replicates per side."""

    estimate: float
    low: float
    high: float
    confidence: float
    seeds: tuple[int, ...]
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def _replicates(name: str, values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if len(x) < 2:
        raise ValueError(f"{name} has {len(x)} replicate(s); an interval needs at least 2 (a verdict, "
                         f"{MIN_SEEDS})")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf: {x.tolist()}")
    return x


def _t(df: float, confidence: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def _welch(terms: list[tuple[float, int]]) -> float:
    """Welch–Satterthwaite degrees of freedom of a sum of variance terms (v_i, n_i − 1)."""
    total = sum(v for v, _ in terms)
    denom = sum(v * v / d for v, d in terms if d > 0)
    return total * total / denom if denom > 0 else float("inf")


def difference_interval(a, b, confidence: float = CONFIDENCE) -> Interval:
    """Welch t-interval of mean(a) − mean(b)."""
    a, b = _replicates("a", a), _replicates("b", b)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    estimate = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(estimate, estimate, estimate, confidence, (len(a), len(b)), "Welch t (no spread)")
    half = _t(_welch([(va, len(a) - 1), (vb, len(b) - 1)]), confidence) * se
    return Interval(estimate, estimate - half, estimate + half, confidence, (len(a), len(b)), "Welch t")


def ratio_interval(a, b, confidence: float = CONFIDENCE) -> Interval:
    """Welch t-interval of mean(a) / mean(b), through log(mean a) − log(mean b) and the delta
    method; both means must be positive."""
    a, b = _replicates("a", a), _replicates("b", b)
    ma, mb = a.mean(), b.mean()
    if ma <= 0 or mb <= 0:
        raise ValueError(f"a ratio interval needs positive means, got {ma:g} and {mb:g}")
    va, vb = a.var(ddof=1) / (len(a) * ma * ma), b.var(ddof=1) / (len(b) * mb * mb)
    log_ratio = math.log(ma / mb)
    se = math.sqrt(va + vb)
    half = 0.0 if se == 0 else _t(_welch([(va, len(a) - 1), (vb, len(b) - 1)]), confidence) * se
    return Interval(float(ma / mb), math.exp(log_ratio - half), math.exp(log_ratio + half), confidence,
                    (len(a), len(b)), "Welch t on the log ratio (delta method)")


def mean_interval(a, confidence: float = CONFIDENCE) -> Interval:
    """One-sample t-interval of mean(a)."""
    a = _replicates("a", a)
    estimate = float(a.mean())
    half = _t(len(a) - 1, confidence) * a.std(ddof=1) / math.sqrt(len(a))
    return Interval(estimate, estimate - half, estimate + half, confidence, (len(a),), "one-sample t")


def verdict(interval: Interval, kind: str, threshold: float | tuple[float, float]) -> str:
    """"held", "failed" or "inconclusive" for ``interval`` against the prediction (see the module
    docstring): ``kind`` "greater" or "less" with a threshold t, or "within" with a band (lo, hi).
    Refuses an interval from fewer than :data:`MIN_SEEDS` replicates on a side."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if min(interval.seeds) < MIN_SEEDS:
        raise ValueError(f"a verdict needs at least {MIN_SEEDS} seeds per condition, got {interval.seeds}")
    low, high = interval.low, interval.high
    if kind == "within":
        lo, hi = threshold
        if not lo <= hi:
            raise ValueError(f"the band must have lo <= hi, got ({lo}, {hi})")
        if lo <= low and high <= hi:
            return "held"
        return "failed" if high < lo or low > hi else "inconclusive"
    t = float(threshold)
    above, below = low > t, high <= t
    if kind == "less":
        above, below = high < t, low >= t
    return "held" if above else "failed" if below else "inconclusive"


def deterministic(name: str, holds: bool) -> str:
    """The verdict of an exact computation in :data:`DETERMINISTIC`; anything else needs seeds."""
    if name not in DETERMINISTIC:
        raise ValueError(f"{name!r} is not an exact computation; only {list(DETERMINISTIC)} are judged "
                         "without seeds")
    return "held" if holds else "failed"


def rule() -> str:
    """The rule, in the words the book prints, from the constants above."""
    level = f"{CONFIDENCE:.0%}"
    return (f"Each verdict is judged on the {level} Welch t-interval of the quantity the prediction is "
            f"about (a difference of seed means; a ratio of seed means through its logarithm; or one mean), "
            f"from at least {MIN_SEEDS} seeds per condition. A prediction that the quantity exceeds (or "
            "stays below) a threshold has held when the whole interval lies beyond the threshold and "
            "failed when the whole interval lies on the other side; a prediction that it lies within a "
            "band has held when the whole interval lies inside the band and failed when the whole "
            "interval lies outside it. Otherwise the verdict is inconclusive. Only exact computations "
            f"({'; '.join(DETERMINISTIC)}) are judged without seeds.")
