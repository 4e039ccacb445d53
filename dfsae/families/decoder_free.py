"""The decoder-free SAE: an encoder of energies trained by L_LSE and the InfoMax terms (paper Eq. 6).

E_j(x) = φ(w_j · x + b_j); the code is the energy vector, a = E, and **lower energy is a better
explanation** (E_j = 0 is unit j's best case). Responsibilities r = softmax(−E). There is no
decoder; Wᵀ is the *implicit* decoder, x̂ = Wᵀ a (paper §4.5). Parameters: K·D + K.

Objective::

    L = λ_lse · L_LSE + λ_var · L_var + λ_tc · L_tc + λ_wr · L_wr  [+ λ_recon · mean ‖x − WᵀE‖²]

The last term, off by default, reconstructs through the implicit decoder; it exists to test
whether reconstruction can stand in for the InfoMax terms (the paper's §6.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch.nn import functional as F

from .. import distributed as dist_stats
from .. import losses, validation
from ..losses import (
    DECORRELATION_METHODS,
    EPS,
    REDUCTIONS,
    decorrelation_loss,
    infomax_estimate,
    lse_infomax_estimate,
    lse_loss,
    lse_per_input,
    reconstruction_loss,
    variance_loss,
    weight_orthogonality_loss,
)
from .base import SAE, ConfiguredObjective, Family, FamilyConfig, init_linear, make_generator, saelens_bool

NAME = "decoder_free"
ACTIVATIONS = {
    "relu": F.relu,
    "softplus": F.softplus,
    "identity": lambda z: z,
}
_WEIGHT = validation.Real(0)


@dataclass(frozen=True)
class DecoderFreeConfig(FamilyConfig):
    """Options of the decoder-free family.

    Model: ``activation`` φ (``"relu"``, ``"softplus"``, ``"identity"``) and ``unit_norm_rows``
    (keep every w_j at unit norm). Objective: the weights λ of L_LSE, L_var, L_tc, L_wr and the
    tied reconstruction; ``lse_reduction`` (``"mean"`` or ``"sum"`` over the batch); ``eps`` of
    L_var and L_tc; ``decorrelation``, how L_tc is computed (:func:`dfsae.losses.decorrelation_loss`),
    with ``n_probes`` for the estimate; ``fused``, whether L_LSE (and, with the estimate, the
    InfoMax terms) run in fused functions with one gradient buffer (:func:`dfsae.losses.lse_per_input`,
    :func:`dfsae.losses.lse_infomax_estimate`). ``decorrelation`` decides what is computed and
    ``fused`` only how: both ways give the same loss and gradients.
    """

    family: ClassVar[str] = NAME
    activation: str = "relu"
    unit_norm_rows: bool = False
    lambda_lse: float = 1.0
    lambda_var: float = 1.0
    lambda_tc: float = 1.0
    lambda_wr: float = 0.0
    lambda_recon: float = 0.0
    lse_reduction: str = "mean"
    eps: float = EPS
    decorrelation: str = "auto"
    n_probes: int = 16
    fused: bool = False

    model_fields: ClassVar = ("activation", "unit_norm_rows")
    constraints: ClassVar = {
        "activation": validation.Options(*ACTIVATIONS), "unit_norm_rows": validation.Boolean(),
        "lambda_lse": _WEIGHT, "lambda_var": _WEIGHT, "lambda_tc": _WEIGHT, "lambda_wr": _WEIGHT,
        "lambda_recon": _WEIGHT, "lse_reduction": validation.Options(*REDUCTIONS),
        "eps": validation.Real(0, low_open=True), "decorrelation": validation.Options(*DECORRELATION_METHODS),
        "n_probes": validation.Integer(1), "fused": validation.Boolean(),
    }

    @classmethod
    def check_together(cls, values: dict) -> None:
        weights = ("lambda_lse", "lambda_var", "lambda_tc", "lambda_wr", "lambda_recon")
        if all(values.get(name, getattr(cls, name)) == 0 for name in weights):
            raise ValueError(f"all λ are 0; set at least one of {', '.join(weights)} > 0")


class DecoderFreeSAE(SAE):
    """Encoder-only sparse autoencoder whose outputs are energies.

    E_j(x) = φ(w_j · x + b_j), with φ ∈ {"relu", "softplus", "identity"}. Lower energy means
    component j explains x better. Parameters: K·D + K (784→64: 50,240).

    Parameters
    ----------
    input_dim, hidden_dim : int
        D and K.
    activation : str
        φ, one of ``"relu"``, ``"softplus"``, ``"identity"``.
    seed : int or None
        Seeds the weight initialisation (independent of torch's global RNG).
    unit_norm_rows : bool
        Keep every row w_j at unit L2 norm: rows are renormalised after every optimiser
        step (``after_step``). −log Var(A_j) can otherwise be lowered without limit by
        growing ‖w_j‖; with unit rows only the bias and the directions are learned.
    """

    family = NAME
    codes_are_energies = True
    codes = ("energies E = ReLU(x W_enc + b_enc): LOW means a good match (E_j = 0 is unit j's "
             "best case); W_dec = c W_enc^T is the implicit decoder, not a trained one")
    rank_by = ("rank by responsibility r = softmax(-E) or similarity s = max_k E_k - E_j (high = "
               "good match); the largest code is the WORST match")
    saelens_architecture = "standard"

    def __init__(self, input_dim: int, hidden_dim: int, activation: str = "relu", seed=None,
                 unit_norm_rows: bool = False):
        super().__init__(input_dim, hidden_dim)
        options = DecoderFreeConfig.checked(activation=activation, unit_norm_rows=unit_norm_rows)
        self.activation, self.unit_norm_rows = options["activation"], options["unit_norm_rows"]
        init_linear(self.encoder, make_generator(seed))
        if self.unit_norm_rows:
            self.after_step()

    def energies(self, x: torch.Tensor) -> torch.Tensor:
        """E = φ(W x + b), shape (n, K)."""
        return ACTIVATIONS[self.activation](self.encoder(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of the decoder-free model is its energy vector."""
        return self.energies(x)

    @staticmethod
    def responsibilities(energies: torch.Tensor) -> torch.Tensor:
        """r = softmax(−E) over the K components; equals ∂L_LSE/∂E (paper Eq. 2)."""
        return torch.softmax(-energies, dim=-1)

    @staticmethod
    def similarities(energies: torch.Tensor) -> torch.Tensor:
        """§4.4 conversion: s_j = max_k E_k − E_j ≥ 0 (per input; high = good explanation)."""
        return energies.max(dim=-1, keepdim=True).values - energies

    def implicit_decode(self, codes: torch.Tensor) -> torch.Tensor:
        """§4.5 implicit decoder: x̂ = Wᵀ a, i.e. ``codes @ W`` for a batch, shape (n, D)."""
        return codes @ self.W

    @torch.no_grad()
    def after_step(self) -> None:
        """Renormalise the rows when ``unit_norm_rows``."""
        if self.unit_norm_rows:
            self.W.div_(self.W.norm(dim=1, keepdim=True).clamp_min(1e-12))

    # -- SAELens: the standard architecture with b_dec = 0, no input centring, W_dec = c·W ----------
    def to_saelens(self, input_scale: float, decoder_scale: float | None = None) -> tuple[dict, dict, dict]:
        """SAELens's code is then ReLU(x W_enc + b_enc) = E, and W_dec = c·W the implicit decoder
        (c = ``decoder_scale``, default 1, e.g. fitted by :func:`dfsae.metrics.optimal_scale`).
        Softplus and identity energies have no SAELens activation and are refused."""
        if self.activation != "relu":
            raise ValueError(f"a decoder-free model with activation={self.activation!r} cannot be "
                             "written as a SAELens checkpoint: SAELens's standard architecture applies ReLU. "
                             "Train with activation='relu' to export, or keep the model with "
                             "torch.save(model.state_dict())")
        c = 1.0 if decoder_scale is None else validation.positive_float("decoder_scale", decoder_scale)
        W = self.W.detach().cpu()
        tensors = {"W_enc": (W.T * input_scale).contiguous(),
                   "b_enc": self.encoder.bias.detach().cpu().clone(),
                   "W_dec": (c * W / input_scale).contiguous(),
                   "b_dec": torch.zeros(self.input_dim, dtype=W.dtype)}
        info = {"activation": "relu", "decoder_scale": c, "unit_norm_rows": self.unit_norm_rows}
        return {"architecture": self.saelens_architecture, "apply_b_dec_to_input": False}, tensors, info

    @classmethod
    def from_saelens(cls, cfg: dict, tensors: dict, info: dict, path) -> DecoderFreeSAE:
        if tensors["b_dec"].abs().max() > 0:
            raise ValueError(f"{path}: a decoder-free checkpoint has b_dec = 0")
        activation = info.get("activation", "relu")
        if activation != "relu":
            raise ValueError(f"{path}: metadata.dfsae.activation must be 'relu' (SAELens applies ReLU), "
                             f"got {activation!r}")
        model = cls.blank(cfg, activation="relu",
                    unit_norm_rows=saelens_bool(info, "unit_norm_rows", False, f"{path} metadata.dfsae"))
        with torch.no_grad():
            model.encoder.weight.copy_(tensors["W_enc"].T)
            model.encoder.bias.copy_(tensors["b_enc"])
        return model

    @classmethod
    def claims(cls, raw: dict) -> bool:
        """dfsae's layout before SAELens 6 named the architecture after the family."""
        return raw.get("architecture") == NAME


class DecoderFreeObjective(ConfiguredObjective):
    """The decoder-free objective L = λ_lse L_LSE + λ_var L_var + λ_tc L_tc + λ_wr L_wr (+ λ_recon ·
    tied reconstruction); options as in :class:`DecoderFreeConfig`.

    Calling it as ``objective(model, x)`` returns ``(loss, terms)`` where ``terms`` maps
    each term's name (``"lse"``, ``"var"``, ``"tc"``, ``"wr"``, ``"recon"``) to its *unweighted*
    value; terms whose weight is 0 are not computed. The configurations of the ablation are
    A = (1, 0, 0), B = (1, λ, 0), C = (1, λ, λ), D = (0, λ, λ) for (λ_lse, λ_var, λ_tc).

    With ``fused=True`` (outside a process group) L_LSE is computed by a fused function whose
    backward writes its gradient into the buffer of exponentials the forward made, and with
    ``decorrelation="estimate"`` L_var and L_tc join it in one function
    (:func:`dfsae.losses.lse_infomax_estimate`); the graph of such a loss can be
    backpropagated once.
    """

    config_type = DecoderFreeConfig
    supports_distributed = True

    def __init__(self, **options):
        super().__init__(**options)
        self.generator = None  # probe generator for decorrelation="estimate" (seeded by reset)

    @property
    def needs_batch_statistics(self) -> bool:
        return self.lambda_var > 0 or self.lambda_tc > 0

    def reset(self, seed: int) -> None:
        """Seed the probes of ``decorrelation="estimate"`` (the same on every process)."""
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, model: DecoderFreeSAE, x: torch.Tensor):
        """``model`` may be wrapped in DistributedDataParallel; inside an active process group
        the batch statistics are those of the global batch (:mod:`dfsae.distributed`)."""
        core = getattr(model, "module", model)
        distributed = dist_stats.is_active()
        fused = self.fused and not distributed
        estimate = self.decorrelation == "estimate"
        # Probes first: drawing them from the generator is where torch.compile breaks its graph,
        # so everything after it compiles as one graph.
        probes = None
        if estimate and self.lambda_tc > 0 and not distributed:
            probes = losses.rademacher(core.hidden_dim, self.n_probes, self.generator, core.W.detach())
        energies = model(x)  # called through the wrapper so DDP sees the forward
        terms = {}
        if fused and estimate and self.needs_batch_statistics:
            self._fused_infomax(energies, terms, probes)
        elif fused and self.lambda_lse > 0 and not torch.compiler.is_compiling():
            per_input = lse_per_input(energies, reuse_buffer=True)
            terms["lse"] = per_input.mean() if self.lse_reduction == "mean" else per_input.sum()
        if self.lambda_lse > 0 and "lse" not in terms:
            terms["lse"] = lse_loss(energies, self.lse_reduction, distributed=distributed)
        if self.lambda_var > 0 and "var" not in terms:
            terms["var"] = variance_loss(energies, self.eps, distributed=distributed)
        if self.lambda_tc > 0 and "tc" not in terms:
            terms["tc"] = decorrelation_loss(energies, self.eps, self.decorrelation, self.n_probes,
                                             generator=self.generator, distributed=distributed, probes=probes)
        if self.lambda_wr > 0:
            terms["wr"] = weight_orthogonality_loss(core.W)
        if self.lambda_recon > 0:
            terms["recon"] = reconstruction_loss(x, core.implicit_decode(energies))
        weights = {"lse": self.lambda_lse, "var": self.lambda_var, "tc": self.lambda_tc,
                   "wr": self.lambda_wr, "recon": self.lambda_recon}
        loss = energies.new_zeros(())
        for name, value in terms.items():
            loss = loss + weights[name] * value
        return loss, terms

    def _fused_infomax(self, energies, terms, probes):
        """L_LSE with L_var and the estimated L_tc through one fused function whose backward writes
        every gradient into the one (B, K) buffer the forward made. Under ``torch.compile`` the
        compiler fuses the plain L_LSE with the model's forward better than a hand-fused function
        it cannot see into, so only the InfoMax part is fused by hand there."""
        if probes is None:  # λ_tc = 0: the estimate's probes are not needed, but the kernel takes some
            probes = energies.new_zeros(energies.shape[1], 1)
        if torch.compiler.is_compiling() or self.lambda_lse == 0:
            var_term, tc_term = infomax_estimate(energies, self.eps, probes=probes)
        else:
            per_input, var_term, tc_term = lse_infomax_estimate(energies, self.eps, probes=probes,
                                                                reuse_buffer=True)
            terms["lse"] = per_input.mean() if self.lse_reduction == "mean" else per_input.sum()
        if self.lambda_var > 0:
            terms["var"] = var_term
        if self.lambda_tc > 0:
            terms["tc"] = tc_term


DecoderFreeConfig.model, DecoderFreeConfig.objective = DecoderFreeSAE, DecoderFreeObjective
DecoderFreeSAE.config_type = DecoderFreeConfig
FAMILY = Family(NAME, "decoder-free", DecoderFreeConfig, knob="lambda_lse")

__all__ = ["DecoderFreeConfig", "DecoderFreeSAE", "DecoderFreeObjective", "ACTIVATIONS"]
