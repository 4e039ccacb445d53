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

The families (:mod:`dfsae.families`) combine them into the objectives that
:func:`dfsae.training.train` minimises.
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


DECORRELATION_METHODS = ("auto", "exact", "gram", "gram-bf16", "estimate")


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
                       distributed: bool = False, probes: torch.Tensor | None = None) -> torch.Tensor:
    """L_tc = Σ_{i≠j} Corr_ij², the off-diagonal part of ‖Corr(A) − I‖²_F, three ways.

    * ``"exact"`` — builds the K×K matrix Corr = ZᵀZ: O(B·K²) time, O(K²) memory.
    * ``"gram"`` — exact too, through the B×B Gram matrix: ‖ZᵀZ‖²_F = ‖ZZᵀ‖²_F, so
      L_tc = ‖ZZᵀ‖²_F − Σ_j Corr_jj², O(B²·K) time, O(B²) memory; cheaper when B < K.
    * ``"gram-bf16"`` — the Gram form with the product ZZᵀ (forward and backward) in bfloat16 and
      everything else in the codes' precision: not exact (about 0.3 % relative error in the
      gradient of a trained model's L_tc), faster where the hardware multiplies bfloat16 faster.
      ``"auto"`` never picks it.
    * ``"estimate"`` — unbiased Hutchinson estimate with ``n_probes`` Rademacher vectors v
      (E[vvᵀ] = I): L_tc = E_v ‖(Corr − diag Corr) v‖², with Corr v = Zᵀ(Zv); O(B·K·m)
      time and memory, never a K×K (or B×B) matrix. ``probes`` (K, m) may be given instead
      of drawing them from ``generator``. Every path that estimates L_tc (this one, the
      distributed one and the fused :func:`lse_infomax_estimate`) runs the one kernel
      ``_probe_products``.
    * ``"auto"`` — ``"exact"`` when K ≤ B, else ``"gram"``.

    With ``distributed=True`` the statistics are those of the global batch across processes:
    ``"exact"`` all-reduces Σ a aᵀ, ``"estimate"`` all-reduces Σ Zᵀ(Zv) (every process must
    draw the same probes: pass identically seeded generators); the Gram forms need every pair of
    inputs and are not available (``"auto"`` then means ``"exact"``).

    Z is the standardised code matrix (see ``_standardise``); with ε > 0 a dead unit has a
    zero column and contributes nothing.
    """
    validation.choice("decorrelation", method, DECORRELATION_METHODS)
    if distributed:
        return _global_decorrelation(codes, eps, "exact" if method == "auto" else method, n_probes,
                                     generator, probes)
    if method == "auto":
        method = choose_decorrelation(*codes.shape)
    if method == "exact":
        corr = batch_correlation(codes, eps)
        return (corr * corr).sum() - (torch.diagonal(corr) ** 2).sum()
    if method in ("gram", "gram-bf16"):
        z, diag = _standardise(codes, eps)
        if method == "gram":
            gram = z @ z.T
        else:
            low = z.to(torch.bfloat16)
            gram = (low @ low.T).to(z.dtype)
        return (gram * gram).sum() - (diag * diag).sum()
    _require_batch(codes, "decorrelation")
    if probes is None:
        probes = rademacher(codes.shape[1], validation.positive_int("n_probes", n_probes), generator, codes)
    var, mean = torch.var_mean(codes, dim=0, correction=0)
    off = _probe_products(codes, mean, var, eps, probes.to(codes.dtype), codes.shape[0])[-1]
    return (off * off).sum() / probes.shape[1]


def rademacher(k: int, m: int, generator, like: torch.Tensor) -> torch.Tensor:
    """m random sign vectors of length k, (k, m), with the dtype and device of ``like``."""
    probes = torch.randint(0, 2, (k, m), generator=generator, dtype=like.dtype)
    return (2 * probes - 1).to(like.device)


def _probe_products(codes, mean, var, eps, probes, n, reduce=None):
    """The one kernel of the Hutchinson estimate: (Corr − diag Corr) P for probes P (K, m), from
    the batch moments, touching the (B, K) codes A only in two thin products.

    With s = (Var + ε)^(−1/2), Q = diag(s) P and centred codes C = A − 1 meanᵀ (never made:
    C Q = A Q − 1 (meanᵀ Q)):  Y = C Q (B, m),  Z = Cᵀ Y / n = Cov Q (K, m) and
    O = diag(s) Z − diag(d) P with d = Var / (Var + ε), so that L_tc ≈ ‖O‖²_F / m.
    ``reduce`` (e.g. an all-reduce over processes) sums Cᵀ Y over the shards of a global batch of
    n inputs whose ``mean`` and ``var`` are global. Returns (s, Q, Y, Z, O)."""
    s = torch.rsqrt(var + eps)
    q = probes * s[:, None]
    y = codes @ q - mean @ q
    cty = codes.T @ y - mean[:, None] * y.sum(0)
    if reduce is not None:
        cty = reduce(cty)
    z = cty / n
    off = s[:, None] * z - (var * s * s)[:, None] * probes
    return s, q, y, z, off


def _moments(codes: torch.Tensor, rows: int = 32):
    """Batch mean and biased variance per unit, (K,) each, in one pass over the (B, K) codes.

    ``torch.var_mean(codes, dim=0)`` walks a row-major matrix down its columns, which is several
    times slower than reading it once. Here the rows are read in blocks of ``rows`` (small enough
    to stay in cache), shifted by the first row so that Σd² − (Σd)²/B does not cancel badly."""
    if torch.compiler.is_compiling():  # the compiler writes its own one-pass reduction
        var, mean = torch.var_mean(codes, dim=0, correction=0)
        return mean, var
    n = codes.shape[0]
    shift = codes[0]
    total = torch.zeros_like(shift)
    squares = torch.zeros_like(shift)
    for start in range(0, n, rows):
        block = codes[start:start + rows] - shift
        total += block.sum(0)
        squares += (block * block).sum(0)
    mean = total / n
    var = (squares / n - mean * mean).clamp_min_(0)
    return mean + shift, var


def _lse_forward(energies):
    """Per-input L_LSE = min_j E_j − log Σ_j exp(−(E_j − min_j E_j)) and the unnormalised
    responsibilities e = exp(−(E − min E)) with their row sums; e is reused as the gradient buffer."""
    low = energies.amin(dim=1, keepdim=True)
    e = torch.sub(low, energies).exp_()
    total = e.sum(dim=1, keepdim=True)
    return (low - torch.log(total)).squeeze(1), e, total


def _claim_buffer(ctx) -> None:
    """A forward buffer reused for the gradient serves one backward; say so on a second."""
    if ctx.reuse and ctx.consumed:
        raise RuntimeError("this fused loss reuses its forward buffer for the gradient and can be "
                           "backpropagated once; call it with reuse_buffer=False to backpropagate again")
    ctx.consumed = True


def _lse_gradient(ctx, e, g_lse, total):
    """g_i r_ij, written into the forward's buffer ``e`` when ``ctx.reuse``."""
    if not ctx.reuse:
        return e * (g_lse[:, None] / total)
    return e.mul_(g_lse[:, None] / total)


class _LSE(torch.autograd.Function):
    """L_LSE per input with the backward ∂L_i/∂E_ij = r_ij = softmax(−E_i)_j (Eq. 2) written, with
    ``reuse``, into the buffer of exponentials the forward made: one (B, K) buffer for the step."""

    @staticmethod
    def forward(ctx, energies, reuse: bool):
        per_input, e, total = _lse_forward(energies)
        ctx.save_for_backward(e, total)
        ctx.reuse, ctx.consumed = reuse, False
        return per_input

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lse):
        _claim_buffer(ctx)
        e, total = ctx.saved_tensors
        return _lse_gradient(ctx, e, g_lse, total), None


class _LSEInfoMax(torch.autograd.Function):
    """L_LSE per input, L_var and the Hutchinson estimate of L_tc in one fused pass, with an
    analytic backward that accumulates every term's gradient into one (B, K) buffer.

    With A the (B, K) codes, μ and v their batch mean and variance, s = (v + ε)^(−1/2),
    C = A − 1μᵀ (never materialised), probes P (K, m) and Q = diag(s) P:

        Y = C Q = A Q − 1 μᵀQ        (B, m)
        Z = Cᵀ Y / B                  (K, m)   = Cov Q
        O = diag(s) Z − diag(d) P     (K, m),  d = v / (v + ε)   (Corr P minus its diagonal part)
        L_var = −Σ_j log(v_j + ε),    L_tc ≈ ‖O‖²_F / m

    Backward, with G = 2 g_tc O / m and H = diag(s) G: ∂L/∂C = ((C H) Qᵀ + Y Hᵀ) / B through Cov,
    plus 2 C diag(g_v) / B through v, where g_v collects ∂L/∂v from L_var, s and d. The gradient
    of L_LSE, g_i r_ij, is written into the forward's buffer of exponentials; the InfoMax part is
    added to it in place: C diag(w) as A diag(w) plus a rank-one correction, so the whole
    InfoMax gradient is one diagonal scaling and one (B, 2m+1)·(2m+1, K) product. The (B, K)
    codes are read in thin products only (two forward, two backward) and never copied or centred.
    """

    @staticmethod
    def forward(ctx, codes, probes, eps: float, reuse: bool, with_lse: bool):
        n, m = codes.shape[0], probes.shape[1]
        if with_lse:
            per_input, e, total = _lse_forward(codes)
        else:
            per_input, e, total = codes.new_zeros(n), codes.new_empty(0), codes.new_empty(0)
        ctx.reuse, ctx.consumed, ctx.with_lse = reuse, False, with_lse
        mean, var = _moments(codes)
        s, q, y, z, off = _probe_products(codes, mean, var, eps, probes, n)
        ctx.save_for_backward(codes, probes, e, total, mean, s, q, y, z, off)
        ctx.eps = eps
        return per_input, -torch.log(var + eps).sum(), (off * off).sum() / m

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_lse, g_var, g_tc):
        _claim_buffer(ctx)
        codes, probes, e, total, mean, s, q, y, z, off = ctx.saved_tensors
        n, m, eps = codes.shape[0], probes.shape[1], ctx.eps
        g = off * (2 * g_tc / m)
        h = g * s[:, None]                                              # ∂L/∂Z
        ch = codes @ h - mean @ h                                       # C H
        dq = (codes.T @ ch - mean[:, None] * ch.sum(0)) / n             # ∂L/∂Q = Cov H
        g_s = (g * z).sum(1) + (dq * probes).sum(1)
        g_d = -(g * probes).sum(1)
        s2 = s * s
        g_v = -g_var * s2 - 0.5 * g_s * s2 * s + eps * g_d * s2 * s2   # ∂L/∂v
        w = 2 * g_v / n                                                 # ∂L/∂C through v: C diag(w)
        if not ctx.with_lse:  # InfoMax alone (compiled path): a fresh buffer
            grad = torch.cat([ch, y], 1) @ torch.cat([q, h], 1).T          # (C H) Qᵀ + Y Hᵀ
            grad.div_(n).addcmul_(codes, w.expand(codes.shape)).sub_(mean * w)  # + C diag(w)
            return grad, None, None, None, None
        grad = _lse_gradient(ctx, e, g_lse, total)                      # ∂L_LSE/∂A = g r
        grad.addcmul_(codes, w)
        left = torch.cat([ch / n, y / n, -torch.ones_like(y[:, :1])], 1)
        right = torch.cat([q, h, (mean * w)[:, None]], 1)
        return grad.addmm_(left, right.T), None, None, None, None       # + ((CH)Qᵀ + YHᵀ)/B − 1(μ∘w)ᵀ


def lse_per_input(energies: torch.Tensor, reuse_buffer: bool = False) -> torch.Tensor:
    """L_LSE of each input, (B,), fused (see ``_LSE``): the same values and gradients as
    ``lse_loss`` before its reduction. With ``reuse_buffer=True`` (what training uses) the
    gradient is written into the forward's buffer, so the graph can be backpropagated once."""
    if energies.ndim != 2:
        raise ValueError(f"lse_per_input needs a 2-D (batch, K) tensor, got shape {tuple(energies.shape)}")
    return _LSE.apply(energies, bool(reuse_buffer))


def lse_infomax_estimate(codes: torch.Tensor, eps: float = EPS, n_probes: int = 16,
                         generator: torch.Generator | None = None, probes: torch.Tensor | None = None,
                         reuse_buffer: bool = False):
    """(L_LSE per input, L_var, L_tc estimated with ``n_probes`` Rademacher probes), fused (see
    ``_LSEInfoMax``): the same values and gradients as ``lse_loss`` (before its reduction),
    :func:`variance_loss` and ``decorrelation_loss(..., method="estimate")`` with the same
    probes, in fewer passes over the codes and one (B, K) gradient buffer (``reuse_buffer``: see
    :func:`lse_per_input`)."""
    _require_batch(codes, "lse_infomax_estimate")
    if probes is None:
        probes = rademacher(codes.shape[1], validation.positive_int("n_probes", n_probes), generator, codes)
    return _LSEInfoMax.apply(codes, probes.to(codes.dtype), eps, bool(reuse_buffer), True)


def infomax_estimate(codes: torch.Tensor, eps: float = EPS, n_probes: int = 16,
                     generator: torch.Generator | None = None, probes: torch.Tensor | None = None):
    """(L_var, L_tc estimated with ``n_probes`` Rademacher probes), fused: the InfoMax part of
    :func:`lse_infomax_estimate`, without L_LSE."""
    _require_batch(codes, "infomax_estimate")
    if probes is None:
        probes = rademacher(codes.shape[1], validation.positive_int("n_probes", n_probes), generator, codes)
    return _LSEInfoMax.apply(codes, probes.to(codes.dtype), eps, False, False)[1:]


def _global_decorrelation(codes, eps, method, n_probes, generator, probes=None):
    if method in ("gram", "gram-bf16"):
        raise ValueError(f"decorrelation={method!r} cannot be computed across processes; "
                         "use 'exact' or 'estimate'")
    n, mean, var = dist_stats.global_moments(codes)
    inv_std = torch.rsqrt(var + eps)
    diag = var / (var + eps)
    if method == "exact":
        cov = dist_stats.all_reduce(codes.T @ codes) / n - mean[:, None] * mean[None, :]
        corr = cov * inv_std[:, None] * inv_std[None, :]
        return (corr * corr).sum() - (diag * diag).sum()
    if probes is None:
        probes = rademacher(codes.shape[1], validation.positive_int("n_probes", n_probes), generator, codes)
    off = _probe_products(codes, mean, var, eps, probes.to(codes.dtype), n, reduce=dist_stats.all_reduce)[-1]
    return (off * off).sum() / probes.shape[1]


def weight_orthogonality_loss(weight: torch.Tensor) -> torch.Tensor:
    """L_wr = ‖W Wᵀ − I‖²_F for a (K, D) weight matrix."""
    gram = weight @ weight.T
    eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    return ((gram - eye) ** 2).sum()


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared error ‖x − x̂‖²₂ (summed over features)."""
    return ((x - x_hat) ** 2).sum(dim=-1).mean()


def auxk_loss(residual: torch.Tensor, pre_activations: torch.Tensor, dead: torch.Tensor,
              decoder_weight: torch.Tensor, k_aux: int) -> torch.Tensor:
    """The auxiliary loss of Gao et al. (2024) on dead latents: mean over the batch of
    ‖e − ê‖²₂, where e (B, D) is the main reconstruction's residual (pass it detached) and
    ê = Σ_j z_j d_j sums the decoder columns d_j (``decoder_weight``, (D, K)) of the
    min(``k_aux``, number dead) dead latents with the largest pre-activations z (B, K) of each
    input. No ReLU: a dead latent's pre-activation is usually negative, and the loss exists to
    give it a gradient. Zero when no latent is dead."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return residual.new_zeros(())
    top = pre_activations.masked_fill(~dead, float("-inf")).topk(min(k_aux, n_dead), dim=-1)
    acts = torch.zeros_like(pre_activations).scatter(-1, top.indices, top.values)
    return reconstruction_loss(residual, acts @ decoder_weight.T)


def l1_penalty(codes: torch.Tensor, decoder_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of Σ_j abs(a_j) (times ‖d_j‖₂ when ``decoder_norms`` is given)."""
    a = codes.abs()
    if decoder_norms is not None:
        a = a * decoder_norms
    return a.sum(dim=-1).mean()


