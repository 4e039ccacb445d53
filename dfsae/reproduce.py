"""Regenerate every executed notebook of the book, in place, with papermill.

    python -m dfsae.reproduce                     # everything, default parameters
    python -m dfsae.reproduce --only 05_2_ablation -p epochs 200 -p seeds "[0,1,2,3,4]"
    python -m dfsae.reproduce --list              # notebooks and their parameters

Each notebook's MyST source (``notebooks/NAME.md``) is the source of truth: it is converted
to ``NAME.ipynb``, executed with its working directory in ``notebooks/``, and written back
only if execution succeeds (through a temporary file and a rename, so a failed or
interrupted run leaves the previous notebook untouched). Experiment notebooks write their
results to ``notebooks/results/NAME.csv`` (+ ``.json`` with the parameters). Parameters given
with ``-p`` go to every selected notebook that declares them.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import tempfile
from pathlib import Path

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
# Execution order: experiments before the pages that quote them.
ORDER = ["01_introduction", "02_background", "03_infomax", "04_objective", "05_1_identity",
         "05_2_ablation", "05_3_benchmark", "06_discussion", "07_conclusion", "00_abstract",
         "99_reproduce"]


def parameters_of(name: str) -> dict:
    """{parameter: default (as source text)} declared in a notebook's ``parameters`` cell."""
    import papermill

    info = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    return {k: v["default"] for k, v in info.items()}


def sync(name: str) -> Path:
    """Write NAME.ipynb from NAME.md (code and text; outputs are produced by execution)."""
    import jupytext

    source = NOTEBOOK_DIR / f"{name}.md"
    if not source.exists():
        raise FileNotFoundError(f"{source} not found")
    target = NOTEBOOK_DIR / f"{name}.ipynb"
    jupytext.write(jupytext.read(source), target)
    return target


def execute(name: str, parameters: dict, progress: bool = True) -> None:
    import papermill

    path = sync(name)
    declared = parameters_of(name)
    unknown = set(parameters) - set(declared)
    use = {k: v for k, v in parameters.items() if k in declared}
    fd, tmp = tempfile.mkstemp(dir=NOTEBOOK_DIR, prefix=f".{name}.", suffix=".ipynb")
    os.close(fd)
    try:
        papermill.execute_notebook(str(path), tmp, parameters=use, cwd=str(NOTEBOOK_DIR),
                                   progress_bar=progress, kernel_name="python3")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if unknown and declared:
        print(f"  ({name}: ignored parameters it does not declare: {sorted(unknown)})")


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfsae.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"notebooks to run, from {ORDER}")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument("--list", action="store_true", help="list notebooks and parameters, run nothing")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    names = args.only or ORDER
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; choose from {ORDER}")
    if args.list:
        for name in names:
            print(name, parameters_of(name) or "(no parameters)")
        return 0
    parameters = {k: parse_value(v) for k, v in args.parameter}
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name}", flush=True)
        execute(name, parameters, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
