"""Reported numbers are checked against the stored run within their tolerances."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from dfsae.paper import record as R
from dfsae.paper.record import Record, ReproductionError, Tolerance


def stored_notebook(folder, rec):
    """A minimal .ipynb whose outputs hold ``rec``, as Record.finish stores it."""
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {R.MIME: rec.to_json()}}]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / f"{rec.notebook}.ipynb").write_text(json.dumps(nb))


def make(values, params=None):
    rec = Record("demo", params or {"epochs": 3})
    frame = pd.DataFrame({"config": ["a"] * 3, "seed": [0, 1, 2], "fvu": values, "dead": [0, 0, 1]})
    rec.frame("runs", frame, "config", floors={"dead": Tolerance.count(2)})
    rec.number("ratio", values[0] / values[1], Tolerance.relative(0.1), glue=False)
    rec.text("evidence", f"FVU {np.mean(values):.3f} with 1 dead unit", Tolerance.absolute(0.01), glue=False)
    return rec


def test_spread_tolerance_is_three_sd_of_a_difference_of_means():
    tol = Tolerance.spread(sd=0.3, n=3)
    assert math.isclose(tol.abs, 3 * 0.3 * math.sqrt(2 / 3))
    assert tol.allows(1.0, 1.0 + 0.7) and not tol.allows(1.0, 1.0 + 0.8)


def test_within_tolerance_passes(tmp_path):
    stored = make([0.50, 0.52, 0.48])
    stored_notebook(tmp_path, stored)
    new = make([0.501, 0.519, 0.481])
    assert R.compare(stored.to_json()["entries"], new.entries) == []


def test_a_stored_reference_moved_outside_its_tolerance_fails_with_a_clear_message(tmp_path, monkeypatch):
    stored = make([0.50, 0.52, 0.48])
    entry = stored.entries["runs[a].fvu"]
    width = Tolerance(**entry["tolerance"]).width(entry["value"])
    original = entry["value"]
    entry["value"] = original + 1.1 * width              # the reference, moved outside
    stored_notebook(tmp_path, stored)
    new = make([0.50, 0.52, 0.48])
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    monkeypatch.delenv("DFSAE_NEW_REFERENCE", raising=False)
    with pytest.raises(ReproductionError) as err:
        new.finish(tmp_path)
    message = str(err.value)
    assert "runs[a].fvu" in message and f"stored {entry['value']!r}" in message
    assert "new 0.5" in message and "sd·√(2/n)" in message
    entry["value"] = original + 0.9 * width              # just inside: passes
    stored_notebook(tmp_path, stored)
    assert "within tolerance" in new.finish(tmp_path)


def test_text_numbers_and_words_are_checked():
    old = {"t": {"kind": "text", "value": "FVU 0.500 with 1 dead unit",
                 "tolerance": {"abs": 0.01, "rel": 0, "basis": "", "machine": False}}}
    assert R.compare(old, {"t": dict(old["t"], value="FVU 0.505 with 1 dead unit")}) == []
    assert "number 1" in R.compare(old, {"t": dict(old["t"], value="FVU 0.520 with 1 dead unit")})[0]
    assert "number 2" in R.compare(old, {"t": dict(old["t"], value="FVU 0.500 with 2 dead unit")})[0]
    assert "text changed" in R.compare(old, {"t": dict(old["t"], value="FVU 0.500 with 1 live unit")})[0]


def test_counts_get_their_slack_and_times_are_machine_dependent():
    assert Tolerance.count(2).allows(12, 14) and not Tolerance.count(2).allows(12, 15)
    machine = Tolerance.machine_dependent()
    assert machine.allows(10.0, 1000.0) and not machine.allows(10.0, float("nan"))


def test_verdicts_do_not_flip_within_tolerance():
    assert R.judge(0.5, 0.1) == "held" and R.judge(-0.5, 0.1) == "failed"
    assert R.judge(0.05, 0.1) == R.INCONCLUSIVE
    # A number moved by at most its tolerance can never turn held into failed.
    for margin in np.linspace(-1, 1, 201):
        for shift in (-0.1, 0.1):
            pair = {R.judge(margin, 0.1), R.judge(margin + shift, 0.1)}
            assert pair != {"held", "failed"}
    stored = {"v": {"kind": "verdict", "value": "held", "margin": 0.15,
                    "tolerance": {"abs": 0.1, "rel": 0, "basis": "", "machine": False}}}
    assert R.compare(stored, {"v": dict(stored["v"], value=R.INCONCLUSIVE, margin=0.08)}) == []
    assert R.compare(stored, {"v": dict(stored["v"], value="failed", margin=-0.2)})


def test_other_parameters_or_no_reference_compare_nothing_outside_the_tests(tmp_path, monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    monkeypatch.delenv("DFSAE_NEW_REFERENCE", raising=False)
    monkeypatch.setenv(R.REQUIRE_COMPARISON, "0")
    assert "no stored record" in make([1.0, 1.1, 0.9]).finish(tmp_path)
    stored_notebook(tmp_path, make([0.5, 0.5, 0.5]))
    assert "epochs" in make([9.0, 9.0, 9.0], {"epochs": 4}).finish(tmp_path)


def test_under_the_tests_comparing_nothing_fails(tmp_path, monkeypatch):
    """``pytest --nbval notebooks`` cannot pass by comparing nothing: a missing reference or
    edited parameters fail; only a deliberate new reference is let through."""
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    monkeypatch.delenv("DFSAE_NEW_REFERENCE", raising=False)
    monkeypatch.setenv(R.REQUIRE_COMPARISON, "1")
    with pytest.raises(ReproductionError, match="no stored record .*must compare"):
        make([1.0, 1.1, 0.9]).finish(tmp_path)
    stored_notebook(tmp_path, make([0.5, 0.5, 0.5]))
    with pytest.raises(ReproductionError, match=r"parameters differ from the stored run \(epochs\)"):
        make([0.5, 0.5, 0.5], {"epochs": 4}).finish(tmp_path)
    moved = make([0.5, 0.5, 0.5], {"epochs": 3, "results_dir": "/elsewhere", "device": "cuda"})
    assert "within tolerance" in moved.finish(tmp_path)      # where a run writes or computes does not count
    monkeypatch.setenv("DFSAE_NEW_REFERENCE", "1")
    assert "new reference" in make([1.0, 1.0, 1.0], {"epochs": 4}).finish(tmp_path)


def test_the_suite_requires_comparisons():
    import os

    assert os.environ.get(R.REQUIRE_COMPARISON) == "1"      # set by the top-level conftest.py


def test_nan_is_stored_as_json_and_compares_equal():
    rec = Record("demo", {})
    rec.number("x", float("nan"), Tolerance.relative(0.1), glue=False)
    entries = json.loads(json.dumps(rec.to_json(), allow_nan=False))["entries"]
    assert R.compare(entries, rec.entries) == []


def test_counts_of_units_get_their_slack_and_an_sd_is_checked_on_its_means_scale():
    floors = R.metric_floors(64)
    assert floors["dead"].allows(10, 13) and not floors["dead"].allows(10, 14.5)
    assert floors["dead_frac"].allows(10 / 64, 13 / 64) and floors["seconds"].machine
    rec = Record("demo", {})
    frame = pd.DataFrame({"config": ["a"] * 3, "seed": [0, 1, 2], "probe_acc": [0.905, 0.905, 0.906]})
    rec.frame("runs", frame, "config")
    sd_tol = Tolerance(**rec.entries["runs[a].probe_acc.sd"]["tolerance"])
    assert sd_tol.abs == pytest.approx(rec.width("runs[a].probe_acc"))
    assert sd_tol.allows(0.00058, 0.0021)      # three seeds: an sd can easily change by a factor of 3


def test_a_trial_compares_with_its_own_earlier_run(tmp_path, monkeypatch):
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    monkeypatch.delenv("DFSAE_NEW_REFERENCE", raising=False)
    monkeypatch.setenv(R.REQUIRE_COMPARISON, "1")
    stored_notebook(tmp_path, make([0.5, 0.5, 0.5]))                 # the reference, epochs 3
    (tmp_path / "runs").mkdir()
    stored_notebook(tmp_path / "runs", make([0.7, 0.7, 0.7], {"epochs": 4}))   # an earlier trial, epochs 4
    monkeypatch.setenv(R.EARLIER_RUN, str(tmp_path / "runs" / "demo.ipynb"))
    assert "within tolerance of the earlier run" in make([0.7, 0.7, 0.7], {"epochs": 4}).finish(tmp_path)
    with pytest.raises(ReproductionError, match="differ from the earlier run"):
        make([0.9, 0.9, 0.9], {"epochs": 4}).finish(tmp_path)
    with pytest.raises(ReproductionError, match=r"parameters differ from the stored run \(epochs\)"):
        make([0.7, 0.7, 0.7], {"epochs": 5}).finish(tmp_path)            # the earlier trial had epochs 4


def test_a_judged_verdict_stores_its_decision_data_and_must_reproduce_exactly(tmp_path, monkeypatch):
    from dfsae.paper import judgement as J

    monkeypatch.delenv(R.REQUIRE_COMPARISON, raising=False)

    def made(shift):
        rec = Record("judged", {"epochs": 3})
        interval = J.difference_interval(np.array([0.5, 0.52, 0.51]) + shift, [0.4, 0.41, 0.39])
        j = J.judge_points({"p": interval}, "greater", 0.0)
        rec.judged("claim", j, "evidence", )
        return rec

    rec = made(0.0)
    entry = rec.entries["claim"]
    assert entry["value"] == "held" and entry["seeds"] == 3 and entry["rule"] == J.rule()
    assert entry["intervals"]["p"]["verdict"] == "held"
    stored_notebook(tmp_path, rec)
    assert "within tolerance" in made(0.0).finish(tmp_path)
    with pytest.raises(ReproductionError, match="verdict stored 'held'"):
        made(-0.2).finish(tmp_path)
    with pytest.raises(TypeError, match="must be a Judgement"):
        Record("x", {}).judged("claim", "held", "evidence")


def test_no_verdict_can_come_from_a_reproduction_tolerance():
    """A judged verdict is made only from seed replicates: a Tolerance, a margin or a string is
    refused, and so is a judgement on fewer than the rule's seeds."""
    from dfsae.paper import judgement as J

    rec = Record("x", {})
    for bad in (Tolerance.relative(0.1), 0.1, "held"):
        with pytest.raises(TypeError):
            rec.judged("claim", bad, "evidence")
    two = J.Judgement("held", "greater", 0.0, {}, 2)
    with pytest.raises(ValueError, match="at least 3"):
        rec.judged("claim", two, "evidence")


def test_a_spread_takes_the_larger_of_its_band_and_its_floor_never_the_sum():
    floor = Tolerance.relative(0.02, 0.001)
    wide_band = Tolerance.spread(sd=0.3, n=3, floor=floor, at=1.0)              # band 0.735 > floor 0.021
    assert wide_band.width(1.0) == pytest.approx(3 * 0.3 * math.sqrt(2 / 3))
    narrow_band = Tolerance.spread(sd=1e-4, n=3, floor=floor, at=1.0)           # band 2.4e-4 < floor 0.021
    assert narrow_band.width(1.0) == pytest.approx(0.021)


def test_a_point_near_its_threshold_may_turn_inconclusive_elsewhere_and_only_then(tmp_path, monkeypatch):
    """A re-execution on another machine moves the seeds a little: a point whose interval edge lay
    within its half-width plus its stated slack of the threshold may become inconclusive; a point
    far from it may not, and neither may turn from held to failed."""
    from dfsae.paper import judgement as J

    monkeypatch.delenv(R.REQUIRE_COMPARISON, raising=False)

    def made(a, slack=0.0):
        rec = Record("near", {"epochs": 3})
        rec.judged("claim", J.judge(J.mean_interval(a), "greater", 0.0, "p", slack=slack), "evidence")
        return rec

    stored_notebook(tmp_path, made([0.006, 0.008, 0.010]))                 # held, low edge 0.003 < half 0.005
    assert "within tolerance" in made([0.0, 0.012, 0.02]).finish(tmp_path)  # now inconclusive: allowed
    with pytest.raises(ReproductionError, match="verdict stored 'held'"):
        made([-0.03, -0.02, -0.025]).finish(tmp_path)                       # failed: never allowed
    stored_notebook(tmp_path, made([1.0, 1.01, 1.02]))                      # far above 0
    with pytest.raises(ReproductionError):
        made([-0.5, 0.5, 1.0]).finish(tmp_path)                             # inconclusive: not allowed
    stored_notebook(tmp_path, made([1.0, 1.01, 1.02], slack=1.5))           # ... unless its slack says so
    assert "within tolerance" in made([-0.5, 0.5, 1.0], slack=1.5).finish(tmp_path)
