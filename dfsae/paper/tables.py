"""Tables as the book shows them: numbered, captioned, formatted by one rule.

:func:`show` turns a DataFrame into a MyST ``{table}`` directive (a cell output of type
``text/markdown``, which the book parses as MyST), so Sphinx numbers each table like a figure
and the text can cite it with ``{numref}`tab-…```. Every number is formatted by
:mod:`dfsae.paper.numbers`; the index becomes the first column(s) only when it has a name.
"""

from __future__ import annotations

import numbers as _abc
import re

import numpy as np
import pandas as pd

from . import numbers

# A cell that reads as a number (or mean ± sd, a percentage, "–" or "∞") is right-aligned.
NUMERIC = re.compile(r"^(?:[-+−]?[\d,]*\.?\d+(?:e[-+]\d+)?%?(?: ±\s[\d,]*\.?\d+(?:e[-+]\d+)?%?)?|–|∞|−∞)$")


def _cell(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (_abc.Integral, np.integer)):
        return numbers.count(value)
    if isinstance(value, (_abc.Real, np.floating)):
        return numbers.number(value)
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return numbers.MISSING
    return str(value)


def _is_real(value) -> bool:
    """A real number that is not an integer or a boolean (those print as counts and yes/no)."""
    return isinstance(value, (_abc.Real, np.floating)) and not isinstance(
        value, (bool, np.bool_, _abc.Integral, np.integer))


def _escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(frame: pd.DataFrame | pd.Series, caption: str, name: str, formats: dict | None = None,
             collapsed: str | None = None) -> str:
    """The MyST source of a numbered table: ``{table}`` with ``caption`` and label ``name``.

    ``formats`` maps a column to a function of one value, for columns the default rule does
    not fit (e.g. a count stored as float). Columns whose every cell reads as a number are
    right-aligned. ``collapsed``, a one-line summary (the table's finding), folds a long table
    into a dropdown that shows the summary and opens on a click; the table keeps its number.
    """
    if not name.startswith("tab-"):
        raise ValueError(f"table name must start with 'tab-' (it is the label the text cites), got {name!r}")
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if any(level is not None for level in frame.index.names):
        frame = frame.reset_index()
    formats = formats or {}
    columns = [" / ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    values = [frame[c].tolist() for c in frame.columns]     # per column, so integers stay integers
    cells = []
    for c, column in zip(frame.columns, values, strict=True):
        if c in formats:
            cells.append([formats[c](v) for v in column])
        elif column and all(_is_real(v) for v in column):
            cells.append(numbers.column(column))          # one notation per column
        else:
            cells.append([_cell(v) for v in column])
    rows = [list(row) for row in zip(*cells, strict=True)]
    numeric = [bool(rows) and all(NUMERIC.match(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["| " + " | ".join(_escape(c) for c in columns) + " |",
             "|" + "|".join("--:" if n else ":--" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_escape(c) for c in cells) + " |" for cells in rows]
    caption = " ".join(caption.split())
    table = f"```{{table}} {caption}\n:name: {name}\n:align: center\n\n" + "\n".join(lines) + "\n```\n"
    if collapsed is None:
        return table
    summary = " ".join(str(collapsed).split())
    if not summary:
        raise ValueError("collapsed must be a one-line summary of the table (its finding), not empty")
    return f"````{{dropdown}} {summary}\n\n{table}````\n"


class Table:
    """A numbered table as a cell output: MyST for the book, plain text elsewhere."""

    def __init__(self, source: str, frame):
        self.source, self.frame = source, frame

    def _repr_markdown_(self):
        return self.source

    def __repr__(self):
        # Plain text is the formatted table too: its rounding, not float noise, decides what a
        # re-executed notebook is compared on.
        return self.source


def show(frame, caption: str, name: str, formats: dict | None = None, collapsed: str | None = None) -> Table:
    """Display ``frame`` as numbered table ``name`` (cite it as ``{numref}`name```); with
    ``collapsed`` (a one-line summary), folded into a dropdown (:func:`markdown`)."""
    return Table(markdown(frame, caption, name, formats, collapsed), frame)


BADGES = {"held": "success", "met": "success", "equivalent": "success",
          "failed": "danger", "missed": "danger", "different": "danger",
          "partly held": "warning", "inconclusive": "secondary", "undecided": "secondary"}


def badge(verdict: str) -> str:
    """A verdict as a coloured badge (MyST, sphinx-design): green for held, met or equivalent, red
    for failed, missed or different, amber for partly held, grey for inconclusive or undecided;
    any other text is shown blue."""
    text = " ".join(str(verdict).split())
    if not text or "`" in text:
        raise ValueError(f"verdict must be a non-empty text without backticks, got {verdict!r}")
    return f"{{bdg-{BADGES.get(text, 'info')}}}`{text}`"


def _evidence_lines(evidence: str) -> tuple[str, list[str]]:
    """Split an evidence string ("what, 95% intervals: item, verdict; item, verdict") into a
    one-line summary (what was measured) and its intervals, one per line."""
    text = " ".join(str(evidence).split())
    head, sep, rest = text.partition("95% intervals:")
    if not sep:
        return "details", [text]
    what = head.strip().rstrip(",").strip()
    items = [item.strip() for item in rest.split(";") if item.strip()]
    return (f"{what}: 95% intervals" if what else "95% intervals"), items


def verdicts(rows, caption: str, name: str) -> Table:
    """A verdict table with one row per prediction: its verdict in each reading of the
    decoder-free code as a coloured badge (:func:`badge`), a column per reading ("energy",
    "similarity", "responsibility", … — the reading's name before any parenthesis; "–" where a
    prediction is not judged in it), and its evidence folded into one line that opens on a click
    to the reading each verdict was measured in and the intervals it was decided on, one per line.

    ``rows`` are (prediction, reading, verdict, evidence) tuples, in the order the table lists
    them."""
    import html

    rows = [tuple(row) for row in rows]
    if not rows or any(len(row) != 4 for row in rows):
        raise ValueError("rows must be a non-empty list of (prediction, reading, verdict, evidence) tuples")

    def kind(reading):
        return str(reading).split(" (")[0].strip()

    kinds = list(dict.fromkeys(kind(r) for _, r, _, _ in rows))
    predictions = list(dict.fromkeys(p for p, _, _, _ in rows))
    table = {p: {} for p in predictions}
    for p, r, v, e in rows:
        if kind(r) in table[p]:
            raise ValueError(f"rows judge {p!r} in the reading {kind(r)!r} twice")
        table[p][kind(r)] = (r, v, e)
    records = []
    for p in predictions:
        record = {"prediction": p}
        record.update({k: badge(table[p][k][1]) if k in table[p] else numbers.MISSING for k in kinds})
        summaries, lines = [], []
        for k in kinds:
            if k in table[p]:
                reading, _, evidence = table[p][k]
                what, items = _evidence_lines(evidence)
                summaries.append(what)
                lines += [f"<em>{html.escape(str(reading), quote=False)}</em>"]
                lines += [html.escape(item, quote=False) for item in items]
        summary = summaries[0] if len(set(summaries)) == 1 else "95% intervals"
        record["evidence"] = (f"<details><summary>{html.escape(summary, quote=False)}</summary>"
                              + "<br>".join(lines) + "</details>")
        records.append(record)
    return show(pd.DataFrame(records, columns=["prediction", *kinds, "evidence"]), caption, name)


def convergence(record, name: str, frame, what: str, table_name: str, by: str = "config",
                hidden_dim: int | None = None, compact: bool = False) -> Table:
    """Report the convergence of every run of ``frame`` (made with ``late=True``), captioned as the
    convergence of ``what`` (e.g. "every configuration"): a table of
    :func:`dfsae.paper.judgement.convergence_table`, the per-seed changes in ``record`` (under
    ``name``), the number of (model, metric) pairs that have converged (``{name}_converged`` of
    ``{name}_pairs``), and two glued sentences, ``{name}_summary`` (what has not converged) and
    ``{name}_rule`` (the criterion, from the code). A change may move on another machine by what
    its final value may move: 2 % of it, or five units' worth of ``dead_frac``."""
    from myst_nb import glue

    from . import judgement
    from .record import Tolerance

    table, changes, checks = judgement.convergence_table(frame, by)
    floors = {m: Tolerance.absolute(0.02 * abs(float(frame[m].mean())) + 1e-9, "2 % of the final value")
              for m in changes.columns if m != by}
    if "dead_frac" in floors and hidden_dim:   # a late death moves between machines as between seeds
        floors["dead_frac"] = Tolerance.absolute(5 / hidden_dim, "five units")
    record.frame(f"{name}_change", changes, by, floors=floors)
    done = sum(c.converged for _, c in checks)
    record.number(f"{name}_converged", done, Tolerance.count(2, 0.1))
    record.number(f"{name}_pairs", len(checks), Tolerance.exact())
    glue(f"{name}_summary", judgement.convergence_summary(checks), display=False)
    glue(f"{name}_rule", judgement.convergence_rule(), display=False)
    tail = f"{1 - judgement.LATE:.0%}"
    caption = (f"Convergence of {what}: how many of each model's metrics have converged, and for the others "
               f"the change over the last {tail} of the training steps (the mean over seeds of the final "
               "value "
               "minus the value there) and the seed sd of the final value, which a converged metric's change "
               "does not exceed.")
    if compact:  # a long sweep: only the models with a metric that has not converged
        keep = table["not converged: change (sd)"] != "–"
        caption += (f" Only the models with a metric that has not converged are listed: {int(keep.sum())} of "
                    f"{len(table)}; every metric of the others has converged.")
        table = table[keep]
        if table.empty:
            table = pd.DataFrame({"converged": ["every metric"], "not converged: change (sd)": ["–"]},
                                 index=pd.Index(["every model"], name=by))
    return show(table, caption, table_name)
