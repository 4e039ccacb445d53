import math

import numpy as np
import pytest
import torch

import dfsae
from dfsae import DecoderFreeObjective, DecoderFreeSAE, SAEObjective, StandardSAE, TopKObjective, TopKSAE


def train_digits(digits, objective, epochs=5, seed=0, **kwargs):
    model = DecoderFreeSAE(784, 64, seed=seed)
    history = dfsae.train(model, objective, digits.x_train, epochs=epochs, batch_size=128,
                          progress=False, seed=seed, **kwargs)
    return model, history


def test_lse_only_collapses_full_objective_does_not(digits):
    """Prediction A vs C on real digits: LSE alone kills (nearly) every unit; the full
    objective keeps every unit alive on the held-out digits."""
    lse_only, _ = train_digits(digits, DecoderFreeObjective(lambda_lse=1, lambda_var=0, lambda_tc=0))
    full, _ = train_digits(digits, DecoderFreeObjective(lambda_lse=1, lambda_var=1, lambda_tc=1))
    dead_lse = int(dfsae.metrics.dead_units(dfsae.metrics.encode(lse_only, digits.x_test)).sum())
    dead_full = int(dfsae.metrics.dead_units(dfsae.metrics.encode(full, digits.x_test)).sum())
    assert dead_lse >= 60
    assert dead_full == 0


def test_same_seed_same_result(digits):
    x = digits.x_train[:512]
    runs = []
    for _ in range(2):
        model = DecoderFreeSAE(784, 16, seed=5)
        h = dfsae.train(model, DecoderFreeObjective(), x, epochs=2, batch_size=64, seed=7, progress=False)
        runs.append((model.W.detach().clone(), h["total"]))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    other = DecoderFreeSAE(784, 16, seed=5)
    dfsae.train(other, DecoderFreeObjective(), x, epochs=2, batch_size=64, seed=8, progress=False)
    assert not torch.equal(other.W, runs[0][0])


def test_history_has_every_term_per_epoch(digits):
    objective = DecoderFreeObjective(lambda_lse=1, lambda_var=1, lambda_tc=1, lambda_wr=0.1)
    _, history = train_digits(digits, objective, epochs=3)
    assert set(history.terms) == {"lse", "var", "tc", "wr", "total"}
    assert all(len(v) == 3 and all(math.isfinite(t) for t in v) for v in history.terms.values())
    assert list(history.to_frame().index) == [1, 2, 3]


def test_weight_norm_recorded_and_unit_norm_rows(digits):
    """‖W‖ is recorded after every epoch; without a constraint −log Var grows it, unit-norm rows
    pin every row at norm 1 (so ‖W‖_F = √K) however long the model trains."""
    free, history = train_digits(digits, DecoderFreeObjective(), epochs=4)
    assert len(history.weight_norm) == 4
    assert abs(history.weight_norm[-1] - free.W.detach().double().norm().item()) < 1e-4
    assert history.weight_norm[-1] > history.weight_norm[0] > DecoderFreeSAE(784, 64, seed=0).W.norm().item()
    assert list(history.to_frame().columns)[-1] == "weight_norm"
    pinned = DecoderFreeSAE(784, 64, seed=0, unit_norm_rows=True)
    assert torch.allclose(pinned.W.norm(dim=1), torch.ones(64))
    h = dfsae.train(pinned, DecoderFreeObjective(), digits.x_train, epochs=2, progress=False)
    assert torch.allclose(pinned.W.detach().norm(dim=1), torch.ones(64), atol=1e-5)
    assert all(abs(n - 8.0) < 1e-3 for n in h.weight_norm)


def test_baselines_train_and_reduce_reconstruction(digits):
    x = digits.x_train[:1024]
    for model, objective in ((StandardSAE(784, 32, seed=0), SAEObjective(l1_coefficient=1e-3)),
                             (TopKSAE(784, 32, k=4, seed=0), TopKObjective())):
        before = objective(model, x)[1]["recon"].item()
        dfsae.train(model, objective, x, epochs=4, batch_size=64, lr=1e-3, progress=False)
        assert objective(model, x)[1]["recon"].item() < 0.5 * before
    assert torch.allclose(model.decoder_norms(), torch.ones(32), atol=1e-5)  # TopK keeps unit atoms


def test_sgd_optimizer_runs(digits):
    model = DecoderFreeSAE(784, 8, seed=0)
    h = dfsae.train(model, DecoderFreeObjective(), digits.x_train[:256], epochs=2, optimizer="sgd",
                    lr=1e-3, progress=False)
    assert len(h["total"]) == 2


def bad(**override):
    kwargs = {"epochs": 1, "batch_size": 32, "lr": 1e-3, "optimizer": "adam", "device": "cpu"}
    kwargs.update(override)
    return kwargs


@pytest.mark.parametrize("kwargs,name", [
    (bad(lr=0), "lr"), (bad(lr=-1e-3), "lr"), (bad(epochs=0), "epochs"),
    (bad(optimizer="lbfgs"), "optimizer"), (bad(batch_size=1), "batch_size"),
    (bad(device="tpu"), "device"), (bad(epochs=2.5), "epochs"),
])
def test_bad_training_parameters(kwargs, name):
    with pytest.raises(ValueError, match=name):
        dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), torch.rand(64, 5), progress=False, **kwargs)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_input_rejected(value):
    x = torch.rand(64, 5)
    x[3, 2] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), x, progress=False)


def test_wrong_width_and_shape_rejected():
    with pytest.raises(ValueError, match="input_dim=5"):
        dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), torch.rand(64, 6), progress=False)
    with pytest.raises(ValueError, match="2-D"):
        dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), torch.rand(64), progress=False)
    with pytest.raises(ValueError, match="2-D"):
        dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), np.zeros((2, 5, 1)), progress=False)


def test_mismatched_objective_rejected():
    with pytest.raises(ValueError, match="cannot train"):
        dfsae.train(StandardSAE(5, 3), DecoderFreeObjective(), torch.rand(64, 5), progress=False)


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="device"):
        dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), torch.rand(64, 5), device="cuda",
                    progress=False)


def test_numpy_input_accepted():
    h = dfsae.train(DecoderFreeSAE(5, 3), DecoderFreeObjective(), np.random.rand(64, 5), epochs=1,
                    batch_size=16, progress=False)
    assert len(h["total"]) == 1
