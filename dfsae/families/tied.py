"""The tied SAE: the standard SAE with the encoder's transpose as its decoder,
a = ReLU(W (x − b_dec) + b_enc), x̂ = c·Wᵀ a + b_dec, trained on mean ‖x − x̂‖²₂ + λ · mean Σ_j abs(a_j) w_j.

It has the decoder-free model's K·D weights plus two biases (K·D + K + D parameters, 784→64:
51,024), so it is the parameter-matched control for the decoder's cost: a linear read-out through
Wᵀ, trained for reconstruction. The penalty weights w_j = c‖w_j‖₂ are the norms of the implicit
decoder's atoms by default (``l1_weighting="plain"``: w_j = 1). c is 1 in training; it is a fixed
buffer only so that a model trained on scaled inputs can be written for raw inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from .. import validation
from .base import SAE, Family, FamilyConfig, init_linear, make_generator, refuse_options
from .standard import L1_WEIGHTINGS, SAEObjective

NAME = "tied"


@dataclass(frozen=True)
class TiedConfig(FamilyConfig):
    """``l1_coefficient`` λ ≥ 0 and ``l1_weighting`` (``"decoder_norm"`` or ``"plain"``)."""

    family: ClassVar[str] = NAME
    l1_coefficient: float = 1e-3
    l1_weighting: str = "decoder_norm"

    constraints: ClassVar = {"l1_coefficient": validation.Real(0),
                             "l1_weighting": validation.Options(*L1_WEIGHTINGS)}


class TiedSAE(SAE):
    """Tied SAE (see the module docstring). Parameters: the encoder W, b_enc and the decoder bias
    b_dec; ``decoder_scale`` c is a buffer, 1 unless the model was loaded for raw inputs."""

    family = NAME
    has_decoder = True
    saelens_architecture = "standard"

    def __init__(self, input_dim: int, hidden_dim: int, seed=None):
        super().__init__(input_dim, hidden_dim)
        init_linear(self.encoder, make_generator(seed))
        with torch.no_grad():
            self.encoder.bias.zero_()
        self.b_dec = nn.Parameter(torch.zeros(self.input_dim))
        self.register_buffer("decoder_scale", torch.ones(()))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x - self.b_dec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """a = ReLU(W (x − b_dec) + b_enc), shape (n, K)."""
        return F.relu(self.pre_activations(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """x̂ = c·Wᵀ a + b_dec, shape (n, D)."""
        return self.decoder_scale * (codes @ self.W) + self.b_dec

    def decoder_norms(self) -> torch.Tensor:
        """‖c·w_j‖₂, the norms of the implicit decoder's atoms, shape (K,)."""
        return self.decoder_scale * self.W.norm(dim=1)

    def to_saelens(self, input_scale: float, **options) -> tuple[dict, dict, dict]:
        """SAELens's standard architecture with W_dec = c·W / s (so W_dec = (c/s²)·W_encᵀ)."""
        refuse_options(self, options)
        s, W, c = input_scale, self.W.detach().cpu(), float(self.decoder_scale)
        tensors = {"W_enc": (W.T * s).contiguous(), "b_enc": self.encoder.bias.detach().cpu().clone(),
                   "W_dec": (c * W / s).contiguous(), "b_dec": (self.b_dec.detach().cpu() / s).contiguous()}
        return ({"architecture": self.saelens_architecture, "apply_b_dec_to_input": True}, tensors,
                {"decoder_scale": c / (s * s)})

    @classmethod
    def from_saelens(cls, cfg, tensors, info, path) -> TiedSAE:
        c = info.get("decoder_scale", 1.0)
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise ValueError(f"{path}: metadata.dfsae.decoder_scale must be a number > 0, got {c!r}")
        W = tensors["W_enc"].T
        tied = torch.allclose(tensors["W_dec"], c * W, rtol=1e-5, atol=1e-7)
        if not cfg["apply_b_dec_to_input"] or not tied:
            raise ValueError(f"{path}: not a tied SAE: W_dec is not decoder_scale·W_encᵀ with b_dec applied "
                             "to the input; load it without metadata.dfsae.family to read it as a standard "
                             "SAE")
        model = cls.blank(cfg)
        with torch.no_grad():
            model.encoder.weight.copy_(W)
            model.encoder.bias.copy_(tensors["b_enc"])
            model.b_dec.copy_(tensors["b_dec"])
            model.decoder_scale.fill_(c)
        return model


class TiedObjective(SAEObjective):
    """The standard SAE's loss on the tied model: mean ‖x − x̂‖²₂ + λ · mean Σ_j abs(a_j) w_j."""

    config_type = TiedConfig


TiedConfig.model, TiedConfig.objective = TiedSAE, TiedObjective
TiedSAE.config_type = TiedConfig
FAMILY = Family(NAME, "tied SAE", TiedConfig, knob="l1_coefficient")

__all__ = ["TiedConfig", "TiedSAE", "TiedObjective"]
