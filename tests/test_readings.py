"""The three readings of a decoder-free code, the InfoMax statistics of any code, and the tied
reconstruction term, each against an independent float64 / brute-force computation."""

import math

import numpy as np
import pytest
import torch

import dfsae
from dfsae import metrics


@pytest.fixture(scope="module")
def small(digits):
    model = dfsae.DecoderFreeSAE(784, 8, seed=0)
    with torch.no_grad():
        model.encoder.bias.sub_(0.5)          # some energies exactly zero, some ties at the minimum
    return model, dfsae.Dataset(digits.x_train[:300], digits.y_train[:300], digits.x_test[:100],
                                digits.y_test[:100], "small")


def test_readings_against_a_loop(small):
    model, data = small
    out = metrics.readings(model, data)
    W = model.W.detach().double().numpy()
    def codes(x):
        return np.maximum(x.double().numpy() @ W.T + model.encoder.bias.detach().double().numpy(), 0.0)
    e_train, e_test = codes(data.x_train), codes(data.x_test)
    l0_e = l0_s = eff = 0.0
    for row in e_test:                                   # one input at a time
        s = row.max() - row
        l0_e += sum(v > 0 for v in row)
        l0_s += sum(v > 0 for v in s)
        p = [math.exp(-v) for v in row]
        p = [v / sum(p) for v in p]
        eff += math.exp(-sum(v * math.log(v) for v in p if v > 0))
    n = len(e_test)
    assert metrics.l0(metrics.encode(model, data.x_test)) == pytest.approx(l0_e / n, rel=1e-6)
    assert out["l0_similarity"] == pytest.approx(l0_s / n, rel=1e-6)
    assert out["effective_components"] == pytest.approx(eff / n, rel=1e-6)
    s_train = e_train.max(1, keepdims=True) - e_train
    s_test = e_test.max(1, keepdims=True) - e_test
    x_train, x_test = data.x_train.double().numpy(), data.x_test.double().numpy()
    c = (x_train * (s_train @ W)).sum() / ((s_train @ W) ** 2).sum()
    fvu = ((x_test - c * s_test @ W) ** 2).sum() / ((x_test - x_test.mean(0)) ** 2).sum()
    assert out["fvu_sim_scaled"] == pytest.approx(fvu, rel=1e-4)
    assert 1.0 <= out["effective_components"] <= 8.0


def test_readings_refuse_a_model_with_a_decoder(small):
    with pytest.raises(ValueError, match="decoder-free"):
        metrics.readings(dfsae.StandardSAE(784, 8), small[1])


def test_infomax_statistics_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.random((200, 5))
    a[:, 4] = 0.0                                        # a dead unit
    out = metrics.infomax_statistics(torch.from_numpy(a), eps=1e-6)
    var = a.var(0)
    assert out["l_var"] == pytest.approx(-np.log(var + 1e-6).sum(), rel=1e-10)
    c = a - a.mean(0)
    corr = (c.T @ c / len(a)) / np.sqrt(np.outer(var + 1e-6, var + 1e-6))
    assert out["l_tc"] == pytest.approx((corr ** 2).sum() - (np.diag(corr) ** 2).sum(), rel=1e-8)


def test_tied_reconstruction_term(digits):
    model = dfsae.DecoderFreeSAE(784, 16, seed=1)
    x = digits.x_train[:64]
    objective = dfsae.DecoderFreeObjective(lambda_lse=0.0, lambda_var=0.0, lambda_tc=0.0, lambda_recon=2.0)
    loss, terms = objective(model, x)
    e = model.energies(x).detach().double()
    expected = ((x.double() - e @ model.W.detach().double()) ** 2).sum(1).mean()
    assert terms["recon"].item() == pytest.approx(float(expected), rel=1e-5)
    assert loss.item() == pytest.approx(2.0 * float(expected), rel=1e-5)
    assert not objective.needs_batch_statistics
    with pytest.raises(ValueError, match="lambda_recon"):
        dfsae.DecoderFreeObjective(lambda_recon=-1.0)


def test_best_matches_by_a_sort_by_hand():
    e = torch.tensor([[0.0, 1.0], [0.0, 5.0], [2.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    # unit 0: energy 0 on inputs 0, 1, 3; among them r_0 is highest where the other energy is largest
    r0 = [math.exp(-row[0]) / (math.exp(-row[0]) + math.exp(-row[1])) for row in e.tolist()]
    by_hand = sorted(range(5), key=lambda i: (float(e[i, 0]), -r0[i]))
    assert metrics.best_matches(e, 0, 5).tolist() == [by_hand] == [[1, 0, 3, 4, 2]]
    assert metrics.best_matches(e, [1, 0], 2).tolist() == [[2, 3], [1, 0]]
    with pytest.raises(ValueError, match="units"):
        metrics.best_matches(e, 2, 1)
