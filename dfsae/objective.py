"""Loss terms and the objectives that combine them.

Decoder-free objective (paper Eq. 6)::

    L = λ_lse · L_LSE + λ_var · L_var + λ_tc · L_tc + λ_wr · L_wr

* L_LSE(x) = −log Σ_j exp(−E_j(x)), per input (Eq. 1). Its gradient with respect to E_j
  is exactly the responsibility r_j = softmax(−E)_j (Eq. 2): backpropagation performs the
  E-step. Over a batch it is reduced by ``lse_reduction``: ``"mean"`` (the default, used
  throughout the paper) averages over the batch so the term is O(1) whatever the batch
  size; ``"sum"`` adds the per-input values, which multiplies its weight by the batch size
  relative to the batch-level InfoMax terms below.
* L_var = −Σ_j log(Var_batch(A_j) + ε) (Eq. 3). Var is the biased batch variance (divide
  by B). It is a *batch-level* term: computed once per batch, not averaged over inputs.
* L_tc = ‖Corr(A) − I‖²_F counted over the off-diagonal entries (Eq. 4), with
  Corr_ij = Cov_ij / sqrt((Var_i + ε)(Var_j + ε)). A dead unit (zero variance) has zero
  correlation with everything, so neither term produces NaN or inf.
* L_wr = ‖W Wᵀ − I‖²_F (Eq. 5), optional; it fixes the scale and orthogonality of the rows.

Here A is the model's code, which for the decoder-free model is the energy vector E.

Baselines: :class:`SAEObjective` (mean over the batch of ‖x − x̂‖²₂ + λ Σ_j abs(a_j) w_j, with
w_j = 1 or w_j = ‖d_j‖₂) and :class:`TopKObjective` (mean ‖x − x̂‖²₂ only).
"""

from __future__ import annotations

import torch

from . import _checks
from . import distributed as dist_stats
from .model import DecoderFreeSAE, StandardSAE, TopKSAE

REDUCTIONS = ("mean", "sum")


def _require_batch(codes: torch.Tensor, name: str) -> None:
    if codes.ndim != 2:
        raise ValueError(f"{name} needs a 2-D (batch, K) tensor, got shape {tuple(codes.shape)}")
    if codes.shape[0] < 2:
        raise ValueError(
            f"{name} uses batch statistics and needs a batch of at least 2 inputs, got "
            f"{codes.shape[0]}; use batch_size >= 2"
        )


def lse_loss(energies: torch.Tensor, reduction: str = "mean", distributed: bool = False) -> torch.Tensor:
    """L_LSE = −log Σ_j exp(−E_j) per input, reduced over the batch by ``reduction``.

    Computed with ``torch.logsumexp``, which subtracts the max before exponentiating. With
    ``distributed=True`` the mean or sum is over the global batch across processes.
    """
    _checks.choice("lse_reduction", reduction, REDUCTIONS)
    per_input = -torch.logsumexp(-energies, dim=-1)
    if distributed:
        total = dist_stats.all_reduce(per_input.sum())
        if reduction == "sum":
            return total
        return total / dist_stats.all_reduce(per_input.new_tensor(float(per_input.numel())))
    return per_input.mean() if reduction == "mean" else per_input.sum()


def lse_identity(energies: torch.Tensor):
    """Check Eq. 2 on ``energies``: returns (autograd ∂L_LSE/∂E, softmax(−E), max abs. difference).

    L_LSE is summed over the batch here so that each input's gradient is its own r.
    """
    energies = energies.detach().requires_grad_()
    (grad,) = torch.autograd.grad(lse_loss(energies, "sum"), energies)
    r = torch.softmax(-energies.detach(), dim=-1)
    return grad, r, float((grad - r).abs().max())


def batch_variance(codes: torch.Tensor) -> torch.Tensor:
    """Biased per-unit variance over the batch, shape (K,)."""
    _require_batch(codes, "batch_variance")
    centred = codes - codes.mean(dim=0, keepdim=True)
    return (centred * centred).mean(dim=0)


def variance_loss(codes: torch.Tensor, eps: float = 1e-6, distributed: bool = False) -> torch.Tensor:
    """L_var = −Σ_j log(Var(A_j) + ε). Penalises units whose output does not vary (dead).

    With ``distributed=True`` the variance is that of the global batch across processes
    (see :mod:`dfsae.distributed`)."""
    if distributed:
        var = dist_stats.global_moments(codes)[2]
    else:
        var = batch_variance(codes)
    return -torch.log(var + eps).sum()


def batch_correlation(codes: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Corr_ij = Cov_ij / sqrt((Var_i + ε)(Var_j + ε)) over the batch, shape (K, K)."""
    _require_batch(codes, "batch_correlation")
    centred = codes - codes.mean(dim=0, keepdim=True)
    cov = centred.T @ centred / codes.shape[0]
    inv_std = torch.rsqrt(torch.diagonal(cov) + eps)
    return cov * inv_std[:, None] * inv_std[None, :]


DECORRELATION_METHODS = ("auto", "exact", "gram", "estimate")


def _standardise(codes: torch.Tensor, eps: float):
    """Z = (A − mean) / sqrt(B (Var + ε)), so that ZᵀZ = Corr, and diag(Corr) = Var/(Var + ε)."""
    _require_batch(codes, "decorrelation")
    centred = codes - codes.mean(dim=0, keepdim=True)
    var = (centred * centred).mean(dim=0)
    z = centred * torch.rsqrt((var + eps) * codes.shape[0])
    return z, var / (var + eps)


def choose_decorrelation(batch: int, width: int) -> str:
    """What ``"auto"`` uses for a (batch, width) code matrix: the exact K×K form when K ≤ B,
    else the exact B×B Gram form. The stochastic estimate is used only when asked for."""
    if width <= batch:
        return "exact"
    return "gram"


def decorrelation_loss(codes: torch.Tensor, eps: float = 1e-6, method: str = "exact",
                       n_probes: int = 16, generator: torch.Generator | None = None,
                       distributed: bool = False) -> torch.Tensor:
    """L_tc = Σ_{i≠j} Corr_ij², the off-diagonal part of ‖Corr(A) − I‖²_F, three ways.

    * ``"exact"`` — builds the K×K matrix Corr = ZᵀZ: O(B·K²) time, O(K²) memory.
    * ``"gram"`` — exact too, through the B×B Gram matrix: ‖ZᵀZ‖²_F = ‖ZZᵀ‖²_F, so
      L_tc = ‖ZZᵀ‖²_F − Σ_j Corr_jj², O(B²·K) time, O(B²) memory; cheaper when B < K.
    * ``"estimate"`` — unbiased Hutchinson estimate with ``n_probes`` Rademacher vectors v
      (E[vvᵀ] = I): L_tc = E_v ‖(Corr − diag Corr) v‖², with Corr v = Zᵀ(Zv); O(B·K·m)
      time and memory, never a K×K (or B×B) matrix.
    * ``"auto"`` — ``"exact"`` when K ≤ B, else ``"gram"``.

    With ``distributed=True`` the statistics are those of the global batch across processes:
    ``"exact"`` all-reduces Σ a aᵀ, ``"estimate"`` all-reduces Σ Zᵀ(Zv) (every process must
    draw the same probes: pass identically seeded generators); ``"gram"`` needs every pair of
    inputs and is not available (``"auto"`` then means ``"exact"``).

    Z is the standardised code matrix (see ``_standardise``); with ε > 0 a dead unit has a
    zero column and contributes nothing.
    """
    _checks.choice("decorrelation", method, DECORRELATION_METHODS)
    if distributed:
        return _global_decorrelation(codes, eps, "exact" if method == "auto" else method, n_probes,
                                     generator)
    if method == "auto":
        method = choose_decorrelation(*codes.shape)
    if method == "exact":
        corr = batch_correlation(codes, eps)
        return (corr * corr).sum() - (torch.diagonal(corr) ** 2).sum()
    if method == "gram":
        z, diag = _standardise(codes, eps)
        gram = z @ z.T
        return (gram * gram).sum() - (diag * diag).sum()
    _require_batch(codes, "decorrelation")
    var, mean = torch.var_mean(codes, dim=0, correction=0)
    return _estimated_decorrelation(codes, mean, var, eps, n_probes, generator)


def _rademacher(k: int, m: int, generator, like: torch.Tensor) -> torch.Tensor:
    probes = torch.randint(0, 2, (k, m), generator=generator, dtype=like.dtype)
    return (2 * probes - 1).to(like.device)


def _estimated_decorrelation(codes, mean, var, eps, n_probes, generator):
    """Hutchinson estimate of Σ_{i≠j} Corr_ij² from the batch moments, touching the (B, K)
    codes only in two thin matrix products: with S = diag(Var + ε)^(−1/2) and centred codes
    C = A − 1 meanᵀ, Corr v = S Cᵀ C S v / B, and C p = A p − 1 (meanᵀ p) needs no centred copy."""
    m = _checks.positive_int("n_probes", n_probes)
    probes = _rademacher(codes.shape[1], m, generator, codes)
    inv_std = torch.rsqrt(var + eps)
    scaled = probes * inv_std[:, None]                                  # S v, (K, m)
    centred_v = codes @ scaled - mean @ scaled                          # C S v, (B, m)
    corr_v = (codes.T @ centred_v - mean[:, None] * centred_v.sum(0)) * inv_std[:, None] / codes.shape[0]
    off_diag_v = corr_v - (var * inv_std * inv_std)[:, None] * probes
    return (off_diag_v * off_diag_v).sum() / m


def _global_decorrelation(codes, eps, method, n_probes, generator):
    if method == "gram":
        raise ValueError("decorrelation='gram' cannot be computed across processes; "
                         "use 'exact' or 'estimate'")
    n, mean, var = dist_stats.global_moments(codes)
    inv_std = torch.rsqrt(var + eps)
    diag = var / (var + eps)
    if method == "exact":
        cov = dist_stats.all_reduce(codes.T @ codes) / n - mean[:, None] * mean[None, :]
        corr = cov * inv_std[:, None] * inv_std[None, :]
        return (corr * corr).sum() - (diag * diag).sum()
    m = _checks.positive_int("n_probes", n_probes)
    probes = _rademacher(codes.shape[1], m, generator, codes)
    z = (codes - mean) * inv_std / torch.sqrt(n)
    off_diag_v = dist_stats.all_reduce(z.T @ (z @ probes)) - diag[:, None] * probes
    return (off_diag_v * off_diag_v).sum() / m


def weight_orthogonality_loss(weight: torch.Tensor) -> torch.Tensor:
    """L_wr = ‖W Wᵀ − I‖²_F for a (K, D) weight matrix."""
    gram = weight @ weight.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return ((gram - eye) ** 2).sum()


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared error ‖x − x̂‖²₂ (summed over features)."""
    return ((x - x_hat) ** 2).sum(dim=-1).mean()


def l1_penalty(codes: torch.Tensor, decoder_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of Σ_j abs(a_j) (times ‖d_j‖₂ when ``decoder_norms`` is given)."""
    a = codes.abs()
    if decoder_norms is not None:
        a = a * decoder_norms
    return a.sum(dim=-1).mean()


class DecoderFreeObjective:
    """The decoder-free objective L = λ_lse L_LSE + λ_var L_var + λ_tc L_tc + λ_wr L_wr.

    ``decorrelation`` selects how L_tc is computed (see :func:`decorrelation_loss`);
    ``"estimate"`` draws ``n_probes`` fresh probe vectors at every call.

    Calling it as ``objective(model, x)`` returns ``(loss, terms)`` where ``terms`` maps
    each term's name (``"lse"``, ``"var"``, ``"tc"``, ``"wr"``) to its *unweighted* value.
    Terms whose weight is 0 are not computed. The configurations of the ablation are
    A = (1, 0, 0), B = (1, λ, 0), C = (1, λ, λ), D = (0, λ, λ) for (λ_lse, λ_var, λ_tc).
    """

    model_types = (DecoderFreeSAE,)

    def __init__(self, lambda_lse=1.0, lambda_var=1.0, lambda_tc=1.0, lambda_wr=0.0,
                 lse_reduction="mean", eps=1e-6, decorrelation="auto", n_probes=16):
        self.lambda_lse = _checks.positive_float("lambda_lse", lambda_lse, allow_zero=True)
        self.lambda_var = _checks.positive_float("lambda_var", lambda_var, allow_zero=True)
        self.lambda_tc = _checks.positive_float("lambda_tc", lambda_tc, allow_zero=True)
        self.lambda_wr = _checks.positive_float("lambda_wr", lambda_wr, allow_zero=True)
        self.lse_reduction = _checks.choice("lse_reduction", lse_reduction, REDUCTIONS)
        self.eps = _checks.positive_float("eps", eps)
        self.decorrelation = _checks.choice("decorrelation", decorrelation, DECORRELATION_METHODS)
        self.n_probes = _checks.positive_int("n_probes", n_probes)
        self.generator = None  # probe generator for decorrelation="estimate" (seeded by train)
        if self.lambda_lse + self.lambda_var + self.lambda_tc + self.lambda_wr == 0:
            raise ValueError("all λ are 0; set at least one of lambda_lse, lambda_var, "
                             "lambda_tc, lambda_wr > 0")

    @property
    def needs_batch_statistics(self) -> bool:
        return self.lambda_var > 0 or self.lambda_tc > 0

    def __call__(self, model: DecoderFreeSAE, x: torch.Tensor):
        """``model`` may be wrapped in DistributedDataParallel; inside an active process group
        the batch statistics are those of the global batch (:mod:`dfsae.distributed`)."""
        energies = model(x)  # = energies; called through the wrapper so DDP sees the forward
        core = getattr(model, "module", model)
        distributed = dist_stats.is_active()
        terms = {}
        loss = energies.new_zeros(())
        if self.lambda_lse > 0:
            terms["lse"] = lse_loss(energies, self.lse_reduction, distributed=distributed)
            loss = loss + self.lambda_lse * terms["lse"]
        if self.decorrelation == "estimate" and not distributed and self.needs_batch_statistics:
            # Large-K path: one fused pass for the moments, shared by both InfoMax terms.
            _require_batch(energies, "DecoderFreeObjective")
            var, mean = torch.var_mean(energies, dim=0, correction=0)
            if self.lambda_var > 0:
                terms["var"] = -torch.log(var + self.eps).sum()
                loss = loss + self.lambda_var * terms["var"]
            if self.lambda_tc > 0:
                terms["tc"] = _estimated_decorrelation(energies, mean, var, self.eps, self.n_probes,
                                                       self.generator)
                loss = loss + self.lambda_tc * terms["tc"]
        else:
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
        return loss, terms

    def __repr__(self) -> str:
        return (f"DecoderFreeObjective(lambda_lse={self.lambda_lse}, lambda_var={self.lambda_var}, "
                f"lambda_tc={self.lambda_tc}, lambda_wr={self.lambda_wr}, "
                f"lse_reduction={self.lse_reduction!r}, eps={self.eps})")


class SAEObjective:
    """Standard SAE loss: mean ‖x − x̂‖²₂ + λ · mean Σ_j abs(a_j) w_j.

    ``l1_weighting="plain"`` uses w_j = 1; ``"decoder_norm"`` uses w_j = ‖d_j‖₂, the column
    norm of the decoder, which removes the incentive to shrink codes while growing atoms
    (equivalent to a plain L1 with unit-norm atoms).
    """

    model_types = (StandardSAE,)
    needs_batch_statistics = False

    def __init__(self, l1_coefficient=1e-3, l1_weighting="plain"):
        self.l1_coefficient = _checks.positive_float("l1_coefficient", l1_coefficient, allow_zero=True)
        self.l1_weighting = _checks.choice("l1_weighting", l1_weighting, ("plain", "decoder_norm"))

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

    model_types = (TopKSAE,)
    needs_batch_statistics = False

    def __call__(self, model: TopKSAE, x: torch.Tensor):
        recon = reconstruction_loss(x, model.decode(model.encode(x)))
        return recon, {"recon": recon}

    def __repr__(self) -> str:
        return "TopKObjective()"
