"""Figures shared by the notebooks (each function returns a matplotlib Figure), and an axis helper."""

from __future__ import annotations

import weakref

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


def letter_panels(axes) -> None:
    """Prefix each panel's title with its letter, (a), (b), … in reading order, so that a caption
    can name panels in any layout (a phone stacks them: "left" would no longer be left)."""
    for letter, ax in zip("abcdefghijklmnopqrstuvwxyz", np.ravel(np.asarray(axes, dtype=object)),
                          strict=False):
        title = ax.get_title()
        ax.set_title(f"({letter}) {title}" if title else f"({letter})")


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
    fig, axes = plt.subplots(len(rows), 1, figsize=(ncols * tile, (tile * -(-n // ncols) + 0.35) * len(rows)),
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


# --- One figure, two layouts -----------------------------------------------------------------------

#: The resolution every figure is stored at, in pixels per inch.
DPI = 100
#: The smallest text a figure may use, in points (``tests/test_book.py`` holds the notebooks to it).
SMALLEST_FONT_PT = 9.0
#: The book's text column in a 1,400-px window, in CSS pixels.
DESKTOP_COLUMN_PX = 750
#: The text column on a 390-px phone, in CSS pixels.
PHONE_COLUMN_PX = 342
#: The smallest figure text a desktop reader should get, in CSS pixels.
DESKTOP_TEXT_PX = 9.0
#: The smallest figure text a phone reader should get, in CSS pixels.
PHONE_TEXT_PX = 6.0
#: The windows that get a figure's phone layout (a CSS media query).
PHONE_MEDIA = "(max-width: 640px)"


def text_px(natural_width: float, shown_width: float, font_pt: float = SMALLEST_FONT_PT) -> float:
    """The height in CSS pixels of ``font_pt`` text in an image ``natural_width`` pixels wide (at
    :data:`DPI`) shown ``shown_width`` pixels wide."""
    return font_pt / 72 * DPI * shown_width / natural_width


def phone_max_px() -> int:
    """The widest image whose smallest text still reads at :data:`PHONE_TEXT_PX` in the phone column."""
    return int(SMALLEST_FONT_PT / 72 * DPI * PHONE_COLUMN_PX / PHONE_TEXT_PX)


def desktop_max_px() -> int:
    """The widest image whose smallest text still reads at :data:`DESKTOP_TEXT_PX` in the desktop column."""
    return int(SMALLEST_FONT_PT / 72 * DPI * DESKTOP_COLUMN_PX / DESKTOP_TEXT_PX)


def _all_axes(fig):
    axes = list(fig.axes)
    for sub in getattr(fig, "subfigs", []):
        axes += [ax for ax in _all_axes(sub) if ax not in axes]
    return axes


def _figure_artists(fig):
    """Artists placed on the figure rather than in an axes: suptitles, figure legends, figure text."""
    found = list(fig.legends) + list(fig.texts)
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        artist = getattr(fig, name, None)
        if artist is not None and artist.get_text() and artist not in found:
            found.append(artist)
    for sub in getattr(fig, "subfigs", []):
        found += _figure_artists(sub)
    return [a for a in found if a.get_visible()]


def _png(pixels: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


_LEGENDS = weakref.WeakKeyDictionary()   # legend -> (parent, handles, labels, kwargs), by figure_legend


def figure_legend(fig, handles, labels, **kwargs):
    """``fig.legend(handles, labels, **kwargs)``, remembered so that the phone layout
    (:func:`phone_layout`) can draw it again in one column."""
    legend = fig.legend(handles, labels, **kwargs)
    _LEGENDS[legend] = (fig, handles, labels, kwargs)
    return legend


def phone_layout(fig, panels=None, gap_px: int = 10) -> np.ndarray:
    """The figure's panels stacked in one column, as an RGB array at :data:`DPI`.

    ``panels`` lists the groups of axes that stay together, in reading order (default: every axes
    that is not a colour bar, row by row). A colour bar beside one panel stays with it (with the
    panel that holds its mappable, when that panel is on its row); one that
    spans several becomes a strip of its own, as do suptitles, figure legends (in one column if
    made by :func:`figure_legend`) and figure text, above the panels if they sit above them on
    the page, else below. Tick labels and axis labels that a shared axis hides are shown, since
    the panels no longer sit side by side. Each piece is drawn alone, every other axes and figure
    artist hidden, so a title or label that reaches past its panel takes nothing of its neighbour
    with it. The figure is left as it was.

    Raises ``ValueError`` when a panel is wider than :func:`phone_max_px`: its text would read
    below :data:`PHONE_TEXT_PX` on a phone; group fewer axes or make the figure narrower.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    axes = [ax for ax in _all_axes(fig) if ax.get_visible()]
    bars = [ax for ax in axes if getattr(ax, "_colorbar", None) is not None]
    if panels is None:
        panels = [[ax] for ax in axes if ax not in bars]
    else:
        panels = [list(np.ravel(np.asarray(group, dtype=object))) for group in panels]
        unknown = [ax for group in panels for ax in group if ax not in axes]
        if unknown or not all(panels):
            raise ValueError("panels must be non-empty groups of the figure's visible axes")
    if not panels:
        raise ValueError("the figure has no axes to lay out")

    # show what sharing hid, remembering it to restore
    restore = []
    for ax in (a for group in panels for a in group):
        for axis, side, twins in (("y", "labelleft", ax.get_shared_y_axes()),
                                  ("x", "labelbottom", ax.get_shared_x_axes())):
            siblings = [s for s in twins.get_siblings(ax) if s is not ax]
            if not siblings:
                continue
            target = ax.yaxis if axis == "y" else ax.xaxis
            shown = target._major_tick_kw.get("label1On", True)
            label = target.get_label_text()
            restore.append((ax, axis, side, shown, label))
            ax.tick_params(axis=axis, which="both", **{side: True})
            if not label:
                names = [(s.yaxis if axis == "y" else s.xaxis).get_label_text() for s in siblings]
                if any(names):
                    target.set_label_text(next(n for n in names if n))

    # a legend made by figure_legend is drawn again in one column: its columns sat side by side
    swapped = []
    for legend in _figure_artists(fig):
        if legend in _LEGENDS:
            parent, handles, labels, kwargs = _LEGENDS[legend]
            kwargs = {k: v for k, v in kwargs.items() if k not in ("ncol", "ncols")}
            legend.set_visible(False)
            swapped.append((legend, parent.legend(handles, labels, ncols=1, **kwargs)))

    original_canvas, original_dpi = fig.canvas, fig.dpi
    try:
        fig.set_dpi(DPI)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        height = canvas.get_width_height(physical=True)[1]

        def box(artists):
            boxes = [a.get_tightbbox(renderer) for a in artists]
            return Bbox.union([b for b in boxes if b is not None and b.width > 0])

        groups = [list(group) for group in panels]
        group_boxes = [box(group) for group in groups]
        strips = []                                   # (box, artists, 0 above the panels or 2 below)
        after = {i: [] for i in range(len(groups))}   # (box, artists) of colour bars placed after panel i
        for bar in bars:
            b = box([bar])
            beside = [i for i, g in enumerate(group_boxes)
                      if min(g.y1, b.y1) - max(g.y0, b.y0) > 0.5 * min(g.height, b.height)
                      and b.height <= 1.5 * g.height]
            owner = getattr(bar._colorbar.mappable, "axes", None)
            mine = [i for i in beside if owner in groups[i]]
            if beside:               # the panel it was drawn for, else the nearest on its row, takes it
                i = mine[0] if mine else min(
                    beside, key=lambda i: max(group_boxes[i].x0 - b.x1, b.x0 - group_boxes[i].x1, 0))
                groups[i].append(bar)
                group_boxes[i] = box(groups[i])
            else:                    # a bar for several panels follows the last panel not below it
                level = [i for i, g in enumerate(group_boxes) if g.y1 > b.y0]
                after[max(level, default=len(groups) - 1)].append((b, [bar]))
        top = max(g.y1 for g in group_boxes)
        for artist in _figure_artists(fig):
            b = box([artist])
            strips.append((b, [artist], 0 if b.y0 >= top - 1 else 2))

        # each piece is drawn alone, in the places the full drawing gave it (the layout engine is
        # held still, so hiding the others moves nothing)
        everything = axes + _figure_artists(fig)
        engine = fig.get_layout_engine()
        fig.set_layout_engine("none")

        def crop(b, artists):
            for artist in everything:
                artist.set_visible(artist in artists)
            canvas.draw()
            drawn = np.asarray(canvas.buffer_rgba())[..., :3]
            x0, x1 = max(int(np.floor(b.x0)) - 3, 0), min(int(np.ceil(b.x1)) + 3, drawn.shape[1])
            y0, y1 = max(int(np.floor(height - b.y1)) - 3, 0), min(int(np.ceil(height - b.y0)) + 3, height)
            return drawn[y0:y1, x0:x1].copy()

        try:
            pieces = ([crop(b, artists) for b, artists, where in strips if where == 0]
                      + [crop(b, artists) for i, group in enumerate(groups)
                         for b, artists in ((group_boxes[i], group), *after[i])]
                      + [crop(b, artists) for b, artists, where in strips if where == 2])
        finally:
            for artist in everything:
                artist.set_visible(True)
            fig.set_layout_engine(engine)
    finally:
        fig.set_canvas(original_canvas)
        fig.set_dpi(original_dpi)
        for legend, one_column in swapped:
            one_column.remove()
            legend.set_visible(True)
        for ax, axis, side, shown, label in restore:
            ax.tick_params(axis=axis, which="both", **{side: shown})
            (ax.yaxis if axis == "y" else ax.xaxis).set_label_text(label)

    widest = max(p.shape[1] for p in pieces)
    if widest > phone_max_px():
        raise ValueError(f"a panel of the phone layout is {widest} px wide (at most {phone_max_px()} keeps "
                         f"{SMALLEST_FONT_PT:g}-pt text at {PHONE_TEXT_PX:g} px on a phone): make the figure "
                         "narrower or pass smaller groups as panels")
    rows = []
    for piece in pieces:
        left = (widest - piece.shape[1]) // 2
        row = np.full((piece.shape[0], widest, 3), 255, dtype=np.uint8)
        row[:, left:left + piece.shape[1]] = piece
        rows += [row, np.full((gap_px, widest, 3), 255, dtype=np.uint8)]
    return np.vstack(rows[:-1])


#: The output metadata key under which a figure carries its phone layout.
PHONE_KEY = "dfsae/phone-layout"


class ResponsiveFigure:
    """A figure with its desktop image and, when that is too wide for a phone, a phone layout
    (:func:`phone_layout`). Displayed or glued, it is the desktop PNG, with the phone layout's PNG
    in the output's metadata (under :data:`PHONE_KEY`); the book (``book/_ext/phonefigures.py``)
    serves that layout to windows matching :data:`PHONE_MEDIA`, and the figure directive's alt
    text and caption to both."""

    def __init__(self, desktop: bytes, phone: bytes | None):
        self.desktop, self.phone = desktop, phone

    def __repr__(self):
        # the same text on every machine: a re-executed notebook compares it
        return "<figure with a phone layout>" if self.phone is not None else "<figure>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        import base64

        data = {"image/png": base64.b64encode(self.desktop).decode("ascii")}
        if self.phone is None:
            return data
        return data, {"image/png": {PHONE_KEY: base64.b64encode(self.phone).decode("ascii")}}


def responsive(fig, panels=None, phone=None) -> ResponsiveFigure:
    """The figure as stored in the book: a PNG at :data:`DPI`, plus a phone layout when the PNG is
    wider than :func:`phone_max_px`: ``phone`` if given (a second Figure drawn for a narrow
    column, for figures whose panels cannot be cut apart, such as a grid of images), else the
    panels stacked (:func:`phone_layout`, with ``panels`` its groups). Closes the figures."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    desktop = buffer.getvalue()
    width = Image.open(io.BytesIO(desktop)).size[0]
    layout = None
    if width > phone_max_px():
        if phone is not None:
            buffer = io.BytesIO()
            phone.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
            layout = buffer.getvalue()
            if Image.open(io.BytesIO(layout)).size[0] > phone_max_px():
                raise ValueError(f"phone is wider than {phone_max_px()} px at {DPI} dpi: draw it narrower")
        else:
            layout = _png(phone_layout(fig, panels))
    for figure in (fig, phone):
        if figure is not None:
            plt.close(figure)
    return ResponsiveFigure(desktop, layout)
