"""Bad input, tried as a new user would: each is refused at the boundary with a message that
names the parameter, and nothing is left half-written."""

import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

import dfsae
from dfsae import metrics, validation
from dfsae.losses import lse_loss
from dfsae.paper import experiments as ex
from dfsae.paper import reproduce
from dfsae.paper.parameters import validate_parameters


def test_misspelled_notebook_parameter_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['train_epoch'\].*train_epochs"):
        reproduce.check_parameters({"train_epoch": 1}, {"05_1_identity": {"train_epochs": "20", "seed": "0"}})
    with pytest.raises(ValueError, match="unknown parameter.*lambda_vra"):
        validate_parameters({"lambda_vra": 1.0})


@pytest.mark.parametrize("parameters,declared,name", [
    ({"layer": "abc"}, {"layer": "3"}, "layer"),
    ({"compare_sum_reduction": "no"}, {"compare_sum_reduction": "True"}, "compare_sum_reduction"),
    ({"seeds": 3}, {"seeds": "[0, 1, 2]"}, "seeds"),
])
def test_values_of_the_wrong_type_are_refused_before_anything_runs(parameters, declared, name):
    with pytest.raises(ValueError, match=name):
        reproduce.check_parameters(parameters, {"nb": declared})


def test_unwritable_results_dir_is_refused_before_training():
    with pytest.raises(ValueError, match="results_dir"):
        validate_parameters({"results_dir": "/dev/null/x"})
    validate_parameters({"results_dir": ""})  # '' means: write nothing


def test_checks_name_the_notebook_parameter():
    with pytest.raises(ValueError, match="train_epochs"):
        validation.positive_int("train_epochs", 0)
    with pytest.raises(ValueError, match="unknown l1_weighting 'bogus'"):
        validation.choice("l1_weighting", "bogus", ("plain", "decoder_norm"))
    with pytest.raises(ValueError, match="layer must be an integer"):
        validation.positive_int("layer", "abc", minimum=0)


def test_booleans_are_parsed_not_truthy():
    assert validation.boolean("compare_sum_reduction", False) is False
    with pytest.raises(ValueError, match="compare_sum_reduction must be True or False.*no"):
        validation.boolean("compare_sum_reduction", "no")


def test_a_list_passed_as_text_points_to_yaml_parameters():
    with pytest.raises(ValueError, match=r"seeds.*-y 'seeds: \[0, 1, 2\]'"):
        validation.integer_list("seeds", "[0,1,2,3,4]")
    with pytest.raises(ValueError, match="seeds"):
        validate_parameters({"seeds": "[0,1,2,3,4]"})


def test_divergence_stops_at_the_first_non_finite_loss(digits):
    # Inputs of scale 1e20 square to inf in float32: the first loss is not finite.
    model = dfsae.DecoderFreeSAE(784, 16, seed=0)
    with pytest.raises(FloatingPointError, match=r"epoch 1 \(batch 1 of 4\).*learning rate.*lr=1"):
        dfsae.train(model, dfsae.DecoderFreeObjective(), digits.x_train[:512] * 1e20, epochs=3,
                    batch_size=128, lr=1.0, optimizer="sgd", progress=False)


def test_a_skipped_last_batch_does_not_count_in_the_average(digits):
    x = digits.x_train[:257]                       # two batches of 128 and one of a single row
    model = dfsae.DecoderFreeSAE(784, 16, seed=0)
    objective = dfsae.DecoderFreeObjective(lambda_var=1.0, lambda_tc=0.0)
    with torch.no_grad():
        before = model.energies(x)
    history = dfsae.train(model, objective, x, epochs=1, batch_size=128, lr=1e-30, seed=3,
                          drop_last=False, progress=False)
    order = torch.randperm(257, generator=torch.Generator().manual_seed(3))
    expected = np.mean([float(lse_loss(before[order[i:i + 128]])) for i in (0, 128)])  # brute force
    assert history["lse"][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("array,message", [
    (np.array([["a", "b"], ["c", "d"]]), "real numbers"),
    (np.ones((3, 2), dtype=complex), "complex"),
    (np.full((3, 2), 1e300), "beyond the range of float32"),
    (np.ones((5, 0)), "no features"),
])
def test_load_activations_refuses_what_it_cannot_train_on(tmp_path, array, message):
    path = tmp_path / "acts.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=message):
        dfsae.load_activations(path)
    with pytest.raises(ValueError, match=message):
        dfsae.load_activations(array)


def test_fvu_of_constant_input_is_an_error_not_inf():
    x = torch.ones(10, 3)
    with pytest.raises(ValueError, match="zero variance"):
        metrics.fvu(x, x * 0.5)


def test_a_json_failure_leaves_the_previous_results_untouched(tmp_path):
    path = ex.save_results(pd.DataFrame({"x": [1]}), tmp_path / "r.csv", {"epochs": 1})
    before = path.read_text(), path.with_suffix(".json").read_text()
    with pytest.raises(TypeError):
        ex.save_results(pd.DataFrame({"x": [2]}), path, {"bad": object()})
    assert (path.read_text(), path.with_suffix(".json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json"]


def test_results_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = ex.save_results(pd.DataFrame({"x": [1]}), tmp_path / "r.csv", {"epochs": 1})
    finally:
        os.umask(old)
    for p in (path, path.with_suffix(".json")):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert json.loads(path.with_suffix(".json").read_text()) ["parameters"] == {"epochs": 1}
