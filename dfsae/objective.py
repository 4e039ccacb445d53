"""The objectives :func:`dfsae.training.train` minimises, each combining loss terms of :mod:`dfsae.losses`.

Decoder-free objective (paper Eq. 6)::

    L = λ_lse · L_LSE + λ_var · L_var + λ_tc · L_tc + λ_wr · L_wr  [+ λ_recon · mean ‖x − WᵀE‖²]

Here A, the code, is the energy vector E of the decoder-free model. The last term, off by
default, reconstructs through the implicit decoder Wᵀ; it exists to test whether reconstruction
can stand in for the InfoMax terms (the paper's §6.3). Baselines:
:class:`SAEObjective` (mean over the batch of ‖x − x̂‖²₂ + λ Σ_j abs(a_j) w_j, with w_j = 1 or
w_j = ‖d_j‖₂) and :class:`TopKObjective` (mean ‖x − x̂‖²₂ only).

Every objective follows :class:`Objective`, the protocol ``train`` relies on.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import torch

from . import distributed as dist_stats
from . import losses, validation
from .losses import (
    DECORRELATION_METHODS,
    EPS,
    REDUCTIONS,
    decorrelation_loss,
    infomax_estimate,
    l1_penalty,
    lse_infomax_estimate,
    lse_loss,
    lse_per_input,
    reconstruction_loss,
    variance_loss,
    weight_orthogonality_loss,
)
from .model import DecoderFreeSAE, StandardSAE, TopKSAE


class Objective(Protocol):
    """What :func:`dfsae.training.train` needs from an objective.

    * ``model_type`` — the model class it trains (``train`` refuses any other).
    * ``needs_batch_statistics`` — True if the loss uses statistics of the whole batch (then a
      batch of one input is skipped, and distributed training must share those statistics).
    * ``supports_distributed`` — True if it computes its batch statistics over the global batch
      inside a ``torch.distributed`` process group.
    * ``reset(seed)`` — called once before training; seeds any randomness of the loss.
    * ``__call__(model, x)`` — ``(loss, terms)``: the scalar to minimise and a dict of its
      unweighted terms, recorded per epoch in :class:`dfsae.training.History`.
    """

    model_type: ClassVar[type]
    needs_batch_statistics: bool
    supports_distributed: ClassVar[bool]

    def reset(self, seed: int) -> None: ...

    def __call__(self, model, x: torch.Tensor) -> tuple[torch.Tensor, dict]: ...


class DecoderFreeObjective:
    """The decoder-free objective L = λ_lse L_LSE + λ_var L_var + λ_tc L_tc + λ_wr L_wr.

    ``decorrelation`` selects how L_tc is computed (see :func:`dfsae.losses.decorrelation_loss`);
    ``"estimate"`` draws ``n_probes`` fresh probe vectors at every call and is the large-K path:
    outside a process group, L_LSE, L_var and L_tc are then computed by fused functions
    (:func:`dfsae.losses.lse_infomax_estimate`, :func:`dfsae.losses.lse_per_input`) whose
    backward accumulates all their gradients in one (B, K) buffer; the graph of such a loss can
    be backpropagated once.

    Calling it as ``objective(model, x)`` returns ``(loss, terms)`` where ``terms`` maps
    each term's name (``"lse"``, ``"var"``, ``"tc"``, ``"wr"``) to its *unweighted* value.
    Terms whose weight is 0 are not computed. ``lambda_recon`` > 0 adds the tied reconstruction
    mean ‖x − WᵀE‖² (term ``"recon"``), which the paper's §6.3 test uses in place of InfoMax.
    The configurations of the ablation are
    A = (1, 0, 0), B = (1, λ, 0), C = (1, λ, λ), D = (0, λ, λ) for (λ_lse, λ_var, λ_tc).
    """

    model_type = DecoderFreeSAE
    supports_distributed = True

    def __init__(self, lambda_lse=1.0, lambda_var=1.0, lambda_tc=1.0, lambda_wr=0.0,
                 lse_reduction="mean", eps=EPS, decorrelation="auto", n_probes=16, lambda_recon=0.0):
        self.lambda_lse = validation.positive_float("lambda_lse", lambda_lse, allow_zero=True)
        self.lambda_var = validation.positive_float("lambda_var", lambda_var, allow_zero=True)
        self.lambda_tc = validation.positive_float("lambda_tc", lambda_tc, allow_zero=True)
        self.lambda_wr = validation.positive_float("lambda_wr", lambda_wr, allow_zero=True)
        self.lambda_recon = validation.positive_float("lambda_recon", lambda_recon, allow_zero=True)
        self.lse_reduction = validation.choice("lse_reduction", lse_reduction, REDUCTIONS)
        self.eps = validation.positive_float("eps", eps)
        self.decorrelation = validation.choice("decorrelation", decorrelation, DECORRELATION_METHODS)
        self.n_probes = validation.positive_int("n_probes", n_probes)
        self.generator = None  # probe generator for decorrelation="estimate" (seeded by reset)
        if self.lambda_lse + self.lambda_var + self.lambda_tc + self.lambda_wr + self.lambda_recon == 0:
            raise ValueError("all λ are 0; set at least one of lambda_lse, lambda_var, "
                             "lambda_tc, lambda_wr, lambda_recon > 0")

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
        fused = self.decorrelation == "estimate" and not distributed
        # Probes first: drawing them from the generator is where torch.compile breaks its graph,
        # so everything after it compiles as one graph.
        probes = self._probes(core.hidden_dim, core.W) if fused and self.needs_batch_statistics else None
        energies = model(x)  # = energies; called through the wrapper so DDP sees the forward
        terms = {}
        loss = energies.new_zeros(())
        if fused:
            loss = self._fused_terms(energies, terms, probes)
        else:
            if self.lambda_lse > 0:
                terms["lse"] = lse_loss(energies, self.lse_reduction, distributed=distributed)
                loss = loss + self.lambda_lse * terms["lse"]
            if self.lambda_var > 0:
                terms["var"] = variance_loss(energies, self.eps, distributed=distributed)
                loss = loss + self.lambda_var * terms["var"]
            if self.lambda_tc > 0:
                terms["tc"] = decorrelation_loss(energies, self.eps, self.decorrelation, self.n_probes,
                                                 generator=self.generator, distributed=distributed)
                loss = loss + self.lambda_tc * terms["tc"]
        if self.lambda_wr > 0:
            terms["wr"] = weight_orthogonality_loss(core.W)
            loss = loss + self.lambda_wr * terms["wr"]
        if self.lambda_recon > 0:
            terms["recon"] = reconstruction_loss(x, core.implicit_decode(energies))
            loss = loss + self.lambda_recon * terms["recon"]
        return loss, terms

    def _probes(self, k, like):
        return losses._rademacher(k, self.n_probes, self.generator, like.detach())

    def _fused_terms(self, energies, terms, probes):
        """The large-K path of ``decorrelation="estimate"``: L_LSE, and L_var with the estimated
        L_tc if either is on, through fused functions whose backward writes every term's
        gradient into the one (B, K) buffer the forward made (:func:`dfsae.losses.lse_infomax_estimate`).
        Under ``torch.compile`` the compiler fuses the plain L_LSE with the model's forward better
        than a hand-fused function it cannot see into, so only the InfoMax part is fused by hand."""
        loss = energies.new_zeros(())
        if torch.compiler.is_compiling():
            if self.lambda_lse > 0:
                terms["lse"] = lse_loss(energies, self.lse_reduction)
                loss = loss + self.lambda_lse * terms["lse"]
            if self.needs_batch_statistics:
                var_term, tc_term = infomax_estimate(energies, self.eps, probes=probes)
        elif self.needs_batch_statistics:
            per_input, var_term, tc_term = lse_infomax_estimate(energies, self.eps, probes=probes,
                                                                reuse_buffer=True)
        elif self.lambda_lse > 0:
            per_input = lse_per_input(energies, reuse_buffer=True)
        if self.lambda_lse > 0 and "lse" not in terms:
            terms["lse"] = per_input.mean() if self.lse_reduction == "mean" else per_input.sum()
            loss = loss + self.lambda_lse * terms["lse"]
        if self.lambda_var > 0:
            terms["var"] = var_term
            loss = loss + self.lambda_var * var_term
        if self.lambda_tc > 0:
            terms["tc"] = tc_term
            loss = loss + self.lambda_tc * tc_term
        return loss

    def __repr__(self) -> str:
        return (f"DecoderFreeObjective(lambda_lse={self.lambda_lse}, lambda_var={self.lambda_var}, "
                f"lambda_tc={self.lambda_tc}, lambda_wr={self.lambda_wr}, "
                f"lambda_recon={self.lambda_recon}, lse_reduction={self.lse_reduction!r}, eps={self.eps})")


class SAEObjective:
    """Standard SAE loss: mean ‖x − x̂‖²₂ + λ · mean Σ_j abs(a_j) w_j.

    ``l1_weighting="plain"`` uses w_j = 1; ``"decoder_norm"`` uses w_j = ‖d_j‖₂, the column
    norm of the decoder, which removes the incentive to shrink codes while growing atoms
    (equivalent to a plain L1 with unit-norm atoms).
    """

    model_type = StandardSAE
    needs_batch_statistics = False
    supports_distributed = False

    def reset(self, seed: int) -> None:
        """Nothing random to seed."""

    def __init__(self, l1_coefficient=1e-3, l1_weighting="plain"):
        self.l1_coefficient = validation.positive_float("l1_coefficient", l1_coefficient, allow_zero=True)
        self.l1_weighting = validation.choice("l1_weighting", l1_weighting, ("plain", "decoder_norm"))

    def __call__(self, model: StandardSAE, x: torch.Tensor):
        codes = model.encode(x)
        recon = reconstruction_loss(x, model.decode(codes))
        norms = model.decoder_norms() if self.l1_weighting == "decoder_norm" else None
        l1 = l1_penalty(codes, norms)
        return recon + self.l1_coefficient * l1, {"recon": recon, "l1": l1}

    def __repr__(self) -> str:
        return f"SAEObjective(l1_coefficient={self.l1_coefficient}, l1_weighting={self.l1_weighting!r})"


class TopKObjective:
    """TopK SAE loss: mean ‖x − x̂‖²₂ (sparsity is enforced by the architecture)."""

    model_type = TopKSAE
    needs_batch_statistics = False
    supports_distributed = False

    def reset(self, seed: int) -> None:
        """Nothing random to seed."""

    def __call__(self, model: TopKSAE, x: torch.Tensor):
        recon = reconstruction_loss(x, model.decode(model.encode(x)))
        return recon, {"recon": recon}

    def __repr__(self) -> str:
        return "TopKObjective()"
