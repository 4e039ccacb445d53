"""Stored runs: trained once, read back without training, resumed after an interruption, never
written into the reference by a trial, and verified by retraining."""

import json

import pytest

from dfsae.paper import experiments as ex
from dfsae.paper import stored as S
from dfsae.paper.record import Tolerance

POINTS = [{"family": "standard", "label": "SAE λ=0.1", "l1_coefficient": 0.1},
          {"family": "topk", "label": "TopK k=4", "k": 4}]
BUDGET = {"hidden_dim": 8, "epochs": 1, "batch_size": 64, "probe": False}


@pytest.fixture
def small(digits):
    return type(digits)(digits.x_train[:256], digits.y_train[:256], digits.x_test[:128], digits.y_test[:128],
                        "small")


def no_training(*args, **kwargs):
    raise AssertionError("a stored run was trained again")


@pytest.fixture(autouse=True)
def outside_the_test_suite(monkeypatch):
    """These tests train missing runs as a reader would; the suite's own guard is tested below."""
    monkeypatch.delenv("DFSAE_REQUIRE_COMPARISON", raising=False)


def test_under_the_test_suite_a_missing_run_is_refused_not_trained(tmp_path, small, monkeypatch):
    from dfsae.paper.record import ReproductionError

    monkeypatch.setenv("DFSAE_REQUIRE_COMPARISON", "1")
    monkeypatch.setattr(ex, "run", no_training)
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    with pytest.raises(ReproductionError, match=r"no stored run of standard with seed 0 on small.*extend"):
        store.grid(POINTS[:1], small, seeds=[0], progress=False, **BUDGET)
    assert not (tmp_path / "work").exists()


def test_a_grid_is_trained_once_then_read(tmp_path, small, monkeypatch):
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    first = store.grid(POINTS, small, seeds=[0, 1], progress=False, **BUDGET)
    assert len(first) == 4 and not first.stored.any() and len(list((tmp_path / "work").iterdir())) == 4
    assert not (tmp_path / "reference").exists()                 # a "use" run never writes the reference
    monkeypatch.setattr(ex, "run", no_training)
    again = S.RunStore(tmp_path / "reference", tmp_path / "work", "small").grid(POINTS, small, seeds=[0, 1],
                                                                                   progress=False, **BUDGET)
    assert again.stored.all()
    import pandas as pd

    pd.testing.assert_frame_equal(again.drop(columns="stored"), first.drop(columns="stored"))
    assert again.attrs["runs"]["TopK k=4"]["options"]["k"] == 4


def test_an_interrupted_grid_resumes_where_it_stopped(tmp_path, small, monkeypatch):
    real, calls = ex.run, []

    def dies_on_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(ex, "run", dies_on_the_third)
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    with pytest.raises(KeyboardInterrupt):
        store.grid(POINTS, small, seeds=[0, 1], progress=False, **BUDGET)
    assert len(list((tmp_path / "work").glob("*.json"))) == 2     # the two finished runs are kept
    monkeypatch.setattr(ex, "run", real)
    resumed = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    frame = resumed.grid(POINTS, small, seeds=[0, 1], progress=False, **BUDGET)
    assert frame.stored.tolist() == [True, True, False, False] and len(resumed.trained) == 2


def test_refresh_writes_the_reference_and_the_reference_is_read_first(tmp_path, small, monkeypatch):
    S.RunStore(tmp_path / "reference", tmp_path / "work", "small", mode="refresh").grid(
        POINTS[:1], small, seeds=[0], progress=False, **BUDGET)
    assert len(list((tmp_path / "reference").glob("*.json"))) == 1 and not (tmp_path / "work").exists()
    monkeypatch.setattr(ex, "run", no_training)
    frame = S.RunStore(tmp_path / "reference", tmp_path / "work", "small").grid(POINTS[:1], small, seeds=[0],
                                                                                progress=False, **BUDGET)
    assert frame.stored.all()
    with pytest.raises(ValueError, match="mode"):
        S.RunStore(tmp_path, tmp_path, "small", mode="overwrite")


def test_the_key_is_everything_that_decides_the_result_and_nothing_else():
    base = ex.RunConfig.of("topk", k=4, hidden_dim=8, epochs=1)
    key = S.run_key(base, 0, "small")
    assert key == S.run_key(ex.RunConfig.of("topk", k=4, hidden_dim=8, epochs=1, device="cpu"), 0, "small")
    others = [S.run_key(base, 1, "small"), S.run_key(base, 0, "mnist5k"),
              S.run_key(ex.RunConfig.of("topk", k=5, hidden_dim=8, epochs=1), 0, "small"),
              S.run_key(ex.RunConfig.of("topk", k=4, hidden_dim=8, epochs=1, aux_coefficient=0.0), 0,
                        "small"),
              S.run_key(ex.RunConfig.of("topk", k=4, hidden_dim=8, epochs=2), 0, "small")]
    assert key not in others and len(set(others)) == len(others)


def test_verify_retrains_and_compares_within_the_stated_tolerance(tmp_path, small):
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    config = ex.RunConfig.of("standard", l1_coefficient=0.1, hidden_dim=8, epochs=1, batch_size=64)
    run = store.run(config, small, 0, probe=False)
    tolerances = {"fvu_own": Tolerance.relative(0.02), "l0": Tolerance.relative(0.05)}
    assert store.verify(config, small, 0, tolerances, probe=False) == []
    path = tmp_path / "work" / f"{run.key}.json"
    moved = json.loads(path.read_text())
    moved["metrics"]["fvu_own"] *= 1.10                            # the stored value, moved past 2 %
    path.write_text(json.dumps(moved))
    (problem,) = store.verify(config, small, 0, tolerances, probe=False)
    assert "fvu_own" in problem and "stored" in problem
    with pytest.raises(ValueError, match="at least one metric"):
        store.verify(config, small, 0, {}, probe=False)
    with pytest.raises(ValueError, match="nothing to verify"):
        store.verify(config, small, 5, tolerances, probe=False)


def test_a_damaged_or_renamed_stored_run_is_named(tmp_path, small):
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    config = ex.RunConfig.of("standard", hidden_dim=8, epochs=1, batch_size=64)
    run = store.run(config, small, 0, probe=False)
    path = tmp_path / "work" / f"{run.key}.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=f"{path.name} cannot be read"):
        store.get(config, 0)
    other_config = ex.RunConfig.of("standard", hidden_dim=8, epochs=2, batch_size=64)
    other = store.run(other_config, small, 0, probe=False)
    path.write_text((tmp_path / "work" / f"{other.key}.json").read_text())
    with pytest.raises(ValueError, match="renamed or edited"):
        store.get(config, 0)


def test_the_code_version_is_a_hash_of_the_sources():
    version = S.code_version()
    assert len(version) == 12 and int(version, 16) >= 0 and version == S.code_version()


def test_extend_trains_what_the_reference_lacks_into_the_reference(tmp_path, small, monkeypatch):
    ref = tmp_path / "reference"
    store = S.RunStore(ref, tmp_path / "work", "small", mode="extend")
    store.grid(POINTS[:1], small, seeds=[0], progress=False, **BUDGET)
    assert len(list(ref.iterdir())) == 1 and not (tmp_path / "work").exists()
    monkeypatch.setattr(ex, "run", no_training)                      # the stored one is read, not retrained
    again = S.RunStore(ref, tmp_path / "work", "small", mode="extend").grid(POINTS[:1], small, seeds=[0],
                                                                             progress=False, **BUDGET)
    assert again.stored.all()
    with pytest.raises(ValueError, match="mode"):
        S.RunStore(ref, tmp_path / "work", "small", mode="append")


def test_prune_removes_the_reference_runs_no_longer_asked_for(tmp_path, small):
    ref = tmp_path / "reference"
    S.RunStore(ref, tmp_path / "work", "small", mode="extend").grid(POINTS, small, seeds=[0], progress=False,
                                                                     **BUDGET)
    assert len(list(ref.glob("*.json"))) == 2
    store = S.RunStore(ref, tmp_path / "work", "small", mode="extend")
    store.grid(POINTS[1:], small, seeds=[0], progress=False, **BUDGET)
    removed = store.prune()
    assert len(removed) == 1 and len(list(ref.glob("*.json"))) == 1
    with pytest.raises(ValueError, match="only with mode"):
        S.RunStore(ref, tmp_path / "work", "small").prune()


def test_training_seconds_add_up_the_runs_asked_for(tmp_path, small):
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small")
    frame = store.grid(POINTS, small, seeds=[0, 1], progress=False, **BUDGET)
    n, seconds = store.training_seconds()
    assert n == 4 and seconds == pytest.approx(frame.seconds.sum())


def test_has_says_whether_run_would_read_or_train(tmp_path, small, monkeypatch):
    config = ex.RunConfig.of("topk", k=4, hidden_dim=8, epochs=1, batch_size=64)
    store = S.RunStore(tmp_path / "reference", tmp_path / "work", "small", mode="extend")
    assert not store.has(config, 0)
    store.run(config, small, 0, probe=False)
    assert store.has(config, 0) and not store.has(config, 1)
    assert not store.has(config, 0, late=True)                       # stored without its late measurement
    assert not S.RunStore(tmp_path / "reference", tmp_path / "work", "small", mode="refresh").has(config, 0)
    monkeypatch.setattr(ex, "run", no_training)
    store.run(config, small, 0, probe=False)                          # has() true: read, not trained


def fake_run(seed, **metrics):
    return S.StoredRun("k", "d", seed, {}, metrics, "v", "t")


def test_fresh_seed_tolerance_is_the_larger_of_the_floor_and_a_seeds_spread():
    # dead counts 10, 14, 18: sd 4 (by hand), so a fresh seed may move 3·4·√2 ≈ 16.97
    runs = [fake_run(s, dead=v, l0=100.0) for s, v in enumerate((10.0, 14.0, 18.0))]
    tol = S.fresh_seed_tolerances(runs, {"dead": Tolerance.count(3, 0.05), "l0": Tolerance.relative(0.1)})
    assert tol["dead"].width(10.0) == pytest.approx(3 * 4 * 2 ** 0.5)
    assert tol["dead"].allows(10.0, 26.9) and not tol["dead"].allows(10.0, 27.1)
    assert tol["l0"].width(100.0) == pytest.approx(10.0)             # every seed equal: the floor alone
    assert "sd = 4 over 3 stored seeds" in tol["dead"].basis
    tol = S.fresh_seed_tolerances(runs, {"dead": Tolerance.count(30)}, reference=2)
    assert tol["dead"].width(18.0) == pytest.approx(30.0)              # the floor is wider here
    with pytest.raises(ValueError, match="runs must hold at least 2"):
        S.fresh_seed_tolerances(runs[:1], {"dead": Tolerance.count(3)})
    with pytest.raises(ValueError, match="reference must index"):
        S.fresh_seed_tolerances(runs, {"dead": Tolerance.count(3)}, reference=3)
