"""Convergence: a model measured after 90 % of its steps and at the end, the change judged
against the seed sd; the snapshot is the model a shorter run trains; stored runs gain the late
measurement only by a retraining that reproduces their final metrics."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dfsae import DecoderFreeObjective, DecoderFreeSAE
from dfsae.paper import experiments as ex
from dfsae.paper import judgement as J
from dfsae.paper import stored as S
from dfsae.paper.record import ReproductionError, Tolerance
from dfsae.training import train


@pytest.fixture
def small(digits):
    return type(digits)(digits.x_train[:256], digits.y_train[:256], digits.x_test[:128], digits.y_test[:128],
                        "small")


def test_the_snapshot_is_the_model_a_run_of_that_many_steps_trains(small):
    x = small.x_train[:200]
    long, short = DecoderFreeSAE(784, 8, seed=3), DecoderFreeSAE(784, 8, seed=3)
    # 200 inputs, batch 50: 4 steps an epoch; 10 epochs, 90 % = 36 steps = 9 whole epochs.
    h = train(long, DecoderFreeObjective(), x, epochs=10, batch_size=50, seed=5, progress=False,
              snapshot_at=0.9)
    train(short, DecoderFreeObjective(), x, epochs=9, batch_size=50, seed=5, progress=False)
    assert h.steps == 40 and h.snapshot_step == 36
    for name, value in short.state_dict().items():
        torch.testing.assert_close(h.snapshot[name], value, rtol=0, atol=0)
    assert not torch.equal(h.snapshot["encoder.weight"], long.W.detach())  # training went on after it


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.9"])
def test_snapshot_at_outside_0_1_is_refused_before_training(small, bad):
    with pytest.raises(ValueError, match="snapshot_at"):
        train(DecoderFreeSAE(784, 8), DecoderFreeObjective(), small.x_train, epochs=1, batch_size=64,
              progress=False, snapshot_at=bad)


def test_convergence_compares_the_mean_change_with_the_seed_sd():
    final = np.array([1.0, 2.0, 3.0])                                # sd 1
    c = J.convergence("l0", final, final - 0.5)
    assert c.change == pytest.approx(0.5) and c.sd == pytest.approx(1.0) and c.converged
    assert not J.convergence("l0", final, final - 1.5).converged
    assert J.convergence("l0", final, final + 1.0).converged          # |−1| ≤ 1, the boundary
    assert not J.convergence("l0", final, final + 1.001).converged
    flat = np.array([2.0, 2.0, 2.0])                                 # sd 0: only no change converges
    assert J.convergence("dead_frac", flat, flat).converged
    assert not J.convergence("dead_frac", flat, flat - 1e-6).converged
    with pytest.raises(ValueError, match="paired by seed"):
        J.convergence("l0", final, final[:2])


def test_the_printed_rule_comes_from_the_constant(monkeypatch):
    assert "last 10%" in J.convergence_rule() and "after 90%" in J.convergence_rule()
    monkeypatch.setattr(J, "LATE", 0.8)
    assert "last 20%" in J.convergence_rule() and "after 80%" in J.convergence_rule()


def test_the_convergence_table_names_what_has_not_converged():
    frame = pd.DataFrame({"config": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
                          "l0": [10.0, 11, 12, 5, 5.1, 4.9], "late_l0": [9.5, 10.5, 11.5, 7, 7.1, 6.9]})
    table, changes, checks = J.convergence_table(frame)
    assert table.loc["a", "converged"] == "1 of 1" and table.loc["a", "not converged: change (sd)"] == "–"
    assert table.loc["b", "converged"] == "0 of 1"
    assert table.loc["b", "not converged: change (sd)"] == "L0 -2 (sd 0.1)"
    assert changes.groupby("config").l0.mean().round(6).to_dict() == {"a": 0.5, "b": -2.0}
    summary = J.convergence_summary(checks)
    assert summary.startswith("1 of 2 (model, metric) pairs have converged") and "b L0" in summary
    with pytest.raises(ValueError, match="late=True"):
        J.convergence_table(frame.drop(columns="late_l0"))
    partial = frame.assign(late_l0=frame.late_l0.where(frame.seed != 1))
    with pytest.raises(ValueError, match="lack late_l0"):
        J.convergence_table(partial)


def test_a_run_measured_late_reports_the_snapshot_metrics(small):
    config = ex.RunConfig.of("decoder_free", hidden_dim=8, epochs=10, batch_size=64)
    _, history, metrics = ex.run(config, small, seed=1, probe=False, late=True)
    assert history.snapshot_step == 36                               # 4 steps an epoch, 40 in all
    model, _ = config.build(784, 1)
    model.load_state_dict(history.snapshot)
    model.eval()
    from dfsae.metrics import evaluate

    again = evaluate(model, small, probe=False)
    for m in ("l0", "fvu_linear", "dead_frac", "fvu_wt_scaled"):
        assert metrics[J.late_name(m)] == pytest.approx(again[m], rel=1e-12, abs=1e-12)
    assert metrics["fvu_wt_scaled"] != metrics["late_fvu_wt_scaled"]


def test_sd_bound_is_its_own_f_ratio_not_its_means_tolerance():
    # F(2, 2) has CDF x / (1 + x), so its quantile q is q / (1 − q): the factor in closed form.
    q = 1 - (2 * (1 - 0.5 * (1 + math.erf(3 / math.sqrt(2))))) / 2
    factor = math.sqrt(q / (1 - q))
    t = Tolerance.sd_spread(0.01, 3)
    assert t.factor == pytest.approx(factor, rel=1e-6)
    assert t.allows(0.01, 0.0099 * factor) and not t.allows(0.01, 0.0101 * factor)
    assert t.allows(0.01, 0.0101 / factor) and not t.allows(0.01, 0.0099 / factor)
    floor = Tolerance.sd_spread(0.0, 3, floor=Tolerance.count(3))  # every seed equal: one seed may move
    assert floor.allows(0.0, 2.9) and not floor.allows(0.0, 3.1)
    assert Tolerance.sd_spread(0.01, 10).factor < factor            # more seeds, a tighter bound
    with pytest.raises(ValueError, match="at least 2 seeds"):
        Tolerance.sd_spread(0.01, 1)


POINT = [{"family": "standard", "label": "SAE", "l1_coefficient": 0.1}]
BUDGET = {"hidden_dim": 8, "epochs": 2, "batch_size": 64, "probe": False}


def test_a_stored_run_gains_its_late_measurement_by_a_retraining_that_matches(tmp_path, small, monkeypatch):
    monkeypatch.delenv("DFSAE_REQUIRE_COMPARISON", raising=False)
    ref = tmp_path / "reference"
    S.RunStore(ref, tmp_path / "w", "small", mode="extend").grid(POINT, small, [0], progress=False, **BUDGET)
    before = S.StoredRun(**__import__("json").loads(next(ref.iterdir()).read_text()))
    assert not S.has_late(before)
    monkeypatch.setenv("DFSAE_REQUIRE_COMPARISON", "1")              # the test suite never upgrades
    with pytest.raises(ReproductionError, match="no late measurement"):
        S.RunStore(ref, tmp_path / "w", "small").grid(POINT, small, [0], progress=False, late=True, **BUDGET)
    monkeypatch.delenv("DFSAE_REQUIRE_COMPARISON")
    frame = S.RunStore(ref, tmp_path / "w", "small", mode="extend").grid(POINT, small, [0], progress=False,
                                                                          late=True, **BUDGET)
    after = S.StoredRun(**__import__("json").loads(next(ref.iterdir()).read_text()))
    assert S.has_late(after) and "late_l0" in frame
    for m in ("l0", "fvu_linear", "dead"):
        assert after.metrics[m] == pytest.approx(before.metrics[m], rel=1e-9)


def test_an_upgrade_that_changes_the_final_metrics_is_refused(tmp_path, small, monkeypatch):
    monkeypatch.delenv("DFSAE_REQUIRE_COMPARISON", raising=False)
    ref = tmp_path / "reference"
    S.RunStore(ref, tmp_path / "w", "small", mode="extend").grid(POINT, small, [0], progress=False, **BUDGET)
    path = next(ref.iterdir())
    text = __import__("json").loads(path.read_text())
    text["metrics"]["l0"] *= 1.5                                      # a store that no longer matches
    path.write_text(__import__("json").dumps(text))
    with pytest.raises(ReproductionError, match="l0: stored"):
        S.RunStore(ref, tmp_path / "w", "small", mode="extend").grid(POINT, small, [0], progress=False,
                                                                      late=True, **BUDGET)
    assert "late_l0" not in __import__("json").loads(path.read_text())["metrics"]


def test_a_metric_a_family_does_not_report_is_left_out_not_refused():
    frame = pd.DataFrame({"config": ["DF"] * 3 + ["SAE"] * 3, "seed": [0, 1, 2] * 2,
                          "fvu_own": [np.nan] * 3 + [0.2, 0.21, 0.22],
                          "late_fvu_own": [np.nan] * 3 + [0.2, 0.21, 0.22],
                          "l0": [5.0, 6, 7, 8, 9, 10], "late_l0": [5.0, 6, 7, 8, 9, 10]})
    table, _, checks = J.convergence_table(frame)
    assert table.loc["DF", "converged"] == "1 of 1" and table.loc["SAE", "converged"] == "2 of 2"
    assert [c.metric for _, c in checks] == ["l0", "l0", "fvu_own"]  # in the order of CONVERGENCE_METRICS


def test_record_frame_bounds_an_sd_by_its_own_f_ratio(monkeypatch):
    from dfsae.paper.record import Record

    record = Record("x", {})
    frame = pd.DataFrame({"config": ["a"] * 3, "seed": [0, 1, 2], "l0": [10.0, 10.1, 9.9]})
    record.frame("f", frame, "config", default_floor=Tolerance.relative(0.02))
    sd_tol = Tolerance(**record.entries["f[a].l0.sd"]["tolerance"])
    mean_tol = Tolerance(**record.entries["f[a].l0"]["tolerance"])
    assert sd_tol.factor > 1 and mean_tol.factor == 1
    # the mean's tolerance here is 2 % of 10 = 0.2: an sd of 0.1 moving to 0.35 passed it before,
    # and passes now (within the factor); an sd that grows 30-fold fails, however small the floor
    assert sd_tol.allows(0.1, 0.35) and not sd_tol.allows(0.1, 3.0)


def test_a_model_with_its_own_decoder_is_not_checked_on_the_implicit_one():
    frame = pd.DataFrame({"config": ["SAE"] * 3, "seed": [0, 1, 2], "fvu_own": [0.2, 0.21, 0.22],
                          "late_fvu_own": [0.2, 0.21, 0.22], "fvu_wt_scaled": [1.0, 1.1, 1.2],
                          "late_fvu_wt_scaled": [2.0, 2.1, 2.2]})
    table, _, checks = J.convergence_table(frame)
    assert [c.metric for _, c in checks] == ["fvu_own"] and table.loc["SAE", "converged"] == "1 of 1"
