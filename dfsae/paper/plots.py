"""Figures shared by the notebooks (each function returns a matplotlib Figure), and an axis helper."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch


def plain_log_axis(ax, axis: str = "x") -> None:
    """Label a log axis with plain numbers at 1, 2 and 5 per decade (1, 2, 5, 10, 20, …), no minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    target.set_minor_locator(NullLocator())


def identity_scatter(panels: dict):
    """Figure 1: r_j (x) against ∂L_LSE/∂E_j (y), one panel per entry {title: (r, grad)}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(min(4.6 * len(panels), 10), 4.4), squeeze=False)
    for ax, (title, (r, grad)) in zip(axes[0], panels.items(), strict=True):
        r, grad = np.asarray(r).ravel(), np.asarray(grad).ravel()
        ax.scatter(r, grad, s=3, alpha=0.3, rasterized=True)
        hi = max(r.max(), grad.max()) * 1.05
        ax.plot([0, hi], [0, hi], "k--", lw=1, label="y = x")
        ax.set(xlabel=r"responsibility $r_j = \mathrm{softmax}(-E)_j$",
               ylabel=r"gradient $\partial L_{\mathrm{LSE}} / \partial E_j$ (autograd)", title=title)
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def correlation_grid(matrices: dict, ncols: int = 2, fig=None):
    """Heat maps of correlation matrices {title: (K, K) array} on a shared [−1, 1] scale.
    Draws into ``fig`` (a Figure or SubFigure) when given."""
    n = len(matrices)
    nrows = -(-n // ncols)
    if fig is None:
        fig = plt.figure(figsize=(4.2 * ncols, 3.9 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax, (title, corr) in zip(axes.flat, matrices.items(), strict=False):
        im = ax.imshow(np.nan_to_num(np.asarray(corr)), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set(title=title, xlabel="unit j", ylabel="unit i")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.8, label="correlation over held-out digits")
    return fig


def grouped_bars(frame, group: str, metrics: dict, fig=None):
    """One bar panel per metric {column: axis label}, side by side; bars = mean over seeds,
    whiskers = sd. Drawn into ``fig`` (a Figure or SubFigure) when given."""
    n = len(metrics)
    if fig is None:
        fig = plt.figure(figsize=(4.2 * n, 3.6), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    grouped = frame.groupby(group, sort=False)
    for ax, (col, label) in zip(axes, metrics.items(), strict=True):
        mean, sd = grouped[col].mean(), grouped[col].std(ddof=1).fillna(0)
        ax.bar(range(len(mean)), mean.values, yerr=sd.values, capsize=4,
               color=plt.cm.tab10(np.arange(len(mean)) % 10))
        ax.set_xticks(range(len(mean)), [str(i) for i in mean.index])
        ax.set(ylabel=label, xlabel=group)
    return fig


def weight_images(rows: dict, n: int = 16, shape=(28, 28), ncols: int = 16):
    """Rows of weight matrices as images: {title: (K, D) array}, first ``n`` rows each.
    Sized for the book's text column (10 inches wide at most)."""
    tile = min(0.75, 9.6 / ncols)
    fig, axes = plt.subplots(len(rows), 1, figsize=(ncols * tile, (tile + 0.35) * len(rows) * -(-n // ncols)),
                             squeeze=False)
    for ax, (title, w) in zip(axes[:, 0], rows.items(), strict=True):
        w = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w)[:n]
        tiles = [t / (np.abs(t).max() + 1e-12) for t in w.reshape(len(w), *shape)]
        tiles += [np.zeros(shape)] * (-len(tiles) % ncols)
        grid = np.vstack([np.hstack(tiles[i:i + ncols]) for i in range(0, len(tiles), ncols)])
        ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(title, loc="left", fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


def unit_inputs(rows: list, shape=(28, 28)):
    """One row per unit: its weight image, then groups of input images, each group titled.
    ``rows`` is a list of (label, weight, {group title: (n, D) inputs}). Inputs are drawn in
    grey, the weight in red and blue, each tile scaled to its own largest absolute value."""
    groups = list(rows[0][2])
    n = [len(rows[0][2][g]) for g in groups]
    ncols = 1 + sum(n) + len(groups)                     # a blank column before each group
    tile = min(0.62, 9.8 / ncols)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(ncols * tile, (tile + 0.12) * len(rows) + 0.5),
                             squeeze=False)
    for r, (label, w, inputs) in enumerate(rows):
        w = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w).reshape(shape)
        axes[r, 0].imshow(w / (np.abs(w).max() + 1e-12), cmap="RdBu_r", vmin=-1, vmax=1)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        c = 1
        for g in groups:
            c += 1
            for i, x in enumerate(np.asarray(inputs[g])):
                axes[r, c].imshow(x.reshape(shape), cmap="gray_r")
                if r == 0 and i == 0:
                    axes[r, c].set_title(g, loc="left", fontsize=9)
                c += 1
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.subplots_adjust(left=0.1, right=0.99, top=1 - 0.45 / fig.get_figheight(), bottom=0.01, wspace=0.05,
                        hspace=0.08)
    return fig


def mixture_panel(ax, x, model, title: str):
    """Scatter of 2-D data coloured by the winning component, with 2σ ellipses."""
    from matplotlib.patches import Ellipse

    with torch.no_grad():
        r = torch.softmax(-model.energies(x), -1)
        sigma = model.log_var.mul(0.5).exp()
    ax.scatter(x[:, 0], x[:, 1], c=r.argmax(-1), cmap="tab10", vmin=0, vmax=9, s=6)
    for j, (mu, s) in enumerate(zip(model.means.detach(), sigma, strict=True)):
        ax.add_patch(Ellipse(mu.tolist(), 4 * float(s[0]), 4 * float(s[1]), fill=False,
                             color=plt.cm.tab10(j), lw=2))
        ax.plot(*mu.tolist(), "k+", ms=10)
    ax.set(title=title, xlabel="$x_1$", ylabel="$x_2$", xlim=(-5, 5), ylim=(-3.5, 5.5), aspect="equal")
