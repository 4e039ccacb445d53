"""Evaluation metrics, computed on held-out inputs.

Conventions (one place, used by every experiment):

* A unit is *active* on an input when its code is non-zero (a ≠ 0). For ReLU codes that is
  a > 0; for the decoder-free model with φ = ReLU, a = E, so active means E_j > 0.
* *Dead*: never active on any evaluation input. The variance variant counts units whose
  variance over the evaluation set is below ``rel_threshold`` × the largest unit variance
  (scale-free, so models with codes of different scale are comparable).
* *Redundancy*: ‖Corr(A) − I‖²_F = Σ_{i≠j} Corr_ij² over the *live* units only; dead units
  have no defined correlation and are reported separately, never counted as 0. The
  scale-free per-pair version divides by n_live(n_live − 1).
* *L0*: mean number of active units per input.
* *FVU*: Σ‖x − x̂‖² / Σ‖x − x̄‖², x̄ the mean input of the evaluation set.
* *Responsibilities*: r = softmax(−E); entropy H(r) per input (nats), usage u_j = mean r_j.
* *Probe accuracy*: multinomial logistic regression (scikit-learn, lbfgs, at most 500
  iterations, one BLAS thread so that the result does not depend on the machine) on
  standardised frozen codes, fitted on the training codes, scored on the test codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import validation
from .losses import EPS, centre, decorrelation_loss, variance_loss


@torch.no_grad()
def encode(model, x, batch_size: int = 4096) -> torch.Tensor:
    """Codes of ``model`` for every row of ``x`` (validated), on the CPU, ``batch_size`` rows at a time."""
    from .validation import positive_int

    batch_size = positive_int("batch_size", batch_size)
    x = model.check_input(x)
    model.eval()
    return torch.cat([model.encode(x[i:i + batch_size]).cpu() for i in range(0, len(x), batch_size)])


def active(codes: torch.Tensor) -> torch.Tensor:
    return codes != 0


def dead_units(codes: torch.Tensor) -> torch.Tensor:
    """Boolean mask (K,): units never active on any row of ``codes``."""
    return ~active(codes).any(dim=0)


def low_variance_units(codes: torch.Tensor, rel_threshold: float = 1e-6) -> torch.Tensor:
    """Boolean mask (K,): Var_j ≤ rel_threshold · max_k Var_k (all True if every Var is 0)."""
    var = codes.double().var(dim=0, unbiased=False)
    return var <= rel_threshold * var.max()


def correlation(codes: torch.Tensor) -> torch.Tensor:
    """Pearson correlation matrix (float64) of the columns of ``codes``; zero-variance columns
    give NaN rows, so pass live units only."""
    c = centre(codes.double())
    cov = c.T @ c
    std = torch.sqrt(torch.diagonal(cov))
    return cov / (std[:, None] * std[None, :])


def redundancy(codes: torch.Tensor, live: torch.Tensor | None = None) -> float:
    """Σ_{i≠j} Corr_ij² over live units (``live`` mask; default: not low-variance)."""
    if live is None:
        live = ~low_variance_units(codes)
    corr = correlation(codes[:, live])
    off = corr - torch.diag(torch.diagonal(corr))
    return float((off * off).sum())


def l0(codes: torch.Tensor) -> float:
    """Mean number of active units per input."""
    return float(active(codes).sum(dim=1).double().mean())


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Fraction of variance unexplained, Σ‖x − x̂‖² / Σ‖x − x̄‖²."""
    x, x_hat = x.double(), x_hat.double()
    total = ((x - x.mean(dim=0)) ** 2).sum()
    if total == 0:
        raise ValueError("FVU is undefined: the inputs have zero variance (every row is the same), so "
                         "there is no variance to explain; evaluate on inputs that vary")
    return float(((x - x_hat) ** 2).sum() / total)


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """Mean over inputs of the squared error ‖x − x̂‖²₂."""
    return float(((x.double() - x_hat.double()) ** 2).sum(dim=1).mean())


def optimal_scale(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """The scalar c minimising ‖x − c·x̂‖², c = ⟨x, x̂⟩ / ⟨x̂, x̂⟩ (0 if x̂ = 0)."""
    x, x_hat = x.double(), x_hat.double()
    denom = float((x_hat * x_hat).sum())
    return float((x * x_hat).sum()) / denom if denom > 0 else 0.0


@dataclass(frozen=True)
class LinearDecoder:
    """An affine read-out x̂ = M a + m of a code, fitted by :func:`fit_linear_decoder`: ``coef``
    is (K + 1, d) float64, M stacked over m. Calling it on codes (n, K) gives x̂ (n, d), float64."""

    coef: torch.Tensor

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        ones = torch.ones(len(codes), 1, dtype=torch.float64, device=codes.device)
        return torch.cat([codes.double(), ones], 1) @ self.coef


def fit_linear_decoder(codes_train, x_train, ridge: float = 1e-6) -> LinearDecoder:
    """The least-squares affine decoder x̂ = M a + m of ``x_train`` (n, d) from ``codes_train``
    (n, K); a ridge of ``ridge``·n on the normal equations keeps it well posed when codes are
    collinear or dead (the bias is ridged too, which at 1e-6 moves nothing measurable)."""
    codes_train = validation.as_matrix("codes_train", codes_train)
    x_train = validation.as_matrix("x_train", x_train)
    if len(codes_train) != len(x_train):
        raise ValueError(f"codes_train has {len(codes_train)} rows but x_train has {len(x_train)}; "
                         "pass the codes of the same inputs")
    ridge = validation.positive_float("ridge", ridge, allow_zero=True)
    a = torch.cat([codes_train.double(), torch.ones(len(codes_train), 1, dtype=torch.float64)], 1)
    gram = a.T @ a + ridge * len(a) * torch.eye(a.shape[1], dtype=torch.float64)
    return LinearDecoder(torch.linalg.solve(gram, a.T @ x_train.double()))


def linear_decoder_fvu(codes_train, x_train, codes_test, x_test, ridge: float = 1e-6,
                       return_train: bool = False):
    """FVU on the test set of the least-squares affine decoder x̂ = M a + m fitted on the
    training codes (:func:`fit_linear_decoder`). With ``return_train=True`` returns
    ``(test FVU, training FVU)``."""
    decoder = fit_linear_decoder(codes_train, x_train, ridge)
    test = fvu(x_test, decoder(codes_test))
    return (test, fvu(x_train, decoder(codes_train))) if return_train else test


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = −Σ p log p along the last axis (0 log 0 = 0)."""
    return -(p * torch.log(p.clamp_min(1e-300))).sum(dim=-1)


def responsibility_stats(energies: torch.Tensor) -> dict:
    """Mean per-input entropy of r = softmax(−E), usage u = mean r, its entropy, and mean max r."""
    r = torch.softmax(-energies.double(), dim=-1)
    entropy = _entropy(r)
    usage = r.mean(dim=0)
    usage_entropy = _entropy(usage)
    return {
        "resp_entropy": float(entropy.mean()),
        "usage_entropy": float(usage_entropy),
        "max_resp": float(r.max(dim=1).values.mean()),
        "usage": usage.numpy(),
    }


def best_matches(energies: torch.Tensor, units, n: int) -> torch.Tensor:
    """Indices of the ``n`` inputs each unit in ``units`` explains best, one row per unit: the
    lowest energy E_j, ties (e.g. many inputs at E_j = 0) broken by the highest responsibility
    r_j = softmax(−E)_j."""
    units = [int(u) for u in np.atleast_1d(units)]
    bad = [u for u in units if not 0 <= u < energies.shape[1]]
    if bad:
        raise ValueError(f"units must be in [0, {energies.shape[1]}); got {bad}")
    e = energies.double()
    r = torch.softmax(-e, dim=1).numpy()               # once for every unit
    e = e.numpy()
    rows = [np.lexsort((-r[:, j], e[:, j]))[:n] for j in units]   # last key first: energy, then r
    return torch.from_numpy(np.stack(rows))


def readings(model, data) -> dict:
    """Sparsity and reconstruction of a decoder-free model's code under its three readings.

    * energy E (the code): its L0, E_j > 0 per input, is :func:`evaluate`'s ``l0``;
    * similarity s = max_k E_k − E_j (paper §4.4; large = good explanation): ``l0_similarity``
      counts s_j > 0, and ``fvu_sim_scaled`` is the FVU of c·Wᵀs with c fitted on the training set;
    * responsibility r = softmax(−E): ``effective_components`` is the mean over inputs of
      exp H(r), from 1 (one unit claims the input) to K (all share it equally).

    All on ``data.x_test``; the scale c on ``data.x_train``.
    """
    if not getattr(model, "codes_are_energies", False):
        raise ValueError(f"readings needs a model whose codes are energies (the decoder-free SAE), got "
                         f"{type(model).__name__}")
    e_train, e_test = encode(model, data.x_train), encode(model, data.x_test)
    s_train, s_test = model.similarities(e_train), model.similarities(e_test)
    W = model.W.detach().cpu()
    c = optimal_scale(data.x_train, s_train.to(W.dtype) @ W)
    entropy = _entropy(torch.softmax(-e_test.double(), dim=-1))
    return {
        "l0_similarity": l0(s_test),
        "effective_components": float(torch.exp(entropy).mean()),
        "fvu_sim_scaled": fvu(data.x_test, c * (s_test.to(W.dtype) @ W)),
    }


def infomax_statistics(codes: torch.Tensor, eps: float = EPS) -> dict:
    """The InfoMax terms of any code, measured (float64, over the rows given): ``l_var`` =
    −Σ_j log(Var(A_j) + ε) and ``l_tc`` = Σ_{i≠j} Corr_ij², exact. Dead units count in both
    (a constant column adds −log ε to L_var and nothing to L_tc)."""
    codes = codes.double()
    return {"l_var": float(variance_loss(codes, eps)),
            "l_tc": float(decorrelation_loss(codes, eps, method="exact"))}


def probe_accuracy(codes_train, y_train, codes_test, y_test, max_iter: int = 500) -> float:
    """Test accuracy of a logistic-regression probe on standardised frozen codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    # One BLAS thread: lbfgs on redundant codes is sensitive to the summation order, and the
    # probe must give the same accuracy whatever the machine's thread count.
    with threadpool_limits(limits=1):
        probe.fit(np.asarray(codes_train, dtype=np.float64), np.asarray(y_train))
        return float(probe.score(np.asarray(codes_test, dtype=np.float64), np.asarray(y_test)))


def check_dataset(data, probe: bool) -> None:
    """Refuse, before any work, what :func:`evaluate` cannot use: not a Dataset, fewer than two
    test rows, or (with ``probe``) labels whose length differs from their inputs'."""
    fields = ("x_train", "y_train", "x_test", "y_test")
    if not all(hasattr(data, f) for f in fields):
        raise ValueError(f"data must be a dfsae.Dataset(x_train, y_train, x_test, y_test, name), got "
                         f"{type(data).__name__}; wrap your arrays: "
                         "dfsae.Dataset(x_tr, y_tr, x_te, y_te, 'mine')")
    if len(data.x_test) < 2:
        raise ValueError(f"data.x_test has {len(data.x_test)} row(s); evaluation needs at least 2 test "
                         "inputs (FVU, variances and correlations are statistics over inputs)")
    if probe:
        for x, y in (("x_train", "y_train"), ("x_test", "y_test")):
            if getattr(data, y) is None or len(getattr(data, y)) != len(getattr(data, x)):
                n = None if getattr(data, y) is None else len(getattr(data, y))
                raise ValueError(f"data.{y} has {n} labels for {len(getattr(data, x))} rows of data.{x}; "
                                 "pass one label per input, or probe=False")


def evaluate(model, data, probe: bool = True) -> dict:
    """Every metric above for ``model`` on ``data`` (a :class:`dfsae.data.Dataset`).

    Reconstructions reported: ``fvu_wt`` (x̂ = Wᵀa, W the encoder), ``fvu_wt_scaled``
    (x̂ = c·Wᵀa, c fitted on the training set), ``fvu_linear`` (post-hoc affine decoder
    fitted on training codes; ``fvu_linear_train`` is its error on the training set, for
    model selection without the test set) and, for models with a decoder, ``fvu_own``.
    """
    check_dataset(data, probe)
    codes_train, codes = encode(model, data.x_train), encode(model, data.x_test)
    x_train, x_test = data.x_train, data.x_test
    dead = dead_units(codes)
    live = ~dead & ~low_variance_units(codes)
    n_live = int(live.sum())
    red = redundancy(codes, live) if n_live >= 2 else float("nan")
    W = model.W.detach().cpu()
    c = optimal_scale(x_train, codes_train.to(W.dtype) @ W)
    fvu_linear, fvu_linear_train = linear_decoder_fvu(codes_train, x_train, codes, x_test, return_train=True)
    out = {
        "dead": int(dead.sum()),
        "dead_frac": float(dead.double().mean()),
        "low_var": int(low_variance_units(codes).sum()),
        "live": n_live,
        "redundancy": red,
        "redundancy_per_pair": red / (n_live * (n_live - 1)) if n_live >= 2 else float("nan"),
        "l0": l0(codes),
        "fvu_wt": fvu(x_test, codes @ W),
        "fvu_wt_scaled": fvu(x_test, c * (codes @ W)),
        "wt_scale": c,
        "mse_wt_scaled": mse(x_test, c * (codes @ W)),
        "fvu_linear": fvu_linear,
        "fvu_linear_train": fvu_linear_train,
        "weight_norm": float(W.norm()),
        "params": model.num_parameters(),
    }
    if model.has_decoder:
        with torch.no_grad():
            x_hat = model.decode(codes.to(W.dtype))
            out["fvu_own"], out["mse_own"] = fvu(x_test, x_hat), mse(x_test, x_hat)
    if model.codes_are_energies:
        stats = responsibility_stats(codes)
        stats.pop("usage")
        out.update(stats)
    if probe:
        out["probe_acc"] = probe_accuracy(codes_train, data.y_train, codes, data.y_test)
    return out
