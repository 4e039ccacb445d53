"""The three ways of computing L_tc: exact K×K, exact Gram (B×B) and the Hutchinson estimate."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dfsae.losses import choose_decorrelation, decorrelation_loss


def codes(b, k, seed=0, dead=True):
    a = torch.rand(b, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a[:, 1] = 0.8 * a[:, 0] + 0.2 * a[:, 1]  # a correlated pair
    if dead:
        a[:, 2] = 0.0  # a dead unit
    return a


@pytest.mark.parametrize("b,k", [(16, 40), (50, 30), (7, 200)])
def test_gram_equals_exact(b, k):
    a = codes(b, k).requires_grad_()
    exact = decorrelation_loss(a, method="exact")
    gram = decorrelation_loss(a, method="gram")
    assert abs(exact.item() - gram.item()) <= 1e-10 * max(1.0, abs(exact.item()))
    (g_exact,) = torch.autograd.grad(exact, a)
    (g_gram,) = torch.autograd.grad(gram, a)
    assert (g_exact - g_gram).abs().max().item() <= 1e-10


def test_gradcheck_gram_and_fixed_probe_estimate():
    a = codes(6, 9, dead=False).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: decorrelation_loss(x, method="gram"), (a,))
    assert torch.autograd.gradcheck(
        lambda x: decorrelation_loss(x, method="estimate", generator=torch.Generator().manual_seed(3)), (a,))


def test_estimate_is_unbiased_in_value_and_gradient():
    a = codes(32, 24).requires_grad_()
    exact = decorrelation_loss(a, method="exact")
    (g_exact,) = torch.autograd.grad(exact, a)
    g = torch.Generator().manual_seed(0)
    values, grads = [], []
    for _ in range(3000):
        est = decorrelation_loss(a, method="estimate", n_probes=4, generator=g)
        values.append(est.detach())
        grads.append(torch.autograd.grad(est, a)[0])
    values, grads = torch.stack(values), torch.stack(grads)
    se = values.std() / len(values) ** 0.5
    assert abs(values.mean() - exact.detach()) < 5 * se  # 5 standard errors
    g_se = grads.std(dim=0) / len(grads) ** 0.5
    z = (grads.mean(dim=0) - g_exact).abs() / g_se.clamp_min(1e-12)
    assert z[g_se > 0].max() < 6  # no element of the mean gradient beyond 6 standard errors


class ShapeRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


@pytest.mark.parametrize("method,forbidden", [("estimate", [(257, 257), (32, 32)]), ("gram", [(257, 257)]),
                                              ("gram-bf16", [(257, 257)]), ("exact", [])])
def test_no_k_by_k_tensor(method, forbidden):
    a = codes(32, 257).requires_grad_()
    with ShapeRecorder() as rec:
        loss = decorrelation_loss(a, method=method, n_probes=8)
        loss.backward()
    shapes = set(rec.shapes)
    for shape in forbidden:
        assert shape not in shapes, f"{method} built a {shape} tensor"
    if method == "exact":
        assert (257, 257) in shapes  # the recorder does see K×K tensors when they exist


def test_gram_in_bfloat16_is_near_the_exact_loss_and_never_chosen_by_auto():
    # float64 reference from the K×K definition; the bfloat16 product keeps about 3 digits
    a = codes(256, 64).requires_grad_()
    exact = decorrelation_loss(a, method="exact")
    (g_exact,) = torch.autograd.grad(exact, a)
    b = a.detach().float().requires_grad_()
    low = decorrelation_loss(b, method="gram-bf16")
    (g_low,) = torch.autograd.grad(low, b)
    assert low.dtype == torch.float32
    assert abs(low.item() - exact.item()) <= 2e-2 * exact.item()
    assert (g_low.double() - g_exact).norm() <= 2e-2 * g_exact.norm()
    assert (g_low.double() - g_exact).norm() > 0      # it is not the float64 form in disguise
    for batch, width in ((8, 4), (8, 4096), (4096, 8)):
        assert choose_decorrelation(batch, width) in ("exact", "gram")


def test_auto_choice():
    """What "auto" means is part of every stored run trained with it (their keys record "auto", not
    the path it chose): it picks an exact form, K×K up to the batch size and Gram above it. A new
    default must fail here rather than silently change the stored results."""
    assert choose_decorrelation(batch=256, width=64) == "exact"
    assert choose_decorrelation(batch=256, width=4096) == "gram"
    assert choose_decorrelation(batch=256, width=256) == "exact"
    assert choose_decorrelation(batch=256, width=257) == "gram"
    a = codes(8, 20)
    auto = decorrelation_loss(a, method="auto").item()
    assert auto == pytest.approx(decorrelation_loss(a).item(), rel=1e-12)


def test_unknown_method_and_bad_probes():
    with pytest.raises(ValueError, match="decorrelation"):
        decorrelation_loss(codes(8, 4), method="sketch")
    with pytest.raises(ValueError, match="n_probes"):
        decorrelation_loss(codes(8, 4), method="estimate", n_probes=0)


def test_objective_fast_path_matches_the_loss_functions():
    from dfsae import DecoderFreeObjective, DecoderFreeSAE
    from dfsae.losses import variance_loss

    model = DecoderFreeSAE(10, 50, seed=0).double()
    x = torch.rand(40, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    objective = DecoderFreeObjective(decorrelation="estimate", n_probes=6)
    objective.reset(5)
    _, terms = objective(model, x)
    e = model.energies(x)
    assert terms["var"].item() == pytest.approx(variance_loss(e).item(), rel=1e-12)
    same = decorrelation_loss(e, method="estimate", n_probes=6, generator=torch.Generator().manual_seed(5))
    assert terms["tc"].item() == pytest.approx(same.item(), rel=1e-12)
