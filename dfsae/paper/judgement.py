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

A prediction about a curve (e.g. "comparable reconstruction" along a sweep) is judged at each of its
points and combined by :func:`judge_points`: *held* (or *failed*) when it held (or failed) at every
point, *partly held* when it held at some and failed at others, otherwise *inconclusive*.

Every verdict needs at least :data:`MIN_SEEDS` replicates on each side. Only exact computations
(:data:`DETERMINISTIC`) are judged without seeds. :func:`rule` returns the sentence the book
prints, made from the same constants this module applies. These are statistical decisions about
predictions; what a re-execution on another machine may move is a different question, answered by
:mod:`dfsae.paper.record`'s tolerances, and no verdict uses one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

CONFIDENCE = 0.95
"""The confidence level of every verdict's interval."""
MIN_SEEDS = 3
"""The fewest replicates per condition a verdict is judged on."""
VERDICTS = ("held", "failed", "inconclusive", "partly held")
KINDS = ("greater", "less", "within")
DETERMINISTIC = ("parameter count", "the identity ∂L_LSE/∂E = softmax(−E)")
"""The only quantities judged without seeds: exact computations that no seed can change."""
PARAMETER_COUNT, IDENTITY = DETERMINISTIC


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
            f"({'; '.join(DETERMINISTIC)}) are judged without seeds. A prediction about a curve is "
            "judged at each of its points: held (failed) when it held (failed) at every point, partly "
            "held when it held at some and failed at others, otherwise inconclusive.")


@dataclass(frozen=True)
class Judgement:
    """A verdict with the data it was decided on: what a record stores beside the verdict word.

    ``intervals`` maps each judged point (one entry for a single comparison) to its interval and
    its own verdict; ``seeds`` is the fewest replicates per condition behind any of them
    (``None`` for an exact computation, ``deterministic=True``). ``points`` keeps, per label, the
    threshold the point was judged against and its ``slack``: how far its estimate may move on a
    re-execution elsewhere (a reproduction tolerance, used only by that check, never here)."""

    verdict: str
    kind: str
    threshold: float | tuple[float, float] | None
    intervals: dict
    seeds: int | None
    deterministic: bool = False
    points: dict = field(default_factory=dict)

    def as_entry(self) -> dict:
        """The decision data a record stores: verdict, seeds (or deterministic), rule, intervals."""
        entry = {"value": self.verdict, "rule": rule(), "kind_of_prediction": self.kind,
                 "threshold": list(self.threshold) if isinstance(self.threshold, tuple) else self.threshold,
                 "intervals": {label: {"estimate": i.estimate, "low": i.low, "high": i.high,
                                       "confidence": i.confidence, "seeds": list(i.seeds),
                                       "method": i.method, "verdict": v, **_point(self.points.get(label))}
                               for label, (i, v) in self.intervals.items()}}
        if self.deterministic:
            entry["deterministic"] = True
        else:
            entry["seeds"] = self.seeds
        return entry


def _point(point) -> dict:
    if point is None:
        return {}
    t = point["threshold"]
    return {"threshold": list(t) if isinstance(t, tuple) else t, "slack": point["slack"]}


def judge(interval: Interval, kind: str, threshold, label: str = "", slack: float = 0.0) -> Judgement:
    """The :class:`Judgement` of one interval against one prediction (:func:`verdict`). ``slack``
    is how far the estimate may move when the notebook is re-executed on another machine (see
    :class:`Judgement`)."""
    v = verdict(interval, kind, threshold)
    return Judgement(v, kind, threshold, {label: (interval, v)}, min(interval.seeds),
                     points={label: {"threshold": threshold, "slack": float(slack)}})


def judge_points(intervals: dict, kind: str, threshold, slack: float = 0.0) -> Judgement:
    """One verdict over the points of a curve, each judged on its own interval (``{label:
    Interval}``): held or failed when every point is, partly held when some held and some failed,
    otherwise inconclusive. Refuses an empty curve (there is nothing to judge)."""
    if not intervals:
        raise ValueError("no point to judge: every point of the curve lacks a comparison (e.g. no "
                         "baseline is as sparse); report that instead of a verdict")
    each = {label: (i, verdict(i, kind, threshold)) for label, i in intervals.items()}
    words = {v for _, v in each.values()}
    combined = (words.pop() if len(words) == 1 and words <= {"held", "failed"} else
                "partly held" if {"held", "failed"} <= words else "inconclusive")
    return Judgement(combined, kind, threshold, each, min(min(i.seeds) for i in intervals.values()),
                     points={label: {"threshold": threshold, "slack": float(slack)} for label in intervals})


def exact(name: str, holds: bool, estimate: float | None = None) -> Judgement:
    """The :class:`Judgement` of an exact computation in :data:`DETERMINISTIC` (no seeds)."""
    v = deterministic(name, holds)
    intervals = {} if estimate is None else {
        name: (Interval(float(estimate), float(estimate), float(estimate), 1.0, (1,), "exact"), v)}
    return Judgement(v, "exact", None, intervals, None, deterministic=True)


def counts(judgement: Judgement) -> str:
    """"held at 2 of 5 points, failed at 3" — the per-point verdicts of a curve, counted."""
    words = [v for _, v in judgement.intervals.values()]
    n = len(words)
    parts = [f"{w} at {words.count(w)}" for w in VERDICTS if words.count(w)]
    head = f"{parts[0]} of {n} point{'s' if n != 1 else ''}"
    return head if len(parts) == 1 else head + ", " + ", ".join(parts[1:])


def describe(judgement: Judgement, fmt: str = ".2f", suffix: str = "", notes: dict | None = None) -> str:
    """The evidence of a judgement in words: each point's estimate, its interval and its verdict,
    e.g. "β=1: 3.73× [3.61, 3.86] (vs TopK), failed"; ``notes`` adds a word per label."""
    notes = notes or {}
    level = f"{judgement.intervals and next(iter(judgement.intervals.values()))[0].confidence:.0%}"
    parts = []
    for label, (i, v) in judgement.intervals.items():
        note = f" ({notes[label]})" if label in notes else ""
        where = f"{label}: " if label else ""
        parts.append(f"{where}{i.estimate:{fmt}}{suffix} [{i.low:{fmt}}, {i.high:{fmt}}]{note}, {v}")
    return f"{level} intervals: " + "; ".join(parts) if parts else "no point judged"


def combine(parts: dict) -> Judgement:
    """One verdict from several judgements that together make one prediction (e.g. "no unit dead
    *and* redundancy below 0.05"), by the rule for a curve: held or failed when every part is,
    partly held when some held and some failed, otherwise inconclusive. The parts' intervals are
    kept, each under "part: point"."""
    if not parts:
        raise ValueError("nothing to combine")
    words = {j.verdict for j in parts.values()}
    combined = (words.pop() if len(words) == 1 and words <= {"held", "failed"} else
                "partly held" if "held" in words and ("failed" in words or "partly held" in words) or
                words == {"partly held"} else "inconclusive")
    intervals = {(f"{name}: {label}" if label else name): iv for name, j in parts.items()
                 for label, iv in j.intervals.items()}
    points = {(f"{name}: {label}" if label else name): pt for name, j in parts.items()
              for label, pt in j.points.items()}
    seeds = [j.seeds for j in parts.values() if not j.deterministic]
    return Judgement(combined, "all of", None, intervals, min(seeds) if seeds else None,
                     deterministic=not seeds, points=points)


# -- convergence ------------------------------------------------------------------------------
LATE = 0.9
"""The fraction of training steps after which a model is measured a second time: the change of a
metric between there and the end is its change over the last 10 % of training."""
CONVERGENCE_METRICS = ("l0", "fvu_own", "fvu_wt_scaled", "fvu_linear", "dead_frac", "probe_acc",
                       "effective_components", "max_resp", "redundancy_per_pair")
"""The metrics whose convergence is checked, where a run reports them: the ones verdicts are
judged on (sparsity, the three reconstructions, dead units, probes, exp H(r), the largest
responsibility, redundancy)."""


def late_name(metric: str) -> str:
    """The column that holds ``metric`` measured after :data:`LATE` of the training steps."""
    return f"late_{metric}"


@dataclass(frozen=True)
class Convergence:
    """How much a metric changed over the last (1 − :data:`LATE`) of training: the mean over seeds
    of (final − late) value, against the seeds' sd of the final value."""

    metric: str
    final: float
    change: float
    sd: float
    seeds: int

    @property
    def converged(self) -> bool:
        return abs(self.change) <= self.sd


def convergence(metric: str, final, late) -> Convergence:
    """The :class:`Convergence` of one metric from per-seed ``final`` and ``late`` values (paired
    by seed). It needs at least two seeds: the criterion compares the change with a seed sd."""
    final, late = _replicates(f"{metric} (final)", final), _replicates(f"{metric} (late)", late)
    if final.shape != late.shape:
        raise ValueError(f"{metric}: {len(final)} final values but {len(late)} late ones; they are "
                         "paired by seed")
    return Convergence(metric, float(final.mean()), float((final - late).mean()),
                       float(final.std(ddof=1)), len(final))


def convergence_rule() -> str:
    """The convergence criterion, in the words the book prints, from :data:`LATE`."""
    tail = f"{1 - LATE:.0%}"
    return (f"A metric has converged when its change over the last {tail} of the training steps (its "
            f"value at the end minus its value after {LATE:.0%} of the steps, averaged over the seeds) "
            "is no larger in magnitude than the standard deviation of its final value across the seeds. "
            "A result that rests on a metric that has not converged describes the model at this "
            "training length, not its limit.")


METRIC_NAMES = {"l0": "L0", "fvu_own": "FVU (own decoder)", "fvu_wt_scaled": "FVU (c·Wᵀa)",
                "fvu_linear": "FVU (post-hoc decoder)", "dead_frac": "dead fraction",
                "probe_acc": "probe accuracy", "effective_components": "exp H(r)", "max_resp": "max r",
                "redundancy_per_pair": "redundancy per pair"}


def convergence_table(frame, by: str = "config", metrics=CONVERGENCE_METRICS):
    """Every metric's :func:`convergence` per ``by`` group of a results frame with ``late_<metric>``
    columns (runs made with ``late=True``). Returns ``(table, changes, checks)``: ``table`` has one
    row per group, with how many of its metrics have converged and, for those that have not, the
    change and the sd; ``changes`` is the per-seed change (final − late), one column per metric,
    for a record; ``checks`` is the list of (group, :class:`Convergence`), for counting. A model
    with a decoder of its own (``fvu_own``) is not checked on ``fvu_wt_scaled``, which no verdict
    judges it by. A metric a family does not report (or that is undefined, e.g. redundancy with
    one live unit) is left out of its group; a run measured at the end but not late is refused."""
    import pandas as pd

    metrics = [m for m in metrics if m in frame.columns and late_name(m) in frame.columns]
    if not metrics:
        raise ValueError("the frame has no late_<metric> columns: train its runs with late=True")
    rows, checks, change_rows = {}, [], []
    for group, runs in frame.groupby(by, sort=False):
        done, total, open_ = 0, 0, []
        own = "fvu_own" in runs and runs.fvu_own.notna().any()
        for m in metrics:
            if own and m == "fvu_wt_scaled":  # a model with a decoder is judged by its own reconstruction
                continue
            final, late = runs[m].astype(float), runs[late_name(m)].astype(float)
            lacking = int((final.notna() & late.isna()).sum())
            if lacking:
                raise ValueError(f"{group}: {lacking} of its runs lack {late_name(m)}; every run of a group "
                                 "must be measured late")
            both = final.notna() & late.notna()
            if both.sum() < 2:  # not reported by this family, or undefined (e.g. redundancy, one live unit)
                continue
            c = convergence(m, final[both], late[both])
            checks.append((group, c))
            total += 1
            done += c.converged
            if not c.converged:
                open_.append(f"{METRIC_NAMES.get(m, m)} {c.change:+.3g} (sd {c.sd:.2g})")
        rows[group] = {"converged": f"{done} of {total}",
                       "not converged: change (sd)": "; ".join(open_) or "–"}
        for r in runs.to_dict("records"):
            change_rows.append({by: group, **{m: r[m] - r[late_name(m)] for m in metrics}})
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = by
    return table, pd.DataFrame(change_rows), checks


def convergence_summary(checks, limit: int = 6) -> str:
    """"11 of 12 (model, metric) pairs have converged; not yet: β=1 exp H(r) (change −3.1, sd 0.42)"."""
    n, bad = len(checks), [(g, c) for g, c in checks if not c.converged]
    head = f"{n - len(bad)} of {n} (model, metric) pairs have converged"
    if not bad:
        return head
    shown = "; ".join(f"{g} {METRIC_NAMES.get(c.metric, c.metric)} (change {c.change:+.3g}, sd {c.sd:.2g})"
                      for g, c in bad[:limit])
    more = f"; and {len(bad) - limit} more (see the table)" if len(bad) > limit else ""
    return head + "; not yet: " + shown + more
