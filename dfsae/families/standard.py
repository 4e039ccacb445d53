"""The standard SAE: a = ReLU(W_enc (x − b_dec) + b_enc), x̂ = W_dec a + b_dec, trained on
mean ‖x − x̂‖²₂ + λ · mean Σ_j abs(a_j) w_j.

The sparsity penalty is weighted by the decoder column norms, w_j = ‖d_j‖₂, by default: without it
the model can shrink its codes and grow its atoms to evade the penalty (Anthropic's April 2024
update; the same as a plain L1 with unit-norm atoms). ``l1_weighting="plain"`` (w_j = 1) is the
original recipe. Parameters: 2·K·D + K + D (784→64: 101,200).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from .. import validation
from ..losses import l1_penalty, reconstruction_loss
from .base import ConfiguredObjective, DecoderSAE, Family, FamilyConfig, saelens_bool

NAME = "standard"
L1_WEIGHTINGS = ("decoder_norm", "plain")


@dataclass(frozen=True)
class StandardConfig(FamilyConfig):
    """``l1_coefficient`` λ ≥ 0; ``l1_weighting``, ``"decoder_norm"`` (w_j = ‖d_j‖₂) or ``"plain"``
    (w_j = 1); ``unit_norm_decoder`` keeps the atoms at unit norm."""

    family: ClassVar[str] = NAME
    l1_coefficient: float = 1e-3
    l1_weighting: str = "decoder_norm"
    unit_norm_decoder: bool = False

    model_fields: ClassVar = ("unit_norm_decoder",)
    constraints: ClassVar = {"l1_coefficient": validation.Real(0),
                             "l1_weighting": validation.Options(*L1_WEIGHTINGS),
                             "unit_norm_decoder": validation.Boolean()}


class StandardSAE(DecoderSAE):
    """The standard SAE (see the module docstring); ``unit_norm_decoder=True`` keeps every decoder
    column at unit norm. Trained with :class:`SAEObjective`."""

    family = NAME
    codes = "activations a = ReLU((x - b_dec) W_enc + b_enc): high means the feature is present"
    saelens_architecture = "standard"

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """a = ReLU(z)."""
        return F.relu(z)

    @classmethod
    def from_saelens(cls, cfg, tensors, info, path) -> StandardSAE:
        model = cls.blank(
            cfg, unit_norm_decoder=saelens_bool(info, "unit_norm_decoder", False, f"{path} metadata.dfsae"))
        return model.load_saelens_tensors(cfg, tensors)

    @classmethod
    def claims(cls, raw: dict) -> bool:
        """SAELens's ``standard`` architecture, and the layout before SAELens 6 with a ReLU."""
        if "activation_fn_str" in raw:
            return raw.get("architecture", NAME) == NAME and raw["activation_fn_str"] == "relu"
        return raw.get("architecture") == NAME


class SAEObjective(ConfiguredObjective):
    """mean ‖x − x̂‖²₂ + λ · mean Σ_j abs(a_j) w_j, with w_j = ‖d_j‖₂ (``l1_weighting="decoder_norm"``,
    the default) or 1 (``"plain"``). Terms: ``"recon"`` and ``"l1"`` (the weighted penalty)."""

    config_type = StandardConfig

    def __call__(self, model, x: torch.Tensor):
        codes = model.encode(x)
        recon = reconstruction_loss(x, model.decode(codes))
        norms = model.decoder_norms() if self.l1_weighting == "decoder_norm" else None
        l1 = l1_penalty(codes, norms)
        return recon + self.l1_coefficient * l1, {"recon": recon, "l1": l1}


StandardConfig.model, StandardConfig.objective = StandardSAE, SAEObjective
StandardSAE.config_type = StandardConfig
FAMILY = Family(NAME, "standard SAE (L1)", StandardConfig, knob="l1_coefficient")

__all__ = ["StandardConfig", "StandardSAE", "SAEObjective"]
