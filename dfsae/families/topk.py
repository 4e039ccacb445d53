"""The TopK SAE (Gao et al., 2024) with its auxiliary loss on dead latents (AuxK).

a = ReLU of the k largest pre-activations z = W_enc (x − b_dec) + b_enc, zeros elsewhere;
x̂ = W_dec a + b_dec. Sparsity is fixed by construction (L0 ≤ k), so the main loss is the
reconstruction mean ‖x − x̂‖²₂. AuxK adds α · mean ‖e − ê‖²₂, where e = x − x̂ (detached) and ê is
reconstructed by the ``aux_k`` dead latents with the largest pre-activations
(:func:`dfsae.losses.auxk_loss`); a latent is *dead* when it has not fired on any of the last
``dead_window`` training inputs. Gao et al. use α = 1/32 and k_aux = 512 and count a latent dead
after 10M tokens without firing; here α = 1/32, k_aux = D/2 (half the input width) and a window of
10,000 inputs by default, a window that fits datasets of thousands to millions of inputs.
``aux_coefficient=0`` turns AuxK off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from .. import validation
from ..losses import auxk_loss, reconstruction_loss
from .base import ConfiguredObjective, DeadLatents, DecoderSAE, Family, FamilyConfig, saelens_bool

NAME = "topk"


@dataclass(frozen=True)
class TopKConfig(FamilyConfig):
    """``k`` active latents per input; AuxK: ``aux_coefficient`` α ≥ 0, ``aux_k`` (None: half the
    input width) and ``dead_window``, the training inputs without firing after which a latent
    counts as dead; ``unit_norm_decoder`` (default True)."""

    family: ClassVar[str] = NAME
    k: int
    aux_coefficient: float = 1 / 32
    aux_k: int | None = None
    dead_window: int = 10_000
    unit_norm_decoder: bool = True

    model_fields: ClassVar = ("k", "unit_norm_decoder")
    constraints: ClassVar = {"k": validation.Integer(1), "aux_coefficient": validation.Real(0),
                             "aux_k": validation.OrNone(validation.Integer(1)),
                             "dead_window": validation.Integer(1), "unit_norm_decoder": validation.Boolean()}

    def check_width(self, hidden_dim: int) -> None:
        check_k(self.k, hidden_dim)


def check_k(k: int, hidden_dim: int) -> None:
    """k latents of a dictionary of ``hidden_dim``: k ≤ K."""
    if k > hidden_dim:
        raise ValueError(f"k={k} must be <= hidden_dim={hidden_dim}")


class TopKSAE(DecoderSAE):
    """TopK SAE: a = ReLU(TopK_k(z)); all but the k largest pre-activations set to 0. Decoder
    columns are kept at unit norm by default."""

    family = NAME
    codes = "activations of the k largest pre-activations, ReLU; high means the feature is present"
    saelens_architecture = "topk"

    def __init__(self, input_dim: int, hidden_dim: int, k: int, unit_norm_decoder: bool = True, seed=None):
        super().__init__(input_dim, hidden_dim, unit_norm_decoder=unit_norm_decoder, seed=seed)
        self.k = TopKConfig.constraints["k"].check("k", k)
        check_k(self.k, self.hidden_dim)

    def activate(self, z: torch.Tensor) -> torch.Tensor:
        """ReLU of the k largest entries of each row of z, zeros elsewhere."""
        top = torch.topk(z, self.k, dim=-1)
        return torch.zeros_like(z).scatter(-1, top.indices, F.relu(top.values))

    def to_saelens(self, input_scale: float, **options) -> tuple[dict, dict, dict]:
        fields, tensors, info = super().to_saelens(input_scale, **options)
        return {**fields, "k": self.k, "rescale_acts_by_decoder_norm": False}, tensors, info

    @classmethod
    def from_saelens(cls, cfg, tensors, info, path) -> TopKSAE:
        raw = cfg["raw"]
        k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg["d_sae"]:
            raise ValueError(f"{path}: a TopK SAE needs 'k', an integer in [1, d_sae={cfg['d_sae']}], "
                             f"got {k!r}")
        if saelens_bool(raw, "rescale_acts_by_decoder_norm", False, path):
            raise ValueError(f"{path}: rescale_acts_by_decoder_norm=true is not supported; fold the decoder "
                             "norms into the encoder first (SAELens: fold_W_dec_norm)")
        model = cls.blank(cfg, k=k,
                    unit_norm_decoder=saelens_bool(info, "unit_norm_decoder", True, f"{path} metadata.dfsae"))
        return model.load_saelens_tensors(cfg, tensors)

    @classmethod
    def claims(cls, raw: dict) -> bool:
        """SAELens's ``topk`` architecture, and the layout before SAELens 6 with a TopK activation."""
        return raw.get("architecture") == NAME or raw.get("activation_fn_str") == NAME


class TopKObjective(ConfiguredObjective):
    """mean ‖x − x̂‖²₂ + α · AuxK (see the module docstring). Terms: ``"recon"`` and, when α > 0,
    ``"aux"`` (unweighted). The dead-latent counts are cleared by ``reset``."""

    config_type = TopKConfig

    def __init__(self, **options):
        super().__init__(**options)
        self.dead = DeadLatents(self.dead_window)

    def reset(self, seed: int) -> None:
        """Forget which latents fired: a new training run starts with none dead."""
        self.dead.reset()

    def codes(self, model, z: torch.Tensor) -> torch.Tensor:
        """The training code of pre-activations z (TopK: the model's own activation)."""
        return model.activate(z)

    def __call__(self, model, x: torch.Tensor):
        z = model.pre_activations(x)
        codes = self.codes(model, z)
        x_hat = model.decode(codes)
        terms = {"recon": reconstruction_loss(x, x_hat)}
        self.dead.observe(codes)
        loss = terms["recon"]
        if self.aux_coefficient > 0:
            k_aux = self.aux_k or max(1, model.input_dim // 2)
            terms["aux"] = auxk_loss((x - x_hat).detach(), z, self.dead.mask(), model.decoder.weight, k_aux)
            loss = loss + self.aux_coefficient * terms["aux"]
        return loss, terms


TopKConfig.model, TopKConfig.objective = TopKSAE, TopKObjective
TopKSAE.config_type = TopKConfig
FAMILY = Family(NAME, "TopK SAE", TopKConfig, knob="k")

__all__ = ["TopKConfig", "TopKSAE", "TopKObjective"]
