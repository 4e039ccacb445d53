"""Frontiers and curve verdicts against brute-force computations."""

import math

import numpy as np
import pandas as pd
import pytest

from dfsae.paper import record as R
from dfsae.paper.frontier import frontier_at, ratio_to_frontier


def brute_frontier(l0, xs, ys):
    """Lowest FVU with at most l0 active units, by hand: envelope points, then log-linear."""
    pts = sorted(zip(xs, ys, strict=True))
    env, best = [], math.inf
    for x, y in pts:
        best = min(best, y)
        env.append((x, best))
    if l0 < env[0][0]:
        return math.nan
    if l0 >= env[-1][0]:
        return env[-1][1]
    for (x0, y0), (x1, y1) in zip(env, env[1:], strict=False):
        if x0 <= l0 <= x1:
            if x1 == x0:
                return min(y0, y1)
            t = (math.log(l0) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return y0 + t * (y1 - y0)
    raise AssertionError


def test_frontier_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    xs = rng.uniform(1, 100, 9)
    ys = rng.uniform(0.05, 1.0, 9)          # not monotone: the envelope must take over
    queries = [0.5, 1.0, 3.0, 17.0, 42.0, 99.0, 150.0] + list(xs)
    got = frontier_at(queries, xs, ys)
    for q, g in zip(queries, got, strict=True):
        want = brute_frontier(q, xs, ys)
        if math.isnan(want):
            assert math.isnan(g), q
        else:
            assert g == pytest.approx(want, rel=1e-12), q


def test_frontier_is_nan_below_the_sparsest_point_and_flat_above():
    out = frontier_at([2.0, 200.0], [4.0, 40.0], [0.5, 0.2])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.2)


def test_ratio_takes_the_best_baseline_at_each_point():
    base = pd.DataFrame({"family": ["a", "a", "b", "b"], "l0": [2.0, 20.0, 5.0, 50.0],
                         "fvu": [0.8, 0.4, 0.5, 0.1]})
    pts = pd.DataFrame({"l0": [1.0, 10.0, 60.0], "fvu": [0.3, 0.6, 0.3]})
    out = ratio_to_frontier(pts, base)
    assert math.isnan(out.ratio[0]) and pd.isna(out.frontier_family[0])
    a10 = 0.8 + (math.log(10) - math.log(2)) / (math.log(20) - math.log(2)) * (0.4 - 0.8)
    b10 = 0.5 + (math.log(10) - math.log(5)) / (math.log(50) - math.log(5)) * (0.1 - 0.5)
    assert out.frontier[1] == pytest.approx(min(a10, b10))
    assert out.frontier_family[1] == ("a" if a10 < b10 else "b")
    assert out.ratio[2] == pytest.approx(0.3 / 0.1) and out.frontier_family[2] == "b"


def test_ratio_names_a_missing_column():
    with pytest.raises(ValueError, match="fvu"):
        ratio_to_frontier(pd.DataFrame({"l0": [1.0]}),
                          pd.DataFrame({"l0": [1.0], "fvu": [0.1], "family": ["a"]}))


def test_judge_curve():
    assert R.judge_curve([0.5, -0.5], [0.1, 0.1]) == "partly held"
    assert R.judge_curve([0.5, 0.0, -0.5], [0.1, 0.1, 0.1]) == "partly held"   # mixed, whatever lies between
    assert R.judge_curve([0.5, 0.3], [0.1, 0.1]) == "held"
    assert R.judge_curve([-0.5, -0.3], [0.1, 0.1]) == "failed"
    assert R.judge_curve([0.5, 0.05], [0.1, 0.1]) == R.INCONCLUSIVE
    assert R.judge_curve([], []) == R.INCONCLUSIVE


def test_compare_curves_reads_the_named_columns():
    from dfsae.paper.frontier import compare_curves
    base = pd.DataFrame({"family": ["a", "a"], "l0": [2.0, 20.0], "fvu": [0.8, 0.4]})
    curve = pd.DataFrame({"l0": [20.0, 1.0], "fvu_wt_scaled": [0.44, 0.1], "l0_similarity": [30.0, 30.0],
                          "fvu_sim_scaled": [0.8, 0.9], "effective_components": [3.0, 3.0]})
    m, t, text = compare_curves(curve, base, "energy", ["β=1", "β=10"])
    assert list(m) == pytest.approx([1.1 - 1.1]) and list(t) == pytest.approx([0.2 * 1.1])
    assert "no baseline as sparse" in text
    m, _, _ = compare_curves(curve, base, "similarity", ["β=1", "β=10"])
    assert list(m) == pytest.approx([1.1 - 2.0, 1.1 - 2.25])
    with pytest.raises(ValueError, match="reading"):
        compare_curves(curve, base, "energies", ["β=1", "β=10"])


def test_sparsity_at_inverts_the_frontier():
    from dfsae.paper.frontier import sparsity_at
    xs, ys = [2.0, 5.0, 20.0, 80.0], [0.9, 0.6, 0.65, 0.2]   # 20 is above the envelope
    assert sparsity_at([0.6], xs, ys)[0] == pytest.approx(5.0)
    assert math.isnan(sparsity_at([0.1], xs, ys)[0])
    assert sparsity_at([0.95], xs, ys)[0] == pytest.approx(2.0)
    target = 0.4
    got = sparsity_at([target], xs, ys)[0]
    assert frontier_at([got], xs, ys)[0] == pytest.approx(target)      # the round trip
    assert 5.0 < got < 80.0


def test_curve_summary_counts_by_hand():
    from dfsae.paper.frontier import curve_summary
    m = pd.Series([0.5, -0.5, 0.01], index=["a", "b", "c"])
    text = curve_summary(m, pd.Series([0.1, 0.1, 0.1], index=m.index))
    assert text == "within 1.1× at 1 of 3 points, beyond it at 1, within tolerance at 1; best 0.60× (a)"


def test_compare_curves_by_width_uses_only_the_baselines_of_the_same_width():
    from dfsae.paper.frontier import compare_curves_by_width

    curves = pd.DataFrame({"K": [64, 64, 256], "lambda_lse": [1.0, 10.0, 1.0], "l0": [20.0, 10.0, 40.0],
                           "fvu_wt_scaled": [0.5, 0.8, 0.3]})
    baselines = pd.DataFrame({"K": [64, 64, 256, 256], "family": ["sae"] * 4, "l0": [5.0, 50.0, 5.0, 50.0],
                              "fvu": [0.4, 0.2, 0.9, 0.1]})
    margins, tolerances = compare_curves_by_width(curves, baselines, "energy")
    # by hand: the K = 64 frontier from (5, 0.4) to (50, 0.2), log-linear in L0;
    # the K = 256 one from (5, 0.9) to (50, 0.1)
    at = {64: lambda l0: 0.4 + (0.2 - 0.4) * math.log(l0 / 5) / math.log(10),
          256: lambda l0: 0.9 + (0.1 - 0.9) * math.log(l0 / 5) / math.log(10)}
    expected = {"K=64 β=1": 0.5 / at[64](20), "K=64 β=10": 0.8 / at[64](10), "K=256 β=1": 0.3 / at[256](40)}
    assert list(margins.index) == list(expected)
    for label, ratio in expected.items():
        assert margins[label] == pytest.approx(1.1 - ratio)
        assert tolerances[label] == pytest.approx(0.2 * ratio)


# -- frontiers with seeds, PCA and the matched knob --------------------------------------------
def seeded_baselines():
    """Two families, two sweep points, three seeds; family "b" is better (lower FVU) everywhere."""
    rows = []
    for fam, shift in (("a", 0.1), ("b", 0.0)):
        for seed, noise in enumerate((0.0, 0.01, -0.01)):
            rows += [{"family": fam, "seed": seed, "l0": 10.0, "fvu": 0.5 + shift + noise},
                     {"family": fam, "seed": seed, "l0": 40.0, "fvu": 0.2 + shift + noise}]
    return pd.DataFrame(rows)


def test_the_seeded_frontier_is_drawn_per_seed_by_hand():
    from dfsae.paper.frontier import seeded_frontier

    fam, values = seeded_frontier(seeded_baselines(), 20.0)
    t = math.log(20 / 10) / math.log(40 / 10)                          # log-linear between 10 and 40
    expected = [0.5 + noise + t * (0.2 - 0.5) for noise in (0.0, 0.01, -0.01)]
    assert fam == "b" and values == pytest.approx(expected, rel=1e-12)
    assert seeded_frontier(seeded_baselines(), 5.0)[0] is None         # no family that sparse


def test_ratio_intervals_use_the_frontier_familys_seeds_as_the_other_side():
    from dfsae.paper import judgement as J
    from dfsae.paper.frontier import ratio_intervals, seeded_frontier

    curve = pd.DataFrame({"config": ["p"] * 3 + ["q"] * 3, "l0": [20.0] * 3 + [4.0] * 3,
                          "fvu_wt_scaled": [0.9, 0.95, 1.0, 0.7, 0.7, 0.7]})
    intervals, where, unmatched = ratio_intervals(curve, seeded_baselines(), "energy")
    _, values = seeded_frontier(seeded_baselines(), 20.0)
    expected = J.ratio_interval([0.9, 0.95, 1.0], values)
    assert (intervals["p"].low, intervals["p"].high) == pytest.approx((expected.low, expected.high))
    assert where["p"] == ("b", 20.0) and unmatched == ["q"]


def test_sparsity_intervals_divide_the_units_needed_by_the_points_own():
    from dfsae.paper.frontier import sparsity_intervals

    curve = pd.DataFrame({"config": ["p"] * 3, "l0": [40.0, 40.0, 40.0], "fvu_wt_scaled": [0.5, 0.5, 0.5]})
    intervals, where, _ = sparsity_intervals(curve, seeded_baselines(), "energy")
    # family b reaches 0.5 at exactly L0 10 for seed 0; seed 1 (0.51 at 10) needs a little more, seed 2 less.
    assert where["p"] == "b" and intervals["p"].estimate == pytest.approx(
        np.mean([10.0, 10 * 4 ** (0.01 / 0.3), 10.0]) / 40.0, rel=1e-9)


def test_pca_fvu_against_an_eigendecomposition():
    from dfsae.paper.frontier import pca_fvu

    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 6)) @ np.diag([5, 3, 2, 1, 0.5, 0.1])
    test = rng.normal(size=(50, 6)) @ np.diag([5, 3, 2, 1, 0.5, 0.1])
    mean = train.mean(0)
    w, v = np.linalg.eigh(np.cov(train.T))
    v = v[:, np.argsort(w)[::-1]]
    for n in (0, 2, 6):
        p = v[:, :n] @ v[:, :n].T
        rec = mean + (test - mean) @ p
        expected = ((test - rec) ** 2).sum() / ((test - test.mean(0)) ** 2).sum()
        assert pca_fvu(train, test, [n])[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="counts must lie"):
        pca_fvu(train, test, [7])


def test_the_knob_for_an_l0_interpolates_in_logs_and_refuses_to_extrapolate():
    from dfsae.paper.frontier import knob_for_l0

    assert knob_for_l0([0.1, 1.0], [40.0, 10.0], 20.0) == pytest.approx(0.1 * 10 ** 0.5)
    assert knob_for_l0([0.1, 1.0, 3.0], [40.0, 10.0, 2.0], 10.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside the sweep's range"):
        knob_for_l0([0.1, 1.0], [40.0, 10.0], 50.0)
    with pytest.raises(ValueError, match="not monotone"):
        knob_for_l0([0.1, 1.0, 3.0], [40.0, 10.0, 20.0], 15.0)


def test_bracketing_names_the_two_sweep_points_around_a_value():
    import pandas as pd

    from dfsae.paper.frontier import bracketing

    rows = pd.DataFrame({"config": ["a", "a", "b", "b", "c", "c"], "l0": [9, 11, 19, 21, 39, 41.0]})
    assert bracketing(rows, 25, "l0") == {"b", "c"}
    assert bracketing(rows, 20, "l0") == {"b"}                       # a point at the value itself
    assert bracketing(rows, 5, "l0") == {"a"} and bracketing(rows, 50, "l0") == {"c"}


def test_bearing_labels_are_the_best_familys_neighbours_of_each_point():
    import pandas as pd

    from dfsae.paper.frontier import bearing_labels

    # family "good" beats "bad" everywhere; the decoder-free point sits at L0 = 15 and FVU 0.45
    rows = []
    for seed in range(3):
        for fam, shift in (("good", 0.0), ("bad", 0.3)):
            for label, l0, fvu in (("lo", 5, 0.6), ("mid", 10, 0.5), ("hi", 20, 0.4), ("top", 40, 0.3)):
                rows.append({"family": fam, "config": f"{fam} {label}", "seed": seed, "l0": l0 + 0.01 * seed,
                             "fvu": fvu + shift, "fvu_linear": fvu + shift})
    base = pd.DataFrame(rows)
    points = pd.DataFrame({"config": ["β=1"] * 3, "seed": range(3), "l0": [15.0] * 3,
                           "l0_similarity": [15.0] * 3,
                           "effective_components": [15.0] * 3, "fvu_wt_scaled": [0.45, 0.46, 0.44],
                           "fvu_sim_scaled": [0.45, 0.46, 0.44], "fvu_linear": [0.45, 0.46, 0.44]})
    assert bearing_labels(points, base) == {"good mid", "good hi"}
