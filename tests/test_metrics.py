import itertools

import numpy as np
import pytest
import torch

from dfsae import metrics


def test_dead_l0_and_low_variance():
    codes = torch.tensor([[0.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0], [0.0, 2.0, 1e-9, 1.0]])
    assert metrics.dead_units(codes).tolist() == [True, False, False, False]
    assert metrics.low_variance_units(codes).tolist() == [True, False, True, False]
    assert abs(metrics.l0(codes) - np.mean([2, 1, 3])) < 1e-12


def test_redundancy_against_double_loop_over_live_units():
    g = torch.Generator().manual_seed(0)
    codes = torch.rand(100, 5, generator=g, dtype=torch.float64)
    codes[:, 3] = 2 * codes[:, 0] + 0.05 * codes[:, 1]
    codes[:, 4] = 0.0  # dead: excluded, not counted as 0
    x = codes.numpy()
    live = [0, 1, 2, 3]
    brute = sum(np.corrcoef(x[:, i], x[:, j])[0, 1] ** 2 for i, j in itertools.product(live, live) if i != j)
    assert abs(metrics.redundancy(codes) - brute) < 1e-10


def test_fvu_and_optimal_scale():
    x = torch.rand(50, 6, dtype=torch.float64)
    assert metrics.fvu(x, x) == 0
    assert abs(metrics.fvu(x, x.mean(0).expand_as(x)) - 1) < 1e-12
    assert abs(metrics.optimal_scale(x, 0.25 * x) - 4) < 1e-12
    y = torch.rand(50, 6, dtype=torch.float64)
    c = metrics.optimal_scale(x, y)
    grid = [((x - t * y) ** 2).sum().item() for t in (c - 1e-3, c, c + 1e-3)]
    assert grid[1] <= min(grid)


def test_linear_decoder_recovers_an_affine_map():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(200, 4, generator=g, dtype=torch.float64)
    m = torch.randn(4, 9, generator=g, dtype=torch.float64)
    x = a @ m + 0.5
    assert metrics.linear_decoder_fvu(a[:150], x[:150], a[150:], x[150:], ridge=0) < 1e-20


def test_linear_decoder_training_fvu_matches_numpy_lstsq():
    g = np.random.default_rng(3)
    a, x = g.random((120, 5)), g.normal(size=(120, 7))
    design = np.hstack([a, np.ones((120, 1))])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    expected = ((x - design @ coef) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    t = torch.from_numpy
    _, train_fvu = metrics.linear_decoder_fvu(t(a), t(x), t(a[:10]), t(x[:10]), ridge=0, return_train=True)
    assert abs(train_fvu - expected) < 1e-10 and 0.5 < expected < 1


def test_responsibility_stats_uniform_and_peaked():
    uniform = metrics.responsibility_stats(torch.zeros(10, 8))
    assert abs(uniform["resp_entropy"] - np.log(8)) < 1e-12
    assert abs(uniform["max_resp"] - 1 / 8) < 1e-12
    peaked = torch.full((10, 8), 50.0)
    peaked[:, 2] = 0
    stats = metrics.responsibility_stats(peaked)
    assert stats["max_resp"] > 0.999 and stats["usage"].argmax() == 2
    assert stats["usage_entropy"] < 1e-10


def test_probe_accuracy_separable():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    codes = torch.randn(200, 3, generator=g) + 4 * y[:, None]
    assert metrics.probe_accuracy(codes[:100], y[:100], codes[100:], y[100:]) > 0.95


def test_fit_linear_decoder_recovers_an_exact_affine_map_and_checks_rows():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 7, generator=g, dtype=torch.float64)
    M = torch.randn(7, 4, generator=g, dtype=torch.float64)
    m = torch.randn(4, generator=g, dtype=torch.float64)
    decoder = metrics.fit_linear_decoder(a, a @ M + m, ridge=0)
    assert torch.allclose(decoder.coef[:-1], M, atol=1e-10)
    assert torch.allclose(decoder.coef[-1], m, atol=1e-10)
    new = torch.randn(5, 7, generator=g, dtype=torch.float64)
    assert torch.allclose(decoder(new), new @ M + m, atol=1e-10)
    with pytest.raises(ValueError, match="codes_train has 300 rows but x_train has 299"):
        metrics.fit_linear_decoder(a, (a @ M)[:299])
