"""The stochastic decorrelation candidates of benchmarks/decorrelation_gradients.py against L_tc
in float64: their expectation by brute force over every partition, or over many draws, and
exactness where the estimator has nothing left to estimate. (The library's own paths, the
bfloat16 Gram form among them, are tested in test_decorrelation.py.)"""

import itertools
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import decorrelation_gradients as bench  # noqa: E402

from dfsae.losses import decorrelation_loss  # noqa: E402

EPS = 1e-6


def reference(codes):
    """Σ_{i≠j} Corr_ij² from the definition, in float64, one pair at a time."""
    a = codes.double()
    a = a - a.mean(0)
    sd = (a.pow(2).mean(0) + EPS).sqrt()
    k = a.shape[1]
    return sum(float(((a[:, i] * a[:, j]).mean() / (sd[i] * sd[j])) ** 2)
               for i in range(k) for j in range(k) if i != j)


def codes(b=64, k=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=g, dtype=torch.float64)
    return torch.relu(torch.randn(b, k, generator=g, dtype=torch.float64) @ mix + 0.3)


def test_blocks_are_unbiased_over_every_partition():
    # K = 4 in blocks of 2: the three pairings of the units, each equally likely
    a = codes(k=4)
    exact = reference(a)
    values = []
    for perm in itertools.permutations(range(4)):
        order = torch.tensor(perm)
        values.append(sum(float(decorrelation_loss(a[:, order[s:s + 2]], EPS, "exact")) for s in (0, 2))
                      * (4 - 1) / (2 - 1))
    assert sum(values) / len(values) == pytest.approx(exact, rel=1e-9)
    # and the function draws one of those partitions
    got = float(bench.block_decorrelation(a, 2, torch.Generator().manual_seed(3), EPS))
    assert any(got == pytest.approx(v, rel=1e-9) for v in values)


def test_hutchplusplus_is_exact_when_its_sketch_spans_every_unit():
    a = codes(k=8)
    # m = 24: the sketch has 8 columns, so Q spans R^8 and nothing is left to estimate
    got = float(bench.hutchplusplus_decorrelation(a, 24, torch.Generator().manual_seed(0), EPS))
    assert got == pytest.approx(reference(a), rel=1e-9)


def test_hutchplusplus_is_unbiased_and_beats_hutchinson_on_a_low_rank_correlation():
    # K = 32 units driven by 2 factors: the correlation is nearly rank 2, which the sketch captures
    g = torch.Generator().manual_seed(1)
    a = torch.relu(torch.randn(256, 2, generator=g, dtype=torch.float64) @ torch.randn(2, 32, generator=g,
                   dtype=torch.float64) + 0.05 * torch.randn(256, 32, generator=g, dtype=torch.float64))
    exact = reference(a)
    gen = torch.Generator().manual_seed(2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # 800 small products: one thread does them without contention
    try:
        plus = torch.tensor([float(bench.hutchplusplus_decorrelation(a, 9, gen, EPS)) for _ in range(400)])
        hutch = torch.tensor([float(decorrelation_loss(a, EPS, "estimate", n_probes=9, generator=gen))
                              for _ in range(400)])
    finally:
        torch.set_num_threads(threads)
    assert abs(float(plus.mean()) - exact) < 4 * float(plus.std()) / 400 ** 0.5 + 1e-9 * exact
    assert float(plus.std()) < 0.5 * float(hutch.std())


def test_accumulated_correlations_reduce_to_the_batch_form():
    a = codes(k=6).requires_grad_(True)
    exact = reference(a.detach())
    # weight 1 on the batch: the batch form itself, whatever the history
    other = bench.correlation_history([codes(k=6, seed=s) for s in (4, 5)], 0.3, EPS)
    assert float(bench.ema_decorrelation(a, other, 1.0, EPS)) == pytest.approx(exact, rel=1e-9)
    # a history equal to the batch's own correlation: the gradient is the exact one
    own = bench.correlation_history([a.detach()], 0.3, EPS)
    (g_ema,) = torch.autograd.grad(bench.ema_decorrelation(a, own, 0.3, EPS), a)
    (g_exact,) = torch.autograd.grad(decorrelation_loss(a, EPS, "exact"), a)
    assert torch.allclose(g_ema, g_exact, rtol=1e-9, atol=1e-12)
    # and the history is the moving average, in order
    c1, c2 = (bench.correlation_history([codes(k=6, seed=s)], 1.0, EPS) for s in (4, 5))
    assert torch.allclose(other, 0.3 * c2 + 0.7 * c1)
