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
