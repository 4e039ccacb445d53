"""The loss terms of the paper, as pure functions of a batch of codes (and weights).

* L_LSE(x) = −log Σ_j exp(−E_j(x)), per input (Eq. 1). Its gradient with respect to E_j is
  exactly the responsibility r_j = softmax(−E)_j (Eq. 2): backpropagation performs the E-step.
  Over a batch it is reduced by ``reduction``: ``"mean"`` averages over the batch, so the term
  is O(1) whatever the batch size; ``"sum"`` adds the per-input values, which multiplies its
  weight by the batch size relative to the batch-level InfoMax terms below.
* L_var = −Σ_j log(Var_batch(A_j) + ε) (Eq. 3). Var is the biased batch variance (divide by B).
  It is a *batch-level* term: computed once per batch, not averaged over inputs.
* L_tc = ‖Corr(A) − I‖²_F counted over the off-diagonal entries (Eq. 4), with
  Corr_ij = Cov_ij / sqrt((Var_i + ε)(Var_j + ε)). A dead unit (zero variance) has zero
  correlation with everything, so neither term produces NaN or inf.
* L_wr = ‖W Wᵀ − I‖²_F (Eq. 5), optional; it fixes the scale and orthogonality of the rows.
* The baselines': mean ‖x − x̂‖²₂ and the (optionally decoder-norm weighted) L1 penalty.

:mod:`dfsae.objective` combines them into the objectives that :func:`dfsae.training.train` minimises.
"""

from __future__ import annotations

import torch

from . import distributed as dist_stats
from . import validation

REDUCTIONS = ("mean", "sum")
EPS = 1e-6  # ε of L_var and L_tc: keeps log and 1/sqrt finite for a dead unit


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
    validation.choice("lse_reduction", reduction, REDUCTIONS)
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


def centre(codes: torch.Tensor) -> torch.Tensor:
    """A − mean over the batch (dim 0): the one centring every batch statistic uses."""
    return codes - codes.mean(dim=0, keepdim=True)


def batch_variance(codes: torch.Tensor) -> torch.Tensor:
    """Biased per-unit variance over the batch, shape (K,)."""
    _require_batch(codes, "batch_variance")
    centred = centre(codes)
    return (centred * centred).mean(dim=0)


def variance_loss(codes: torch.Tensor, eps: float = EPS, distributed: bool = False) -> torch.Tensor:
    """L_var = −Σ_j log(Var(A_j) + ε). Penalises units whose output does not vary (dead).

    With ``distributed=True`` the variance is that of the global batch across processes
    (see :mod:`dfsae.distributed`)."""
    if distributed:
        var = dist_stats.global_moments(codes)[2]
    else:
        var = batch_variance(codes)
    return -torch.log(var + eps).sum()


def batch_correlation(codes: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Corr_ij = Cov_ij / sqrt((Var_i + ε)(Var_j + ε)) over the batch, shape (K, K)."""
    _require_batch(codes, "batch_correlation")
    centred = centre(codes)
    cov = centred.T @ centred / codes.shape[0]
    inv_std = torch.rsqrt(torch.diagonal(cov) + eps)
    return cov * inv_std[:, None] * inv_std[None, :]


DECORRELATION_METHODS = ("auto", "exact", "gram", "estimate")


def _standardise(codes: torch.Tensor, eps: float):
    """Z = (A − mean) / sqrt(B (Var + ε)), so that ZᵀZ = Corr, and diag(Corr) = Var/(Var + ε)."""
    _require_batch(codes, "decorrelation")
    centred = centre(codes)
    var = (centred * centred).mean(dim=0)
    z = centred * torch.rsqrt((var + eps) * codes.shape[0])
    return z, var / (var + eps)


def choose_decorrelation(batch: int, width: int) -> str:
    """What ``"auto"`` uses for a (batch, width) code matrix: the exact K×K form when K ≤ B,
    else the exact B×B Gram form. The stochastic estimate is used only when asked for."""
    if width <= batch:
        return "exact"
    return "gram"


def decorrelation_loss(codes: torch.Tensor, eps: float = EPS, method: str = "exact",
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
    validation.choice("decorrelation", method, DECORRELATION_METHODS)
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
    m = validation.positive_int("n_probes", n_probes)
    probes = _rademacher(codes.shape[1], m, generator, codes)
    inv_std = torch.rsqrt(var + eps)
    scaled = probes * inv_std[:, None]                                  # S v, (K, m)
    centred_v = codes @ scaled - mean @ scaled                          # C S v, (B, m)
    corr_v = (codes.T @ centred_v - mean[:, None] * centred_v.sum(0)) * inv_std[:, None] / codes.shape[0]
    off_diag_v = corr_v - (var * inv_std * inv_std)[:, None] * probes
    return (off_diag_v * off_diag_v).sum() / m


class _InfoMaxEstimate(torch.autograd.Function):
    """L_var and the Hutchinson estimate of L_tc in one fused pass, with an analytic backward.

    With A the (B, K) codes, μ and v their batch mean and variance, s = (v + ε)^(−1/2),
    C = A − 1μᵀ (never materialised), probes P (K, m) and Q = diag(s) P:

        Y = C Q = A Q − 1 μᵀQ        (B, m)
        Z = Cᵀ Y / B                  (K, m)   = Cov Q
        O = diag(s) Z − diag(d) P     (K, m),  d = v / (v + ε)   (Corr P minus its diagonal part)
        L_var = −Σ_j log(v_j + ε),    L_tc ≈ ‖O‖²_F / m

    Backward, with G = 2 g_tc O / m and H = diag(s) G: ∂L/∂C = ((C H) Qᵀ + Y Hᵀ) / B through Cov,
    plus 2 C diag(g_v) / B through v, where g_v collects ∂L/∂v from L_var, s and d. It touches the
    (B, K) codes in thin products only (two reads forward, two reads and one write backward) and
    keeps no centred copy.
    """

    @staticmethod
    def forward(ctx, codes, probes, eps: float):
        n, m = codes.shape[0], probes.shape[1]
        var, mean = torch.var_mean(codes, dim=0, correction=0)
        s = torch.rsqrt(var + eps)
        q = probes * s[:, None]
        y = codes @ q - mean @ q                                        # C Q
        z = (codes.T @ y - mean[:, None] * y.sum(0)) / n                # Cᵀ Y / B
        d = var * s * s
        off = s[:, None] * z - d[:, None] * probes
        ctx.save_for_backward(codes, probes, mean, s, q, y, z, off)
        ctx.eps = eps
        return -torch.log(var + eps).sum(), (off * off).sum() / m

    @staticmethod
    def backward(ctx, g_var, g_tc):
        codes, probes, mean, s, q, y, z, off = ctx.saved_tensors
        n, m, eps = codes.shape[0], probes.shape[1], ctx.eps
        g = off * (2 * g_tc / m)
        h = g * s[:, None]                                              # ∂L/∂Z
        ch = codes @ h - mean @ h                                       # C H
        dq = (codes.T @ ch - mean[:, None] * ch.sum(0)) / n             # ∂L/∂Q = Cov H
        g_s = (g * z).sum(1) + (dq * probes).sum(1)
        g_d = -(g * probes).sum(1)
        s2 = s * s
        g_v = -g_var * s2 - 0.5 * g_s * s2 * s + eps * g_d * s2 * s2   # ∂L/∂v
        grad = torch.cat([ch, y], 1) @ torch.cat([q, h], 1).T          # (C H) Qᵀ + Y Hᵀ
        w = 2 * g_v / n
        grad.div_(n).addcmul_(codes, w.expand(codes.shape)).sub_(mean * w)  # + 2 C diag(g_v) / B
        return grad, None, None


def infomax_estimate(codes: torch.Tensor, eps: float = EPS, n_probes: int = 16,
                     generator: torch.Generator | None = None, probes: torch.Tensor | None = None):
    """(L_var, L_tc estimated with ``n_probes`` Rademacher probes), fused (see ``_InfoMaxEstimate``).

    The same values and gradients as :func:`variance_loss` and ``decorrelation_loss(...,
    method="estimate")`` with the same probes, in fewer passes over the codes."""
    _require_batch(codes, "infomax_estimate")
    if probes is None:
        probes = _rademacher(codes.shape[1], validation.positive_int("n_probes", n_probes), generator, codes)
    return _InfoMaxEstimate.apply(codes, probes.to(codes.dtype), eps)


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
    m = validation.positive_int("n_probes", n_probes)
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


