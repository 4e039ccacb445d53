import json
import os

import pandas as pd
import pytest

import dfsae
from dfsae.paper import experiments as ex
from dfsae.paper.parameters import notebook_parameters, validate_parameters


@pytest.mark.parametrize("kwargs,name", [
    ({"dataset": "cifar"}, "dataset"), ({"hidden_dim": 0}, "hidden_dim"), ({"epochs": 0}, "epochs"),
    ({"seeds": []}, "seeds"), ({"seeds": "0,1"}, "seeds"), ({"seeds": [0, -1]}, "seeds"),
    ({"lambda_var": -1.0}, "lambda_var"), ({"l1_sweep": [0.1, -0.1]}, "l1_sweep"),
    ({"optimizer": "rmsprop"}, "optimizer"), ({"activation": "gelu"}, "activation"),
    ({"lr": 0}, "lr"), ({"batch_size": 1}, "batch_size"), ({"n_samples": 0}, "n_samples"),
])
def test_notebook_parameter_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        validate_parameters(kwargs)


def test_defaults_are_valid():
    validate_parameters({"lambda_var": 1.0, "l1_sweep": [0.1, 1.0], "seeds": [0, 1], "results_dir": ""})


def test_parameters_are_collected_from_a_notebooks_globals():
    namespace = {"epochs": 3, "seeds": [0, 1], "In": [""], "Out": {}, "_i1": "x", "pd": pd,
                 "get_ipython": print, "validate": validate_parameters}
    assert notebook_parameters(namespace) == {"epochs": 3, "seeds": [0, 1]}
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['lamda_var'\].*lambda_var"):
        notebook_parameters({**namespace, "lamda_var": 1.0})


def test_run_config_is_validated_once_by_name():
    config = ex.RunConfig.of("decoder_free", hidden_dim=8, epochs=2, lambda_var=2.0, n_probes=4)
    assert config.hidden_dim == 8 and config.options == dfsae.DecoderFreeConfig(lambda_var=2.0, n_probes=4)
    stored = json.loads(json.dumps(config.as_dict()))
    assert stored["family"] == "decoder_free" and stored["options"]["n_probes"] == 4
    assert stored["options"]["decorrelation"] == "auto"    # every option is stored, defaults included
    unknown = r"unknown option\(s\) \['lamda_var'\] for the 'decoder_free'.*lambda_var"
    with pytest.raises(ValueError, match=unknown):
        ex.RunConfig.of("decoder_free", lamda_var=1.0)
    with pytest.raises(ValueError, match="epochs"):
        ex.RunConfig.of("standard", epochs=0)
    with pytest.raises(ValueError, match="unknown family"):
        ex.RunConfig.of("sae")


def test_a_bad_grid_point_is_refused_before_any_training(digits, monkeypatch):
    trained = []
    monkeypatch.setattr(ex, "train", lambda *a, **k: trained.append(1))
    points = [{"family": "standard", "label": "a", "l1_coefficient": 0.1},
              {"family": "topk", "label": "b"}]
    with pytest.raises(ValueError, match="needs k"):
        ex.run_grid(points, digits, epochs=1)
    assert trained == []


def test_topk_needs_k():
    with pytest.raises(ValueError, match="k"):
        ex.build("topk", 10, 4, 0)


def test_every_option_reaches_the_objective_by_name():
    model, objective = ex.build("decoder_free", 10, 4, 0, activation="softplus", lambda_var=2.0,
                                decorrelation="estimate", n_probes=3, eps=1e-4, lse_reduction="sum")
    assert model.activation == "softplus" and objective.lambda_var == 2.0 and objective.lambda_tc == 1.0
    assert (objective.decorrelation, objective.n_probes, objective.eps, objective.lse_reduction) == (
        "estimate", 3, 1e-4, "sum")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['lambda_vra'\].*lambda_var"):
        ex.build("decoder_free", 10, 4, 0, lambda_vra=1.0)
    with pytest.raises(ValueError, match="l1_coefficient"):
        ex.build("topk", 10, 4, 0, k=2, l1_coefficient=0.1)
    with pytest.raises(ValueError, match="unknown family 'sae'"):
        ex.build("sae", 10, 4, 0)


def test_mean_sd_table():
    frame = pd.DataFrame({"config": ["a", "a", "b", "b"], "v": [1.0, 3.0, 2.0, 2.0]})
    table = ex.mean_sd_table(frame, "config", ["v"])
    assert table.loc["a", "v"] == "2.0 ±\u00a01.4" and table.loc["b", "v"] == "2.000 ±\u00a00.000"


def test_save_results_writes_both_files(tmp_path):
    frame = pd.DataFrame({"x": [1, 2]})
    frame.attrs["runs"] = {"a": ex.RunConfig.of("standard", epochs=3).as_dict()}
    path = ex.save_results(frame, tmp_path / "sub" / "r.csv", {"epochs": 3})
    loaded, saved = ex.load_results(path)
    assert loaded.equals(frame)
    assert saved["parameters"] == {"epochs": 3} and saved["runs"]["a"]["epochs"] == 3
    assert pd.read_csv(path)["run_id"].unique().tolist() == [saved["run_id"]]


def test_a_pair_mixed_by_a_kill_between_the_renames_is_refused(tmp_path, monkeypatch):
    """The JSON is renamed first; a kill before the CSV's rename leaves a new JSON beside the old CSV."""
    import dfsae.files

    path = ex.save_results(pd.DataFrame({"x": [1]}), tmp_path / "r.csv", {"epochs": 100})
    renames = []

    def killed_after_first(tmp, target):
        if renames:
            raise KeyboardInterrupt  # the process dies between the two renames
        renames.append(target)
        return os.replace(tmp, target)

    monkeypatch.setattr(dfsae.files, "publish", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        ex.save_results(pd.DataFrame({"x": [2]}), path, {"epochs": 1})
    assert json.loads(path.with_suffix(".json").read_text())["parameters"] == {"epochs": 1}
    with pytest.raises(ValueError, match="different writes"):
        ex.load_results(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]   # no temporary file left


def test_a_full_disk_changes_neither_file_and_names_the_path(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    path = ex.save_results(pd.DataFrame({"x": [1]}), tmp_path / "r.csv", {"epochs": 100})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = Path.write_bytes
    writes = []

    def second_write_fails(self, data):
        writes.append(self)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", second_write_fails)
    with pytest.raises(OSError, match=r"cannot write .*r\.csv.*No space left") as err:
        ex.save_results(pd.DataFrame({"x": [2]}), path, {"epochs": 1})
    assert err.value.errno == errno.ENOSPC
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert ex.load_results(path)[1]["parameters"] == {"epochs": 100}


def test_save_results_leaves_nothing_behind_on_failure(tmp_path, monkeypatch):
    (tmp_path / "r.csv").write_text("old\n")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        ex.save_results(pd.DataFrame({"x": [1]}), tmp_path / "r.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]
    assert (tmp_path / "r.csv").read_text() == "old\n"


def test_run_grid_one_row_per_point_and_seed(digits):
    small = type(digits)(digits.x_train[::16], digits.y_train[::16], digits.x_test[::8], digits.y_test[::8],
                         "small")
    points = [{"family": "standard", "label": "sae", "l1_coefficient": 0.1},
              {"family": "topk", "label": "k=3", "k": 3, "lr": 3e-3}]
    frame, models, _ = ex.run_grid(points, small, seeds=[0, 1], hidden_dim=8, epochs=1, batch_size=64,
                                   progress=False)
    assert list(frame.config) == ["sae", "sae", "k=3", "k=3"] and list(frame.seed) == [0, 1, 0, 1]
    assert frame.k.isna().tolist() == [True, True, False, False]
    assert (frame[frame.config == "k=3"].l0 <= 3).all() and frame.lr.tolist()[2:] == [3e-3, 3e-3]
    assert set(models) == {("sae", 0), ("sae", 1), ("k=3", 0), ("k=3", 1)}
    with pytest.raises(ValueError, match="family"):
        ex.run_grid([{"label": "x"}], small)


def test_every_declared_notebook_parameter_has_a_rule_and_its_default_passes():
    from dfsae.paper import reproduce
    from dfsae.paper.parameters import PARAMETERS

    for name, source in reproduce.notebooks().items():
        declared = {k: reproduce.parse_value(v) for k, v in reproduce.parameters_of(source).items()}
        assert set(declared) <= set(PARAMETERS), f"{name}: no rule for {set(declared) - set(PARAMETERS)}"
        # checked against the file system
        paths = ("benchmark_file", "gradient_file", "profile_file", "results_dir", "cache_dir")
        checked = {k: v for k, v in declared.items() if k not in paths}
        validate_parameters(checked)
