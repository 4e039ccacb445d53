"""The verdict rule: intervals against scipy and closed forms, and verdicts that change exactly
where the printed rule says when seed values are moved by known amounts."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from dfsae.paper import judgement as J

A = [0.51, 0.47, 0.55, 0.50]
B = [0.40, 0.44, 0.39]


def test_the_difference_interval_is_scipys_welch_interval():
    ours = J.difference_interval(A, B)
    ref = stats.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert ours.low == pytest.approx(ref.low, rel=1e-12) and ours.high == pytest.approx(ref.high, rel=1e-12)
    assert ours.estimate == pytest.approx(np.mean(A) - np.mean(B)) and ours.seeds == (4, 3)


def test_the_mean_interval_is_the_one_sample_t_interval():
    ours = J.mean_interval(A)
    ref = stats.ttest_1samp(A, 0).confidence_interval(0.95)
    assert (ours.low, ours.high) == pytest.approx((ref.low, ref.high), rel=1e-12)


def test_the_ratio_interval_by_the_delta_method_written_out():
    a, b = np.array(A), np.array(B)
    va = a.var(ddof=1) / (len(a) * a.mean() ** 2)
    vb = b.var(ddof=1) / (len(b) * b.mean() ** 2)
    df = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    ours = J.ratio_interval(A, B)
    centre = math.log(a.mean() / b.mean())
    expected = (math.exp(centre - half), math.exp(centre + half))
    assert (ours.low, ours.high) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="positive means"):
        J.ratio_interval([-1, -2, -3], B)


def test_a_shift_flips_the_verdict_exactly_where_the_rule_says():
    """Shifting every replicate of a by δ shifts the difference interval by δ, so "greater than 0"
    turns from inconclusive to held exactly when δ passes −low, and from failed to inconclusive
    when δ passes −high."""
    base = J.difference_interval(A, B)
    for kind_threshold, edge, before, after in [(0.0, -base.low, "inconclusive", "held"),
                                                (0.0, -base.high, "failed", "inconclusive")]:
        for delta, expected in ((edge - 1e-9, before), (edge + 1e-9, after)):
            moved = J.difference_interval(np.array(A) + delta, B)
            assert J.verdict(moved, "greater", kind_threshold) == expected, (edge, delta)
    # "less than 0" is the mirror image.
    assert J.verdict(J.difference_interval(np.array(A) - base.high - 1e-9, B), "less", 0.0) == "held"


def test_a_band_is_held_inside_failed_outside_and_inconclusive_across_an_edge():
    a = [1.00, 1.01, 0.99]
    b = [1.00, 1.00, 1.00]
    inside = J.ratio_interval(a, b)
    assert J.verdict(inside, "within", (0.9, 1.1)) == "held"
    assert J.verdict(inside, "within", (1.2, 1.3)) == "failed"
    assert J.verdict(inside, "within", (inside.estimate, 1.5)) == "inconclusive"
    scale = 1.1 / inside.low + 1e-9                         # move a until the interval leaves the band
    assert J.verdict(J.ratio_interval(np.array(a) * scale, b), "within", (0.9, 1.1)) == "failed"


def test_too_few_seeds_and_unknown_exact_quantities_are_refused():
    two = J.difference_interval([1.0, 2.0], [1.0, 1.5])
    with pytest.raises(ValueError, match="at least 3 seeds"):
        J.verdict(two, "greater", 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        J.difference_interval([1.0], B)
    assert J.deterministic("parameter count", True) == "held"
    with pytest.raises(ValueError, match="not an exact computation"):
        J.deterministic("reconstruction", True)


def test_the_printed_rule_states_the_constants_the_code_applies(monkeypatch):
    assert "95% Welch t-interval" in J.rule() and f"at least {J.MIN_SEEDS} seeds" in J.rule()
    monkeypatch.setattr(J, "CONFIDENCE", 0.9)
    monkeypatch.setattr(J, "MIN_SEEDS", 5)
    assert "90% Welch t-interval" in J.rule() and "at least 5 seeds" in J.rule()


# -- judgements of curves, and what a record stores ---------------------------------------------
def test_a_curve_is_held_failed_or_partly_held_point_by_point():
    held = J.ratio_interval([1.00, 1.01, 0.99], [1.0, 1.02, 0.98])        # ≈ 1, far below 1.1
    failed = J.ratio_interval([2.0, 2.1, 1.9], [1.0, 1.02, 0.98])         # ≈ 2, far above
    straddling = J.ratio_interval([1.0, 1.3, 1.0], [1.0, 1.02, 0.98])     # interval contains 1.1
    assert straddling.low < 1.1 < straddling.high
    assert J.judge_points({"a": held, "b": held}, "less", 1.1).verdict == "held"
    assert J.judge_points({"a": failed, "b": failed}, "less", 1.1).verdict == "failed"
    assert J.judge_points({"a": held, "b": failed}, "less", 1.1).verdict == "partly held"
    assert J.judge_points({"a": held, "b": failed, "c": straddling}, "less", 1.1).verdict == "partly held"
    assert J.judge_points({"a": held, "c": straddling}, "less", 1.1).verdict == "inconclusive"
    j = J.judge_points({"a": held, "b": failed}, "less", 1.1)
    assert j.seeds == 3 and J.counts(j) == "held at 1 of 2 points, failed at 1"
    with pytest.raises(ValueError, match="no point to judge"):
        J.judge_points({}, "less", 1.1)


def test_a_judgement_entry_holds_its_seeds_rule_and_intervals():
    j = J.judge(J.difference_interval(A, B), "greater", 0.0, "point")
    entry = j.as_entry()
    assert entry["value"] == j.verdict == "held" and entry["seeds"] == 3 and entry["rule"] == J.rule()
    assert entry["intervals"]["point"]["low"] == pytest.approx(J.difference_interval(A, B).low)
    exact = J.exact("parameter count", True, 0.504).as_entry()
    assert exact["deterministic"] is True and "seeds" not in exact
    text = J.describe(j, fmt=".3f")
    assert text.startswith("95% intervals: point: 0.") and text.endswith(", held")


def test_stored_per_seed_runs_are_judged_as_the_rule_says():
    """On the book's stored runs (the 5.3 benchmark): moving one side by exactly the interval's
    distance to the threshold turns the verdict where the rule says."""
    from pathlib import Path

    import pandas as pd

    folder = Path(__file__).resolve().parents[1] / "notebooks" / "stored" / "benchmark"
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    if not runs:
        pytest.fail(f"no stored runs in {folder}")
    frame = pd.DataFrame([{"family": r["config"]["options"]["family"] if "family" in r["config"]["options"]
                           else r["config"].get("family"), "seed": r["seed"], **r["metrics"],
                           "opts": json.dumps(r["config"], sort_keys=True)} for r in runs])
    groups = [g for _, g in frame.groupby("opts") if len(g) >= 3]
    assert len(groups) >= 2
    a, b = groups[0].fvu_linear.to_numpy(), groups[1].fvu_linear.to_numpy()
    base = J.ratio_interval(a, b)
    # Scaling a by c scales the ratio interval by c: "less than t" turns held exactly at c = t / high.
    t = 1.1
    c = t / base.high
    assert J.verdict(J.ratio_interval(a * c * (1 - 1e-9), b), "less", t) == "held"
    assert J.verdict(J.ratio_interval(a * c * (1 + 1e-9), b), "less", t) == "inconclusive"
    c = t / base.low
    assert J.verdict(J.ratio_interval(a * c * (1 + 1e-9), b), "less", t) == "failed"


def test_parts_of_one_prediction_combine_like_the_points_of_a_curve():
    held = J.judge(J.mean_interval([0.01, 0.011, 0.012]), "less", 0.05)
    failed = J.judge(J.mean_interval([0.5, 0.51, 0.49]), "less", 0.05)
    unsure = J.judge(J.mean_interval([0.01, 0.09, 0.05]), "less", 0.05)
    assert J.combine({"a": held, "b": held}).verdict == "held"
    assert J.combine({"a": failed, "b": failed}).verdict == "failed"
    assert J.combine({"a": held, "b": failed}).verdict == "partly held"
    assert J.combine({"a": held, "b": unsure}).verdict == "inconclusive"
    both = J.combine({"redundancy": held, "dead": failed})
    assert set(both.intervals) == {"redundancy", "dead"} and both.seeds == 3
