"""Loss terms against autograd, closed forms and brute-force loops, in float64."""

import itertools

import numpy as np
import pytest
import torch

import dfsae as obj
from dfsae import losses as L


@pytest.fixture(autouse=True)
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_codes(n=32, k=6, seed=0):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed)).abs() + 0.1


def test_lse_gradient_is_softmax_of_negative_energies():
    """The paper's identity, Eq. 2: ∂L_LSE/∂E_j = r_j = softmax(−E)_j."""
    energies = (5 * torch.rand(200, 17, generator=torch.Generator().manual_seed(1))).requires_grad_()
    loss = L.lse_loss(energies, reduction="sum")
    (grad,) = torch.autograd.grad(loss, energies)
    r = torch.softmax(-energies.detach(), dim=-1)
    assert (grad - r).abs().max().item() <= 1e-12


def test_lse_reduction_mean_divides_gradient_by_batch_size():
    energies = torch.rand(10, 4).requires_grad_()
    (grad,) = torch.autograd.grad(L.lse_loss(energies, "mean"), energies)
    assert torch.allclose(grad, torch.softmax(-energies.detach(), -1) / 10, atol=1e-15)


def test_lse_matches_naive_formula_and_is_stable():
    e = torch.rand(7, 5) * 3
    naive = -torch.log(torch.exp(-e).sum(-1))
    assert torch.allclose(L.lse_loss(e, "sum"), naive.sum())
    big = torch.tensor([[1000.0, 1001.0, 2000.0]])  # exp(-1000) underflows naively
    expected = 1000.0 - np.log(1 + np.exp(-1.0) + np.exp(-1000.0))
    assert abs(L.lse_loss(big).item() - expected) < 1e-9


@pytest.mark.parametrize("fn", [
    lambda a: L.lse_loss(a, "mean"),
    lambda a: L.lse_loss(a, "sum"),
    L.variance_loss,
    L.decorrelation_loss,
    L.weight_orthogonality_loss,
    lambda a: L.l1_penalty(a),
    lambda a: L.reconstruction_loss(a, torch.ones_like(a)),
])
def test_gradcheck(fn):
    a = random_codes(9, 5).requires_grad_()
    assert torch.autograd.gradcheck(fn, (a,))


def test_variance_loss_closed_form():
    a = random_codes()
    expected = -np.log(a.numpy().var(axis=0) + 1e-6).sum()
    assert abs(L.variance_loss(a).item() - expected) < 1e-10


def test_decorrelation_against_double_loop():
    a = random_codes(40, 5, seed=3)
    a[:, 1] = 0.7 * a[:, 0] + 0.1 * a[:, 2]  # make one pair strongly correlated
    x = a.numpy()
    eps = 1e-6
    total = 0.0
    for i, j in itertools.product(range(5), range(5)):
        if i == j:
            continue
        cov = np.mean((x[:, i] - x[:, i].mean()) * (x[:, j] - x[:, j].mean()))
        corr = cov / np.sqrt((x[:, i].var() + eps) * (x[:, j].var() + eps))
        total += corr**2
    assert abs(L.decorrelation_loss(a, eps).item() - total) < 1e-10


def test_weight_orthogonality_closed_form():
    w = torch.randn(4, 9)
    g = w.numpy() @ w.numpy().T
    assert abs(L.weight_orthogonality_loss(w).item() - ((g - np.eye(4)) ** 2).sum()) < 1e-10
    q, _ = torch.linalg.qr(torch.randn(9, 4))
    assert L.weight_orthogonality_loss(q.T).item() < 1e-20


def test_dead_unit_and_constant_batch_are_finite():
    a = random_codes(16, 4)
    a[:, 2] = 0.0  # a dead unit
    for codes in (a, torch.full((16, 4), 3.0)):  # and a constant batch
        codes = codes.clone().requires_grad_()
        for fn in (L.variance_loss, L.decorrelation_loss):
            value = fn(codes)
            (grad,) = torch.autograd.grad(value, codes)
            assert torch.isfinite(value) and torch.isfinite(grad).all()


@pytest.mark.parametrize("fn", [L.variance_loss, L.decorrelation_loss])
def test_batch_of_one_is_rejected(fn):
    with pytest.raises(ValueError, match="at least 2"):
        fn(torch.ones(1, 3))


def test_combined_objective_weights_terms():
    from dfsae import DecoderFreeSAE

    model = DecoderFreeSAE(6, 3, seed=0).double()
    x = torch.rand(20, 6)
    objective = obj.DecoderFreeObjective(lambda_lse=2.0, lambda_var=0.5, lambda_tc=0.25, lambda_wr=0.125)
    loss, terms = objective(model, x)
    e = model.energies(x)
    expected = (2 * L.lse_loss(e) + 0.5 * L.variance_loss(e) + 0.25 * L.decorrelation_loss(e)
                + 0.125 * L.weight_orthogonality_loss(model.W))
    assert torch.allclose(loss, expected)
    assert set(terms) == {"lse", "var", "tc", "wr"}
    _, terms_a = obj.DecoderFreeObjective(lambda_lse=1, lambda_var=0, lambda_tc=0)(model, x)
    assert set(terms_a) == {"lse"}


@pytest.mark.parametrize("kwargs", [{"lambda_var": -1}, {"lambda_tc": float("nan")}, {"lambda_lse": -0.1},
                                    {"lambda_wr": -2}])
def test_negative_lambda_rejected(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name):
        obj.DecoderFreeObjective(**kwargs)


def test_unknown_reduction_and_all_zero_rejected():
    with pytest.raises(ValueError, match="lse_reduction"):
        obj.DecoderFreeObjective(lse_reduction="median")
    with pytest.raises(ValueError, match="at least one"):
        obj.DecoderFreeObjective(lambda_lse=0, lambda_var=0, lambda_tc=0, lambda_wr=0)


def test_sae_loss_with_decoder_norm_weighting():
    from dfsae import StandardSAE

    model = StandardSAE(5, 3, seed=1).double()
    x = torch.rand(8, 5)
    a = model.encode(x)
    x_hat = model.decode(a)
    loss, _ = obj.SAEObjective(l1_coefficient=0.3, l1_weighting="decoder_norm")(model, x)
    norms = [np.linalg.norm(model.decoder.weight.detach().numpy()[:, j]) for j in range(3)]
    l1 = np.mean([sum(abs(a[i, j].item()) * norms[j] for j in range(3)) for i in range(8)])
    mse = np.mean([((x[i] - x_hat[i]) ** 2).sum().item() for i in range(8)])
    assert abs(loss.item() - (mse + 0.3 * l1)) < 1e-10
