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
         "05_2_ablation", "05_3_benchmark", "05_4_comparison", "05_5_dynamics", "05_6_language_model",
         "06_discussion", "07_conclusion", "00_abstract", "A1_decoder_tax", "99_reproduce"]


def _source(name: str) -> Path:
    source = NOTEBOOK_DIR / f"{name}.md"
    if not source.exists():
        raise FileNotFoundError(f"{source} not found")
    return source


def _temporary(name: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=NOTEBOOK_DIR, prefix=f".{name}.", suffix=".ipynb")
    os.close(fd)
    return Path(tmp)


def parameters_of(name: str) -> dict:
    """{parameter: default (as source text)} declared in a notebook's ``parameters`` cell."""
    import jupytext
    import papermill

    tmp = _temporary(name)
    try:
        jupytext.write(jupytext.read(_source(name)), tmp)
        info = papermill.inspect_notebook(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    return {k: v["default"] for k, v in info.items()}


def execute(name: str, parameters: dict, progress: bool = True) -> None:
    """Convert NAME.md, execute it with ``parameters`` (those it declares) and replace
    NAME.ipynb with the result only if execution succeeded."""
    import jupytext
    import papermill

    declared = parameters_of(name)
    use = {k: v for k, v in parameters.items() if k in declared}
    source, result = _temporary(name), _temporary(name)
    try:
        jupytext.write(jupytext.read(_source(name)), source)
        papermill.execute_notebook(str(source), str(result), parameters=use, cwd=str(NOTEBOOK_DIR),
                                   progress_bar=progress, kernel_name="python3")
        os.replace(result, NOTEBOOK_DIR / f"{name}.ipynb")
    finally:
        source.unlink(missing_ok=True)
        result.unlink(missing_ok=True)
    ignored = set(parameters) - set(declared)
    if ignored and declared:
        print(f"  ({name}: ignored parameters it does not declare: {sorted(ignored)})")


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
