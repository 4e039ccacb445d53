"""The JumpReLU SAE (Rajamanoharan et al., 2024): a per-latent threshold and an L0 penalty.

a_j = z_j · H(z_j − θ_j) with z = W_enc (x − b_dec) + b_enc, x̂ = W_dec a + b_dec, trained on

    mean ‖x − x̂‖²₂ + λ · mean Σ_j H(z_j − θ_j)          (the L0 of the code itself, not a proxy)

H has no useful derivative, so the threshold learns through straight-through estimators with a
rectangle kernel K(u) = 1[abs(u) < ½] of bandwidth ε:

    ∂a_j/∂θ_j := −(θ_j/ε) K((z_j − θ_j)/ε),     ∂H(z_j − θ_j)/∂θ_j := −(1/ε) K((z_j − θ_j)/ε),

the derivatives of the kernel-smoothed functions at the jump. The gradient to z is that of the
plain functions (H(z − θ) for a, 0 for the L0 term), so the sparsity penalty moves the thresholds
only. θ is a parameter kept ≥ 0 (clamped after each step), initialised to ``initial_threshold``;
the paper uses θ₀ = ε = 0.001 on inputs scaled so that E‖x‖² = D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from .. import validation
from ..losses import reconstruction_loss
from .base import ConfiguredObjective, DecoderSAE, Family, FamilyConfig, saelens_bool

NAME = "jumprelu"


@dataclass(frozen=True)
class JumpReLUConfig(FamilyConfig):
    """``l0_coefficient`` λ ≥ 0; ``bandwidth`` ε > 0 of the straight-through estimators;
    ``initial_threshold`` θ₀ ≥ 0; ``unit_norm_decoder`` (default True)."""

    family: ClassVar[str] = NAME
    l0_coefficient: float = 1e-3
    bandwidth: float = 1e-3
    initial_threshold: float = 1e-3
    unit_norm_decoder: bool = True

    model_fields: ClassVar = ("initial_threshold", "unit_norm_decoder")
    constraints: ClassVar = {"l0_coefficient": validation.Real(0),
                             "bandwidth": validation.Real(0, low_open=True),
                             "initial_threshold": validation.Real(0),
                             "unit_norm_decoder": validation.Boolean()}


def _window(z, threshold, bandwidth):
    """K((z − θ)/ε) for the rectangle kernel: 1 where z is within ε/2 of θ."""
    return ((z - threshold).abs() < bandwidth / 2).to(z.dtype)


class JumpReLUFunction(torch.autograd.Function):
    """a = z · H(z − θ); backward: ∂/∂z = H(z − θ), ∂/∂θ = −(θ/ε) K((z − θ)/ε) (summed over inputs)."""

    @staticmethod
    def forward(ctx, z, threshold, bandwidth: float):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold)

    @staticmethod
    def backward(ctx, grad):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = grad * (z > threshold)
        grad_threshold = -(threshold / eps) * _window(z, threshold, eps) * grad
        return grad_z, grad_threshold.sum(0), None


class StepFunction(torch.autograd.Function):
    """H(z − θ); backward: ∂/∂z = 0, ∂/∂θ = −(1/ε) K((z − θ)/ε) (summed over inputs)."""

    @staticmethod
    def forward(ctx, z, threshold, bandwidth: float):
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        return torch.zeros_like(z), (-(1 / eps) * _window(z, threshold, eps) * grad).sum(0), None


class JumpReLUSAE(DecoderSAE):
    """JumpReLU SAE (see the module docstring): ``threshold`` θ (K,) is a parameter."""

    family = NAME
    codes = "activations a = z 1[z > threshold_j] (JumpReLU); high means the feature is present"
    saelens_architecture = "jumprelu"

    def __init__(self, input_dim: int, hidden_dim: int, initial_threshold: float = 1e-3,
                 unit_norm_decoder: bool = True, seed=None):
        super().__init__(input_dim, hidden_dim, unit_norm_decoder=unit_norm_decoder, seed=seed)
        theta = JumpReLUConfig.constraints["initial_threshold"].check("initial_threshold", initial_threshold)
        self.threshold = nn.Parameter(torch.full((self.hidden_dim,), theta))

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """a = ReLU(z) · 1[z > θ], SAELens's form; with θ ≥ 0 (kept by training) this is z · 1[z > θ]."""
        return F.relu(z) * (z > self.threshold)

    @torch.no_grad()
    def after_step(self) -> None:
        """Keep θ ≥ 0 (and the atoms at unit norm when ``unit_norm_decoder``)."""
        super().after_step()
        self.threshold.clamp_(min=0)

    def to_saelens(self, input_scale: float, **options) -> tuple[dict, dict, dict]:
        """SAELens's JumpReLU architecture (pre-activations do not change with the input scale)."""
        fields, tensors, info = super().to_saelens(input_scale, **options)
        tensors["threshold"] = self.threshold.detach().cpu().clone()
        return fields, tensors, info

    @classmethod
    def from_saelens(cls, cfg, tensors, info, path) -> JumpReLUSAE:
        threshold = tensors.get("threshold")
        if threshold is None or threshold.shape != (cfg["d_sae"],):
            raise ValueError(f"{path}: a JumpReLU checkpoint needs a 'threshold' tensor of shape "
                             f"({cfg['d_sae']},)")
        model = cls.blank(
            cfg, unit_norm_decoder=saelens_bool(info, "unit_norm_decoder", False, f"{path} metadata.dfsae"))
        with torch.no_grad():  # SAELens: ReLU(z)·1[z > θ]; a threshold below 0 acts as 0
            model.threshold.copy_(threshold.clamp_min(0))
        return model.load_saelens_tensors(cfg, tensors)

    @classmethod
    def claims(cls, raw: dict) -> bool:
        return raw.get("architecture") == NAME


class JumpReLUObjective(ConfiguredObjective):
    """mean ‖x − x̂‖²₂ + λ · mean Σ_j H(z_j − θ_j) with the straight-through estimators above.
    Terms: ``"recon"`` and ``"l0"`` (the mean number of active latents per input)."""

    config_type = JumpReLUConfig

    def __call__(self, model, x: torch.Tensor):
        z = model.pre_activations(x)
        codes = JumpReLUFunction.apply(z, model.threshold, self.bandwidth)
        recon = reconstruction_loss(x, model.decode(codes))
        l0 = StepFunction.apply(z, model.threshold, self.bandwidth).sum(-1).mean()
        return recon + self.l0_coefficient * l0, {"recon": recon, "l0": l0}


JumpReLUConfig.model, JumpReLUConfig.objective = JumpReLUSAE, JumpReLUObjective
JumpReLUSAE.config_type = JumpReLUConfig
FAMILY = Family(NAME, "JumpReLU SAE", JumpReLUConfig, knob="l0_coefficient")

__all__ = ["JumpReLUConfig", "JumpReLUSAE", "JumpReLUObjective"]
