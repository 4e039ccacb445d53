"""The BatchTopK SAE (Bussmann et al., 2024): TopK over the whole batch instead of each input.

In training, the k·B largest ReLU pre-activations of a batch of B inputs are kept wherever they
fall, so each input gets as many latents as it needs and the mean L0 is k. At inference the
batch is gone, and the model applies one threshold θ: a = z · 1[z > θ], where θ tracks the
smallest activation kept in training (its first value, then an exponential moving average with
weight ``threshold_momentum`` per step). SAELens stores such a model as a JumpReLU SAE with θ as
every latent's threshold, and so does :func:`dfsae.checkpoint.save`. The loss is TopK's:
reconstruction plus AuxK on dead latents (:mod:`dfsae.families.topk`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from .. import validation
from .base import DecoderSAE, Family, FamilyConfig, saelens_bool
from .topk import TopKConfig, TopKObjective, check_k

NAME = "batchtopk"


@dataclass(frozen=True)
class BatchTopKConfig(FamilyConfig):
    """``k`` latents per input on average over a batch; ``threshold_momentum`` of the inference
    threshold's moving average; AuxK and ``unit_norm_decoder`` as for TopK."""

    family: ClassVar[str] = NAME
    k: int
    threshold_momentum: float = 0.01
    aux_coefficient: float = 1 / 32
    aux_k: int | None = None
    dead_window: int = 10_000
    unit_norm_decoder: bool = True

    model_fields: ClassVar = ("k", "unit_norm_decoder")
    constraints: ClassVar = {**TopKConfig.constraints,
                             "threshold_momentum": validation.Real(0, 1, low_open=True)}
    check_width = TopKConfig.check_width


class BatchTopKSAE(DecoderSAE):
    """BatchTopK SAE (see the module docstring). ``encode`` is the inference rule a = z·1[z > θ];
    training uses :meth:`batch_activate`. θ is the buffer ``threshold`` (0 before training, when
    the code is ReLU(z))."""

    family = NAME
    codes = ("activations a = z 1[z > threshold] with one threshold for every latent (BatchTopK at "
             "inference); high means the feature is present")
    saelens_architecture = "jumprelu"

    def __init__(self, input_dim: int, hidden_dim: int, k: int, unit_norm_decoder: bool = True, seed=None):
        super().__init__(input_dim, hidden_dim, unit_norm_decoder=unit_norm_decoder, seed=seed)
        self.k = BatchTopKConfig.constraints["k"].check("k", k)
        check_k(self.k, self.hidden_dim)
        self.register_buffer("threshold", torch.zeros(()))

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """a = ReLU(z) · 1[z > θ] (θ ≥ 0, so this is z · 1[z > θ])."""
        return F.relu(z) * (z > self.threshold)

    def batch_activate(self, z: torch.Tensor) -> torch.Tensor:
        """The training code: the k·B largest entries of ReLU(z) over the whole batch, zeros elsewhere."""
        flat = F.relu(z).flatten()
        top = flat.topk(min(self.k * z.shape[0], flat.numel()))
        return torch.zeros_like(flat).scatter(0, top.indices, top.values).view_as(z)

    @torch.no_grad()
    def update_threshold(self, codes: torch.Tensor, momentum: float) -> None:
        """θ ← the smallest positive kept activation of this batch the first time, then
        (1 − momentum)·θ + momentum·that value."""
        positive = codes[codes > 0]
        if positive.numel() == 0:
            return
        low = positive.min().to(self.threshold.dtype)
        self.threshold.copy_(low if self.threshold <= 0 else (1 - momentum) * self.threshold + momentum * low)

    def to_saelens(self, input_scale: float, **options) -> tuple[dict, dict, dict]:
        """A JumpReLU SAE with every threshold θ (pre-activations do not change with the input scale)."""
        fields, tensors, info = super().to_saelens(input_scale, **options)
        tensors["threshold"] = self.threshold.detach().cpu().expand(self.hidden_dim).clone()
        return fields, tensors, {**info, "k": self.k}

    @classmethod
    def from_saelens(cls, cfg, tensors, info, path) -> BatchTopKSAE:
        threshold = tensors.get("threshold")
        shared = threshold is not None and threshold.shape == (cfg["d_sae"],) and bool(
            torch.all(threshold == threshold[0])) and threshold[0] >= 0
        if not shared:
            raise ValueError(f"{path}: a BatchTopK checkpoint needs one threshold >= 0 shared by every "
                             "latent; load it without metadata.dfsae.family to read it as a JumpReLU SAE")
        k = info.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg["d_sae"]:
            raise ValueError(f"{path}: metadata.dfsae.k must be an integer in [1, d_sae={cfg['d_sae']}], "
                             f"got {k!r}")
        model = cls.blank(cfg, k=k,
                    unit_norm_decoder=saelens_bool(info, "unit_norm_decoder", True, f"{path} metadata.dfsae"))
        model.threshold.fill_(float(threshold[0]))
        return model.load_saelens_tensors(cfg, tensors)


class BatchTopKObjective(TopKObjective):
    """TopK's loss (reconstruction + α·AuxK) on the batch-level code; updates θ after each batch."""

    config_type = BatchTopKConfig

    def codes(self, model, z: torch.Tensor) -> torch.Tensor:
        codes = model.batch_activate(z)
        model.update_threshold(codes.detach(), self.threshold_momentum)
        return codes


BatchTopKConfig.model, BatchTopKConfig.objective = BatchTopKSAE, BatchTopKObjective
BatchTopKSAE.config_type = BatchTopKConfig
FAMILY = Family(NAME, "BatchTopK SAE", BatchTopKConfig, knob="k")

__all__ = ["BatchTopKConfig", "BatchTopKSAE", "BatchTopKObjective"]
