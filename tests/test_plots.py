"""The figures' two layouts (dfsae.paper.plots.responsive): the phone layout stacks the panels in
reading order, shows what a shared axis hid, leaves the figure as it was, and refuses a panel too
wide to read on a phone."""

import base64
import io

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from dfsae.paper import plots  # noqa: E402

COLOURS = {"red": (1, 0, 0), "green": (0, 0.5, 0), "blue": (0, 0, 1)}


def coloured_panels(figsize=(11, 3.5), **kwargs):
    fig, axes = plt.subplots(1, 3, figsize=figsize, layout="constrained", **kwargs)
    for ax, colour in zip(axes, COLOURS.values(), strict=True):
        ax.set_facecolor(colour)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def rows_of(pixels, colour):
    target = np.array(colour) * 255
    hit = (np.abs(pixels.astype(float) - target) < 3).all(-1)
    return np.flatnonzero(hit.sum(1) > 0.5 * pixels.shape[1] * 0.3)


def test_text_size_closed_form():
    # 9 pt at 100 dpi is 12.5 px; an image shown at half its width halves it
    assert plots.text_px(1000, 500) == pytest.approx(6.25)
    assert plots.text_px(1000, 1000, font_pt=7.2) == pytest.approx(10.0)
    # the widest image that keeps 6 px in a 342-px column: 12.5 * 342 / 6 = 712.5
    assert plots.phone_max_px() == 712
    assert plots.text_px(plots.phone_max_px(), plots.PHONE_COLUMN_PX) >= plots.PHONE_TEXT_PX
    assert plots.text_px(plots.desktop_max_px(), plots.DESKTOP_COLUMN_PX) >= plots.DESKTOP_TEXT_PX


def test_phone_layout_stacks_the_panels_in_reading_order():
    fig, _ = coloured_panels()
    pixels = plots.phone_layout(fig)
    spans = {name: rows_of(pixels, colour) for name, colour in COLOURS.items()}
    assert all(len(rows) > 100 for rows in spans.values()), {k: len(v) for k, v in spans.items()}
    # one above the other, in the order they were read across the row
    assert spans["red"].max() < spans["green"].min() and spans["green"].max() < spans["blue"].min()
    # one column: each panel keeps its desktop width (a third of 11 inches, less margins)
    assert pixels.shape[1] <= 11 * plots.DPI / 3 + 10
    plt.close(fig)


def test_panels_given_as_groups_stay_together():
    fig, axes = coloured_panels(figsize=(6.9, 2.5))
    pixels = plots.phone_layout(fig, panels=[axes[:2], axes[2:]])
    red, green, blue = (rows_of(pixels, c) for c in COLOURS.values())
    assert set(red) & set(green)                       # side by side in one group
    assert blue.min() > max(red.max(), green.max())    # the second group below
    plt.close(fig)


def test_phone_layout_shows_shared_tick_labels_and_leaves_the_figure_as_it_was():
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
    for ax, colour in zip(axes, ("red", "blue"), strict=True):
        ax.set_facecolor(COLOURS[colour])
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("loss")
    size, canvas, dpi = tuple(fig.get_size_inches()), fig.canvas, fig.dpi
    fig.canvas.draw()
    assert not any(t.label1.get_visible() for t in axes[1].yaxis.get_major_ticks())  # sharing hid them
    pixels = plots.phone_layout(fig)
    # stacked, the second panel carries the same tick labels and axis label as the first, so
    # their plotting areas start at the same column
    painted = {c: (np.abs(pixels.astype(float) - np.array(COLOURS[c]) * 255) < 3).all(-1)
               for c in ("red", "blue")}
    left = {c: np.flatnonzero(mask.any(0)).min() for c, mask in painted.items()}
    assert abs(left["red"] - left["blue"]) <= 2, left
    assert tuple(fig.get_size_inches()) == size and fig.canvas is canvas and fig.dpi == dpi
    assert axes[1].get_ylabel() == ""
    fig.canvas.draw()
    assert not any(t.label1.get_visible() for t in axes[1].yaxis.get_major_ticks())
    plt.close(fig)


def test_each_stacked_panel_holds_nothing_of_its_neighbours():
    # a value label or a left-aligned title reaches past its panel into the next one, so a panel
    # cut from one drawing would carry a strip of its neighbour's plotting area
    fig, axes = coloured_panels(figsize=(10, 3), sharey=True)
    axes[0].set_yticks([0.2, 0.8], ["a tick label", "another"])
    axes[0].annotate("a value label past the panel", (1, 0.5), xycoords="axes fraction", xytext=(4, 0),
                     textcoords="offset points", va="center")
    axes[1].set_title("a left-aligned title far longer than its panel is", loc="left")
    pixels = plots.phone_layout(fig)
    spans = {name: rows_of(pixels, colour) for name, colour in COLOURS.items()}
    painted = {name: (np.abs(pixels.astype(float) - np.array(c) * 255) < 3).all(-1)
               for name, c in COLOURS.items()}
    for name, rows in spans.items():
        others = [o for o in COLOURS if o != name]
        assert not any(painted[o][rows.min():rows.max() + 1].any() for o in others), name
    # the figure itself still draws its three panels side by side
    fig.canvas.draw()
    assert [ax.get_visible() for ax in axes] == [True, True, True]
    plt.close(fig)


def test_a_panel_too_wide_for_a_phone_is_refused():
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot([0, 1])
    with pytest.raises(ValueError, match="narrower or pass smaller groups as panels"):
        plots.phone_layout(fig)
    with pytest.raises(ValueError, match="panels must be"):
        plots.phone_layout(fig, panels=[[]])
    plt.close(fig)


def decode(data):
    return Image.open(io.BytesIO(base64.b64decode(data)))


def phone_of(figure):
    """The phone layout a displayed figure carries, decoded, or None."""
    shown = figure._repr_mimebundle_()
    if isinstance(shown, dict):
        return None
    data, metadata = shown
    return decode(metadata["image/png"][plots.PHONE_KEY])


def test_responsive_carries_a_phone_layout_only_when_the_figure_needs_one():
    wide, _ = coloured_panels()
    shown = plots.responsive(wide)
    data, metadata = shown._repr_mimebundle_()
    assert set(data) == {"image/png"} and decode(data["image/png"]).size[0] > plots.phone_max_px()
    assert phone_of(shown).size[0] <= plots.phone_max_px()
    assert not plt.fignum_exists(wide.number)          # closed once stored

    narrow, ax = plt.subplots(figsize=(5, 3))
    ax.plot([0, 1])
    shown = plots.responsive(narrow)
    assert set(shown._repr_mimebundle_()) == {"image/png"}      # already legible on a phone
    assert decode(shown._repr_mimebundle_()["image/png"]).size[0] <= plots.phone_max_px()


def test_a_figure_drawn_for_the_phone_is_used_as_drawn_and_must_fit():
    wide, _ = coloured_panels()
    drawn, ax = plt.subplots(figsize=(4, 6))
    ax.set_facecolor(COLOURS["green"])
    phone = np.asarray(phone_of(plots.responsive(wide, phone=drawn)).convert("RGB"))
    assert len(rows_of(phone, COLOURS["green"])) > 300 and not len(rows_of(phone, COLOURS["red"]))
    assert not plt.fignum_exists(drawn.number)

    wide, _ = coloured_panels()
    too_wide, _ = plt.subplots(figsize=(10, 3))
    with pytest.raises(ValueError, match="phone is wider than 712 px"):
        plots.responsive(wide, phone=too_wide)


def test_panels_are_lettered_in_reading_order():
    fig, axes = plt.subplots(2, 2)
    axes[0, 0].set_title("loss")
    plots.letter_panels(axes)
    assert [ax.get_title() for ax in axes.flat] == ["(a) loss", "(b)", "(c)", "(d)"]
    plt.close(fig)


def test_a_figure_legend_takes_one_column_on_the_phone_and_keeps_its_columns_on_the_figure():
    fig, axes = coloured_panels(figsize=(9, 3))
    for i, ax in enumerate(axes):
        ax.plot([0, 1], [0, 1], label=f"a long legend entry for the curve number {i}")
    handles, labels = zip(*(ax.get_legend_handles_labels() for ax in axes), strict=True)
    legend = plots.figure_legend(fig, [h[0] for h in handles], [lab[0] for lab in labels],
                                 loc="outside lower center", ncols=3)
    fig.canvas.draw()
    wide = legend.get_window_extent().width
    pixels = plots.phone_layout(fig)        # three entries side by side would be wider than a panel
    assert pixels.shape[1] < wide
    assert fig.legends == [legend] and legend.get_visible() and legend._ncols == 3
    plt.close(fig)


def test_a_colour_bar_for_several_panels_follows_the_last_of_them():
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap

    fig, axes = plt.subplots(3, 1, figsize=(6, 9), layout="constrained")
    for ax, colour in zip(axes, COLOURS.values(), strict=True):
        ax.set_facecolor(colour)
        ax.set_xticks([])
        ax.set_yticks([])
    magenta = ScalarMappable(cmap=ListedColormap([(1, 0, 1)]))
    fig.colorbar(magenta, ax=axes[:2], orientation="horizontal")   # spans the red and green panels
    pixels = plots.phone_layout(fig)
    painted = (np.abs(pixels.astype(float) - [255, 0, 255]) < 3).all(-1).sum(1)
    bar = np.flatnonzero(painted > 0.3 * pixels.shape[1])
    green, blue = rows_of(pixels, COLOURS["green"]), rows_of(pixels, COLOURS["blue"])
    assert len(bar) and green.max() < bar.min() and bar.max() < blue.min()
    plt.close(fig)


def test_a_colour_bar_stays_with_the_panel_it_was_drawn_for():
    # each panel has its own bar on its right; the second panel's long tick labels bring its left
    # edge nearer to the first panel's bar than the first panel's own plotting area is
    from matplotlib.colors import ListedColormap

    fig, axes = plt.subplots(1, 2, figsize=(10, 3), layout="constrained")
    bars = {"red": (0, 1, 1), "blue": (1, 0, 1)}          # cyan for red's bar, magenta for blue's
    for ax, (colour, bar) in zip(axes, bars.items(), strict=True):
        ax.set_facecolor(COLOURS[colour])
        # a thin strip of the bar's colour in the panel, so the bar belongs to this panel's mappable
        mesh = ax.pcolormesh(np.array([0, 0.02]), np.array([0, 1]), np.zeros((1, 1)),
                             cmap=ListedColormap([bar]))
        fig.colorbar(mesh, ax=ax)
        ax.set_xlim(0, 1)
        ax.set_yticks([0.2, 0.8], ["a rather long tick label", "and another one"])
    pixels = plots.phone_layout(fig)
    for colour, bar in bars.items():
        own = rows_of(pixels, COLOURS[colour])
        painted = np.flatnonzero((np.abs(pixels.astype(float) - np.array(bar) * 255) < 3).all(-1).any(1))
        assert len(own) and len(painted), colour
        assert own.min() - 5 <= painted.min() and painted.max() <= own.max() + 5, colour
    plt.close(fig)
