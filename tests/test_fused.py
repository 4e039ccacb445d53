"""The fused InfoMax estimate: the same values and gradients as the plain formulas, and the same
trained models as the exact decorrelation, within seed spread."""

import math

import numpy as np
import pytest
import torch

import dfsae
from dfsae import losses as L
from dfsae.paper import experiments as ex


def plain(codes, probes, eps):
    """Reference written from the definitions: L_var and ‖(Corr − diag Corr) P‖² / m."""
    var = codes.var(dim=0, unbiased=False)
    z = (codes - codes.mean(dim=0)) / torch.sqrt(codes.shape[0] * (var + eps))
    corr = z.T @ z
    off = corr - torch.diag(torch.diagonal(corr))
    return -torch.log(var + eps).sum(), ((off @ probes) ** 2).sum() / probes.shape[1]


@pytest.mark.parametrize("weights", [(1.0, 0.0), (0.0, 1.0), (0.7, 1.3)])
def test_fused_values_and_gradients_match_autograd_of_the_plain_formulas(weights):
    g = torch.Generator().manual_seed(0)
    codes = torch.relu(torch.randn(40, 24, generator=g, dtype=torch.float64))
    codes[:, 5] = 0.0                                    # a dead unit
    codes.requires_grad_()
    probes = (2 * torch.randint(0, 2, (24, 6), generator=g) - 1).double()
    fused, ref = L.infomax_estimate(codes, 1e-6, probes=probes), plain(codes, probes, 1e-6)
    for a, b in zip(fused, ref, strict=True):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    wv, wt = weights
    (g_fused,) = torch.autograd.grad(wv * fused[0] + wt * fused[1], codes)
    (g_ref,) = torch.autograd.grad(wv * ref[0] + wt * ref[1], codes)
    assert torch.allclose(g_fused, g_ref, rtol=1e-10, atol=1e-10)


def test_gradcheck_in_float64():
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(10, 7, generator=g, dtype=torch.float64, requires_grad=True)
    probes = (2 * torch.randint(0, 2, (7, 3), generator=g) - 1).double()
    assert torch.autograd.gradcheck(lambda a: L.infomax_estimate(a, 1e-3, probes=probes), (codes,))


def test_the_objective_uses_the_same_probes_as_the_plain_estimate():
    x = torch.rand(32, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    model = dfsae.DecoderFreeSAE(10, 12, seed=0).double()
    objective = dfsae.DecoderFreeObjective(lambda_lse=0, lambda_var=1, lambda_tc=1, decorrelation="estimate",
                                           n_probes=4, fused=True)
    objective.reset(7)
    _, terms = objective(model, x)
    e = model.energies(x)
    expected = L.decorrelation_loss(e, method="estimate", n_probes=4,
                                    generator=torch.Generator().manual_seed(7))
    assert torch.allclose(terms["tc"], expected) and torch.allclose(terms["var"], L.variance_loss(e))


def test_estimate_trains_models_like_the_exact_decorrelation_as_probes_grow(digits):
    """The estimate is unbiased but noisy: with 16 probes at K = 64 it leaves more redundancy than
    the exact L_tc; with 256 probes every metric agrees within three sd of a difference of means."""
    small = type(digits)(digits.x_train[:2000], digits.y_train[:2000], digits.x_test[:500],
                         digits.y_test[:500], "small")

    def metrics(**options):
        frame, _, _ = ex.run_seeds("decoder_free", small, [0, 1, 2], progress=False, hidden_dim=64, epochs=8,
                                   batch_size=128, **options)
        return frame

    exact, few, many = (metrics(decorrelation="exact"), metrics(decorrelation="estimate", n_probes=16),
                        metrics(decorrelation="estimate", n_probes=256))
    gap = {name: abs(f.redundancy_per_pair.mean() - exact.redundancy_per_pair.mean())
           for name, f in (("few", few), ("many", many))}
    assert gap["many"] < gap["few"]
    for col, floor in [("dead", 1.0), ("redundancy_per_pair", 1e-3), ("l0", 1.0), ("probe_acc", 0.015),
                       ("fvu_linear", 0.01)]:
        a, b = exact[col].to_numpy(), many[col].to_numpy()
        sd = max(a.std(ddof=1), b.std(ddof=1))
        assert abs(a.mean() - b.mean()) <= 3 * sd * math.sqrt(2 / 3) + floor, (col, a, b)
    assert np.isfinite(many.drop(columns="config").to_numpy(dtype=float)).all()


def test_compile_option_is_validated_and_auto_skips_small_models(digits):
    from dfsae.training import should_compile

    assert should_compile("auto", 64, 10_000) is False and should_compile("auto", 16_384, 10_000) is True
    with pytest.raises(ValueError, match="compile"):
        dfsae.train(dfsae.DecoderFreeSAE(784, 8), dfsae.DecoderFreeObjective(), digits.x_train[:256],
                    epochs=1, compile="yes", progress=False)
    history = dfsae.train(dfsae.DecoderFreeSAE(784, 8), dfsae.DecoderFreeObjective(), digits.x_train[:256],
                          epochs=1, compile="auto", progress=False)
    assert history.compiled is False and history.compile_seconds == 0.0


def test_fused_lse_matches_the_plain_formula_in_value_and_gradient():
    g = torch.Generator().manual_seed(3)
    energies = (5 * torch.rand(30, 17, generator=g, dtype=torch.float64)).requires_grad_()
    per_input = L.lse_per_input(energies)
    naive = -torch.log(torch.exp(-energies).sum(1))                  # the definition, no max-shift
    assert torch.allclose(per_input, naive, rtol=1e-12, atol=1e-12)
    weights = torch.rand(30, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((weights * per_input).sum(), energies)
    r = torch.softmax(-energies.detach(), dim=1)                     # Eq. 2: ∂L_i/∂E_ij = r_ij
    assert torch.allclose(grad, weights[:, None] * r, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(L.lse_per_input, (energies,))


def test_fused_lse_and_infomax_match_the_separate_terms():
    g = torch.Generator().manual_seed(4)
    codes = torch.relu(torch.randn(50, 20, generator=g, dtype=torch.float64)).requires_grad_()
    probes = (2 * torch.randint(0, 2, (20, 5), generator=g) - 1).double()
    per_input, var, tc = L.lse_infomax_estimate(codes, 1e-6, probes=probes)
    ref_var, ref_tc = plain(codes, probes, 1e-6)
    ref_lse = L.lse_loss(codes, "sum")
    for a, b in [(per_input.sum(), ref_lse), (var, ref_var), (tc, ref_tc)]:
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    a, b, c = 0.3, 1.7, 0.9
    (fused,) = torch.autograd.grad(a * per_input.mean() + b * var + c * tc, codes)
    (ref,) = torch.autograd.grad(a * ref_lse / 50 + b * ref_var + c * ref_tc, codes)
    assert torch.allclose(fused, ref, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda a: L.lse_infomax_estimate(a, 1e-3, probes=probes), (codes,))


def test_a_reused_buffer_refuses_a_second_backward():
    codes = torch.rand(8, 6, dtype=torch.float64, requires_grad=True)
    loss = L.lse_per_input(codes, reuse_buffer=True).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="reuse_buffer=False"):
        loss.backward()


def test_one_pass_moments_match_a_float64_reference_even_far_from_zero():
    g = torch.Generator().manual_seed(5)
    codes = 1000 + torch.randn(300, 9, generator=g)                  # mean ≫ sd: naive E[a²] − μ² cancels
    codes[:, 3] = 1000.0                                              # constant: variance exactly 0
    mean, var = L._moments(codes)
    ref = codes.double()
    assert torch.allclose(mean.double(), ref.mean(0), rtol=1e-6)
    assert torch.allclose(var.double(), ref.var(0, unbiased=False), rtol=1e-3, atol=1e-6)
    assert var[3] == 0


def test_the_fused_objective_equals_the_plain_terms():
    """fused=True with decorrelation="estimate" takes the fused path; with the same probes its loss
    and gradient equal those of the plain formulas, and so do those of fused=False."""
    x = torch.rand(40, 10, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    model = dfsae.DecoderFreeSAE(10, 12, seed=0).double()
    cases = [((1, 1, 1), "mean", True), ((2, 0.5, 0.25), "sum", True), ((1, 0, 0), "mean", True),
             ((2, 0.5, 0.25), "sum", False)]
    for weights, reduction, fused in cases:
        lambdas = dict(zip(("lambda_lse", "lambda_var", "lambda_tc"), weights, strict=True))
        objective = dfsae.DecoderFreeObjective(**lambdas, lse_reduction=reduction, decorrelation="estimate",
                                               n_probes=3, fused=fused)
        objective.reset(9)
        loss, _ = objective(model, x)
        (g_fused,) = torch.autograd.grad(loss, model.W)
        e = model.energies(x)
        probes = L.rademacher(12, 3, torch.Generator().manual_seed(9), e)
        ref = weights[0] * L.lse_loss(e, reduction)
        if weights[1] or weights[2]:
            var, tc = plain(e, probes, objective.eps)
            ref = ref + weights[1] * var + weights[2] * tc
        (g_ref,) = torch.autograd.grad(ref, model.W)
        assert torch.allclose(loss, ref, rtol=1e-10) and torch.allclose(g_fused, g_ref, rtol=1e-8, atol=1e-10)
