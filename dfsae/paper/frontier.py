"""Sparsity–fidelity frontiers, and how one family's curve compares with another's.

A family swept along its sparsity knob (the SAE's λ_L1, TopK's k, the decoder-free model's
balance β) gives points (L0, FVU). Its *frontier* at a sparsity L0 is the lowest FVU it reaches
with at most L0 active units: the lower envelope of its points, interpolated linearly in log L0
between them. Below its sparsest point a family has no frontier (NaN): the sweep never got there.

:func:`ratio_to_frontier` reads each point of one curve against the best of several others'
frontiers, which is what the paper's curve-against-curve verdicts are made of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _envelope(curve_l0, curve_fvu) -> tuple[np.ndarray, np.ndarray]:
    """The curve's finite points with L0 > 0, sorted by L0, with FVU replaced by its running
    minimum (the best reached with at most that many active units)."""
    x, y = np.asarray(curve_l0, dtype=float), np.asarray(curve_fvu, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError("curve_l0 and curve_fvu must be 1-d of the same non-zero length; "
                         f"got {x.shape}, {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    order = np.argsort(x[keep], kind="stable")
    return x[keep][order], np.minimum.accumulate(y[keep][order])


def frontier_at(l0, curve_l0, curve_fvu) -> np.ndarray:
    """The lowest FVU the curve (``curve_l0``, ``curve_fvu``) reaches with at most ``l0`` active
    units, for each value of ``l0``: the running minimum of FVU over the points sorted by L0,
    interpolated linearly in log L0; NaN below the sparsest point, the overall minimum above
    the densest."""
    l0 = np.atleast_1d(np.asarray(l0, dtype=float))
    x, y = _envelope(curve_l0, curve_fvu)
    if len(x) == 0:
        return np.full(l0.shape, np.nan)
    out = np.interp(np.log(np.clip(l0, 1e-300, None)), np.log(x), y)
    out[~(l0 >= x[0])] = np.nan
    return out


def sparsity_at(fvu, curve_l0, curve_fvu) -> np.ndarray:
    """The fewest active units with which the curve's frontier (:func:`frontier_at`) reaches
    each target ``fvu``, interpolated linearly in log L0 along the envelope; NaN where it never
    does."""
    fvu = np.atleast_1d(np.asarray(fvu, dtype=float))
    x, y = _envelope(curve_l0, curve_fvu)
    out = np.full(fvu.shape, np.nan)
    for i, target in enumerate(fvu):
        reached = np.nonzero(y <= target)[0]
        if len(reached) == 0:
            continue
        j = reached[0]
        if j == 0 or y[j - 1] == y[j]:
            out[i] = x[j]
        else:
            t = (y[j - 1] - target) / (y[j - 1] - y[j])
            out[i] = float(np.exp(np.log(x[j - 1]) + t * (np.log(x[j]) - np.log(x[j - 1]))))
    return out


def ratio_to_frontier(points: pd.DataFrame, baselines: pd.DataFrame, l0: str = "l0", fvu: str = "fvu",
                      family: str = "family") -> pd.DataFrame:
    """For each row of ``points``: the best baseline frontier at its L0 (the lowest over the
    families in ``baselines[family]``), which family that is, and the ratio FVU ÷ that frontier
    (above 1: the baseline reconstructs better with at most as many active units; NaN where no
    baseline is that sparse)."""
    for frame, name in ((points, "points"), (baselines, "baselines")):
        missing = {l0, fvu} - set(frame.columns)
        if missing:
            raise ValueError(f"{name} has no column(s) {sorted(missing)}; it has {list(frame.columns)}")
    per_family = {fam: frontier_at(points[l0], g[l0], g[fvu]) for fam, g in baselines.groupby(family)}
    stacked = pd.DataFrame(per_family, index=points.index)
    best = stacked.min(axis=1, skipna=True)
    which = pd.Series([row.idxmin() if row.notna().any() else np.nan for _, row in stacked.iterrows()],
                      index=points.index, dtype=object)
    return pd.DataFrame({"frontier": best, "frontier_family": which, "ratio": points[fvu] / best},
                        index=points.index)


#: The columns (sparsity, reconstruction FVU) of a decoder-free run under each reading of its
#: code (:func:`dfsae.metrics.readings`): the energy E counts E > 0 and decodes with c·WᵀE; the
#: similarity s = max E − E counts s > 0 and decodes with c·Wᵀs; the responsibility r has no
#: decoder of its own, so its sparsity, exp H(r), is paired with the energy's reconstruction.
READINGS = {"energy": ("l0", "fvu_wt_scaled"), "similarity": ("l0_similarity", "fvu_sim_scaled"),
            "responsibility": ("effective_components", "fvu_wt_scaled")}
READING_NAMES = {"energy": "energy (E > 0, c·WᵀE)", "similarity": "similarity (s > 0, c·Wᵀs)",
                 "responsibility": "responsibility (exp H(r), c·WᵀE)"}


def compare_curves(curve: pd.DataFrame, baselines: pd.DataFrame, reading: str, labels,
                   threshold: float = 1.1, rel_tol: float = 0.2, fvu: str | None = None):
    """Margins of a decoder-free ``curve`` (one row per balance point, read by ``reading``)
    against the best ``baselines`` frontier (columns ``l0``, ``fvu``, ``family``): for each point
    with a baseline at least as sparse, ``threshold − ratio`` and its tolerance ``rel_tol·ratio``
    (a ratio of two one-seed numbers). ``fvu`` names another reconstruction column of the curve
    (e.g. ``fvu_linear``, the post-hoc decoder). Returns (margins, tolerances, evidence text)."""
    if reading not in READINGS:
        raise ValueError(f"reading must be one of {sorted(READINGS)}; got {reading!r}")
    x, y = READINGS[reading]
    y = fvu or y
    points = pd.DataFrame({"l0": curve[x].to_numpy(), "fvu": curve[y].to_numpy()}, index=list(labels))
    out = ratio_to_frontier(points, baselines)
    parts = []
    for label, row in out.iterrows():
        l0 = points.loc[label, "l0"]
        parts.append(f"{label}: {row.ratio:.2f}× at L0 {l0:.0f}" if np.isfinite(row.ratio)
                     else f"{label}: no baseline as sparse as L0 {l0:.0f}")
    finite = out[np.isfinite(out.ratio)]
    return threshold - finite.ratio, rel_tol * finite.ratio, "; ".join(parts)


def compare_curves_by_width(curves: pd.DataFrame, baselines: pd.DataFrame, reading: str,
                            fvu: str | None = None, threshold: float = 1.1, rel_tol: float = 0.2):
    """:func:`compare_curves` at every dictionary size: the decoder-free points of width K (column
    ``K``, one per balance β in ``lambda_lse``) against the baselines' frontier at that K, pooled
    into one (margins, tolerances) pair indexed "K=… β=…"."""
    margins, tolerances = [], []
    for k in sorted(curves.K.unique()):
        curve = curves[curves.K == k]
        labels = [f"K={k} β={b:g}" for b in curve.lambda_lse]
        m, t, _ = compare_curves(curve, baselines[baselines.K == k], reading, labels, threshold, rel_tol, fvu)
        margins.append(m)
        tolerances.append(t)
    return pd.concat(margins), pd.concat(tolerances)


def curve_summary(margins: pd.Series, tolerances: pd.Series, threshold: float = 1.1) -> str:
    """A one-line account of the points of :func:`compare_curves` (margins indexed by label):
    how many are within ``threshold`` times the frontier, beyond it, or within tolerance of it,
    and the best ratio."""
    if len(margins) == 0:
        return "no point of the curve has a baseline as sparse"
    held = int((margins > tolerances).sum())
    failed = int((margins < -tolerances).sum())
    best = margins.idxmax()
    return (f"within {threshold:g}× at {held} of {len(margins)} points, beyond it at {failed}, within "
            f"tolerance at {len(margins) - held - failed}; best {threshold - margins[best]:.2f}× ({best})")


# -- frontiers with seeds ----------------------------------------------------------------------
def _best_family(baselines: pd.DataFrame, per_seed, family: str, seed: str) -> tuple[str | None, np.ndarray]:
    """The family whose per-seed values (``per_seed(rows of one seed)``) have the lowest mean,
    among those where every seed gives a finite value, and those values; (None, empty) if none."""
    best, best_values = None, np.array([])
    for fam, g in baselines.groupby(family, sort=True):
        values = np.array([per_seed(s) for _, s in g.groupby(seed, sort=True)])
        if len(values) and np.isfinite(values).all() and (best is None or values.mean() < best_values.mean()):
            best, best_values = fam, values
    return best, best_values


def seeded_frontier(baselines: pd.DataFrame, l0: float, x: str = "l0", y: str = "fvu",
                    family: str = "family", seed: str = "seed") -> tuple[str | None, np.ndarray]:
    """The best baseline family at sparsity ``l0`` and its frontier there once per seed.

    Each family's frontier is drawn once per seed (seed s's sweep points only), so a family with
    n seeds per sweep point gives n independent frontier values at ``l0``. The best family is the
    one with the lowest mean of these; a family is eligible only where every seed's sweep reaches
    that sparsity. Returns (family, values), or (None, empty) when no family is that sparse."""
    return _best_family(baselines, lambda s: frontier_at(l0, s[x], s[y])[0], family, seed)


def seeded_sparsity(baselines: pd.DataFrame, target_fvu: float, x: str = "l0", y: str = "fvu",
                    family: str = "family", seed: str = "seed") -> tuple[str | None, np.ndarray]:
    """The baseline family that reaches ``target_fvu`` with the fewest active units, and that
    count once per seed (:func:`sparsity_at` on seed s's sweep); a family is eligible only when
    every seed's sweep reaches that FVU. (None, empty) when none does."""
    return _best_family(baselines, lambda s: sparsity_at(target_fvu, s[x], s[y])[0], family, seed)


def ratio_intervals(points: pd.DataFrame, baselines: pd.DataFrame, reading: str = "energy",
                    fvu: str | None = None, by: str = "config", base_fvu: str = "fvu"):
    """Per point of a decoder-free curve (rows of ``points`` grouped by ``by``, one row per seed):
    the Welch interval of its FVU (under ``reading``, or the column ``fvu``) divided by the best
    baseline frontier at its mean L0 (:func:`seeded_frontier`, seeds of the frontier family as the
    other side). Returns ({label: Interval}, {label: (family, mean L0)}, [labels with no baseline
    as sparse])."""
    from .judgement import ratio_interval

    if reading not in READINGS:
        raise ValueError(f"reading must be one of {sorted(READINGS)}; got {reading!r}")
    x, y = READINGS[reading]
    y = fvu or y
    intervals, where, unmatched = {}, {}, []
    base = baselines.rename(columns={base_fvu: "_fvu"})
    for label, g in points.groupby(by, sort=False):
        l0 = float(g[x].mean())
        fam, values = seeded_frontier(base, l0, y="_fvu")
        if fam is None:
            unmatched.append(label)
            continue
        intervals[label] = ratio_interval(g[y].to_numpy(float), values)
        where[label] = (fam, l0)
    return intervals, where, unmatched


def sparsity_intervals(points: pd.DataFrame, baselines: pd.DataFrame, reading: str = "energy",
                       by: str = "config"):
    """Per point of a decoder-free curve: the Welch interval of (active units the best baseline
    needs to reconstruct as well, :func:`seeded_sparsity`) ÷ (the point's own L0), over the seeds
    of both. Returns ({label: Interval}, {label: family}, [labels no baseline reconstructs as
    well as at any sparsity])."""
    from .judgement import ratio_interval

    x, y = READINGS[reading]
    intervals, where, unmatched = {}, {}, []
    for label, g in points.groupby(by, sort=False):
        fam, values = seeded_sparsity(baselines, float(g[y].mean()))
        if fam is None:
            unmatched.append(label)
            continue
        intervals[label] = ratio_interval(values, g[x].to_numpy(float))
        where[label] = fam
    return intervals, where, unmatched


def pca_fvu(train, test, counts) -> np.ndarray:
    """The held-out FVU of the best rank-n affine reconstruction learned on ``train``: the test
    inputs projected onto the top n principal components of the training inputs (around the
    training mean), for each n in ``counts``. A dense code with n numbers per input, so the
    reference for a sparse code with L0 = n active units: a reference, not a bound."""
    import torch

    from ..metrics import fvu

    tr = torch.as_tensor(np.asarray(train), dtype=torch.float64)
    te = torch.as_tensor(np.asarray(test), dtype=torch.float64)
    if tr.ndim != 2 or te.ndim != 2 or tr.shape[1] != te.shape[1]:
        raise ValueError(f"train and test must be 2-d with the same width, got {tuple(tr.shape)} and "
                         f"{tuple(te.shape)}")
    counts = np.atleast_1d(np.asarray(counts))
    rank = min(tr.shape)
    if counts.min() < 0 or counts.max() > rank:
        raise ValueError(f"counts must lie in [0, {rank}] (the training data's rank bound), got "
                         f"{counts.min()}..{counts.max()}")
    mean = tr.mean(dim=0)
    _, _, vt = torch.linalg.svd(tr - mean, full_matrices=False)
    out = []
    for n in counts.astype(int):
        v = vt[:n].T
        out.append(fvu(te, mean + (te - mean) @ v @ v.T))
    return np.array(out)


def knob_for_l0(knobs, l0s, target: float) -> float:
    """The knob value (e.g. an L1 weight λ) at which a sweep reaches ``target`` active units:
    linear interpolation of log knob against log L0 between the two sweep points that bracket
    the target (the sweep's L0 must be monotone in its knob). Refuses a target outside the
    sweep's range of L0, which would need an extrapolation."""
    k, l0 = np.asarray(knobs, dtype=float), np.asarray(l0s, dtype=float)
    if k.shape != l0.shape or k.ndim != 1 or len(k) < 2:
        raise ValueError(f"knobs and l0s must be 1-d of the same length ≥ 2, got {k.shape} and {l0.shape}")
    if (k <= 0).any() or (l0 <= 0).any():
        raise ValueError("knobs and l0s must be positive (they are interpolated on a log scale)")
    order = np.argsort(l0)
    steps = np.diff(k[order])
    if not (np.all(steps < 0) or np.all(steps > 0)):
        raise ValueError(f"L0 is not monotone in the knob along this sweep: knobs {k.tolist()}, "
                         f"L0 {l0.tolist()}")
    if not l0.min() <= target <= l0.max():
        raise ValueError(f"target L0 {target:g} lies outside the sweep's range [{l0.min():g}, {l0.max():g}]; "
                         "widen the sweep rather than extrapolate")
    return float(np.exp(np.interp(np.log(target), np.log(l0[order]), np.log(k[order]))))


# -- which baseline runs a verdict rests on -----------------------------------------------------
def bracketing(rows: pd.DataFrame, value: float, x: str, by: str = "config") -> set:
    """The sweep points (``by`` labels) of one family whose mean ``x`` lies nearest ``value`` from
    below and from above: the points a frontier interpolated at ``value`` is drawn between."""
    means = rows.groupby(by, sort=False)[x].mean().sort_values()
    below, above = means[means <= value], means[means >= value]
    return ({below.index[-1]} if len(below) else set()) | ({above.index[0]} if len(above) else set())


def bearing_labels(points: pd.DataFrame, baselines: pd.DataFrame, by: str = "config",
                   posthoc: bool = True) -> set:
    """The baseline sweep points that the frontier verdicts of a decoder-free curve rest on: for
    every point of ``points`` and every reading, the two sweep points of the best family that
    bracket its L0 (:func:`ratio_intervals`; with ``posthoc``, also through the post-hoc decoders,
    ``fvu_linear``) and the two that bracket its FVU (:func:`sparsity_intervals`). Their runs are
    the baseline models whose convergence the verdicts need."""
    labels = set()
    for reading, (_, y) in READINGS.items():
        _, where, _ = ratio_intervals(points, baselines, reading, by=by)
        for fam, l0 in where.values():
            labels |= bracketing(baselines[baselines.family == fam], l0, "l0", by)
        _, where, _ = sparsity_intervals(points, baselines, reading, by=by)
        for label, fam in where.items():
            target = float(points.loc[points[by] == label, y].mean())
            labels |= bracketing(baselines[baselines.family == fam], target, "fvu", by)
    if posthoc:
        _, where, _ = ratio_intervals(points, baselines, "energy", fvu="fvu_linear", by=by,
                                      base_fvu="fvu_linear")
        for fam, l0 in where.values():
            labels |= bracketing(baselines[baselines.family == fam], l0, "l0", by)
    return labels
