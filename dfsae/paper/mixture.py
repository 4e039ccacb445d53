"""A Gaussian mixture written as energies, for the paper's volume-control argument (§2.5).

For a mixture with diagonal covariances the negative log joint of input x and component j
is an energy

    E_j(x) = ½ Σ_d (x_d − μ_jd)² / σ²_jd  +  ½ Σ_d log σ²_jd  +  (D/2) log 2π  −  log π_j,

and the negative log-likelihood of x is exactly L_LSE = −log Σ_j exp(−E_j(x)). Minimising
it by gradient descent is implicit EM: the gradient with respect to E_j is the
responsibility r_j. The term ½ Σ log σ² = ½ log det Σ_j is the *volume control*: with it,
a component pays for growing; without it (``log_det=False``) nothing stops every
variance growing and one broad component taking every responsibility.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import validation
from ..losses import lse_loss


def make_blobs(n_per_blob=150, centres=((-2.0, 0.0), (2.0, 0.0), (0.0, 2.5)), scale=0.5, seed=0):
    """Isotropic 2-D Gaussian blobs: (n_per_blob · len(centres), 2) float32 and labels."""
    n = validation.positive_int("n_per_blob", n_per_blob)
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres, dtype=torch.float32)
    x = c.repeat_interleave(n, 0) + scale * torch.randn(len(c) * n, c.shape[1], generator=g)
    return x, torch.arange(len(c)).repeat_interleave(n)


class GaussianMixtureEnergies(nn.Module):
    """K diagonal Gaussians whose negative log joints are energies E (n, K)."""

    def __init__(self, x: torch.Tensor, k: int, log_det: bool = True, seed: int = 0):
        super().__init__()
        k = validation.positive_int("k", k)
        g = torch.Generator().manual_seed(seed)
        start = x[torch.randperm(len(x), generator=g)[:k]]
        self.means = nn.Parameter(start.clone())
        self.log_var = nn.Parameter(torch.zeros_like(start))
        self.logits = nn.Parameter(torch.zeros(k))
        self.log_det = bool(log_det)

    def energies(self, x: torch.Tensor) -> torch.Tensor:
        var = self.log_var.exp()
        maha = 0.5 * (((x[:, None, :] - self.means[None]) ** 2) / var[None]).sum(-1)
        energy = maha + 0.5 * x.shape[1] * math.log(2 * math.pi) - torch.log_softmax(self.logits, 0)
        if self.log_det:
            energy = energy + 0.5 * self.log_var.sum(-1)
        return energy


def fit_mixture(x, k=3, log_det=True, steps=400, lr=0.05, seed=0):
    """Minimise mean L_LSE of the mixture energies with Adam. Returns (model, history) where
    history holds per step the loss, the largest component usage and the mean σ."""
    model = GaussianMixtureEnergies(x, k, log_det=log_det, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"loss": [], "max_usage": [], "mean_sigma": []}
    for _ in range(validation.positive_int("steps", steps)):
        energies = model.energies(x)
        loss = lse_loss(energies)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            usage = torch.softmax(-energies, -1).mean(0)
            history["loss"].append(float(loss))
            history["max_usage"].append(float(usage.max()))
            history["mean_sigma"].append(float(model.log_var.mul(0.5).exp().mean()))
    return model, history
