"""Reading numbers back from executed notebooks, so that summary pages (abstract,
discussion, conclusion) quote exactly what the experiment notebooks computed and glued."""

from __future__ import annotations

import ast
import json
from pathlib import Path

GLUE_MIME = "application/papermill.record/text/plain"


def read_glued(notebook) -> dict:
    """All values glued (``myst_nb.glue``) in the stored outputs of ``notebook`` (.ipynb).

    Values come back as Python literals where their text form is one (numbers, strings),
    else as the text itself.
    """
    path = Path(notebook)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run `python -m dfsae.paper.reproduce` to create it")
    values = {}
    for cell in json.loads(path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            text = output.get("data", {}).get(GLUE_MIME)
            if name is None or text is None:
                continue
            text = "".join(text) if isinstance(text, list) else text
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values[name] = text
    return values


def reglue_book(book=None) -> dict:
    """:func:`reglue` every experiment notebook of the book's table of contents (those that do
    not quote others themselves), so a summary page can cite any glued value by its name."""
    from .reproduce import notebooks

    values = {}
    for source in notebooks(book).values():
        if "reglue" not in source.read_text():
            values.update(reglue(source.with_suffix(".ipynb")))
    return values


def reglue(notebook) -> dict:
    """Glue, in the running notebook, every number or string glued in ``notebook``'s stored
    outputs (figures and tables are skipped), under the same names. Returns the values."""
    from myst_nb import glue

    values = {k: v for k, v in read_glued(notebook).items()
              if isinstance(v, (int, float, str)) and not str(v).startswith("<")}
    for name, value in values.items():
        glue(name, value, display=False)
    return values
