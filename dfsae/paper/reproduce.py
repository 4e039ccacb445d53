"""Re-execute the notebooks of a book with papermill, into run folders or, on request, in place.

    python -m dfsae.paper.reproduce                     # everything, default parameters, into runs/
    python -m dfsae.paper.reproduce --only 05_2_ablation -p epochs 200 -p seeds "[0,1,2,3,4]"
    python -m dfsae.paper.reproduce --list              # notebooks and their parameters
    python -m dfsae.paper.reproduce --update-stored     # refresh the stored notebooks in place

A run never touches the stored notebooks: each notebook is executed into its own run folder,
``runs/NAME-default`` at the stored parameters or ``runs/NAME-<hash of the parameters>``, with
its result files in that folder's ``results/`` (the notebook's ``results_dir`` is pointed there)
and its working directory still the notebook's folder, so ``stored/`` and the caches resolve as
usual. Only ``--update-stored`` rewrites ``NAME.ipynb`` beside its source (the book's own refresh).
A trial run whose folder already holds an earlier run with the same parameters is checked against
that earlier run.
A run holds the lock of the folder its results go to (:func:`dfsae.files.folder_lock`), so a
second run on the same folder stops at once and says which process holds it.

The notebooks are those of the book's table of contents (``_toc.yml``, found in ``--book`` or
the nearest folder above the working directory that has one), in its order, except that pages
which quote other notebooks' results (they call :mod:`dfsae.paper.report`'s ``reglue``) run
after the others. Each
notebook's MyST source (``NAME.md``) is the source of truth: it is converted to ``NAME.ipynb``,
executed with its working directory in its own folder, and written back only if execution
succeeds (through a temporary file and a rename, so a failed or interrupted run leaves the
previous notebook untouched).

Every ``-p`` parameter is checked before any notebook starts: it may be given once; its name must
be declared by one of the selected notebooks; its value (a Python literal; a tuple becomes a list)
must have the type of the declared default and pass the rule the notebook itself applies
(:data:`dfsae.paper.parameters.PARAMETERS`: ranges, choices, a CUDA device that exists). When a
notebook runs with its stored parameters it also checks each reported number against the stored
run, within its tolerance (:mod:`dfsae.paper.record`); ``--new-reference`` skips that check, for a
deliberate change.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from ..files import folder_lock, publish, temporary_beside


def find_book(start=None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) with a ``_toc.yml``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists():
            return folder
    raise FileNotFoundError(f"no _toc.yml in {here} or above it; run from the book's checkout or pass --book")


def _toc_files(node):
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                yield node[key]
        for key in ("parts", "chapters", "sections"):
            yield from _toc_files(node.get(key, []))
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def notebooks(book=None) -> dict[str, Path]:
    """{name: MyST source} of every notebook page in the table of contents, in execution order."""
    import yaml

    book = Path(book) if book else find_book()
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    sources = [book / f"{f}.md" for f in _toc_files(toc)]
    sources = [s for s in sources if s.exists() and "jupytext:" in s.read_text()[:200]]
    quoting = [s for s in sources if "reglue" in s.read_text()]
    ordered = [s for s in sources if s not in quoting] + quoting
    return {s.stem: s for s in ordered}


def parameters_of(source: Path) -> dict:
    """{parameter: default (as source text)} declared in a notebook's ``parameters`` cell."""
    import jupytext
    import papermill

    with temporary_beside(source.with_suffix(".ipynb"), ".ipynb") as tmp:
        jupytext.write(jupytext.read(source), tmp, fmt="ipynb")
        info = papermill.inspect_notebook(str(tmp))
    return {k: v["default"] for k, v in info.items()}


RUNS = "runs"


def run_folder(book: Path, name: str, given: dict) -> Path:
    """``<book>/runs/NAME-default``, or ``NAME-<hash>`` of the parameters ``given`` to this notebook."""
    if not given:
        return Path(book) / RUNS / f"{name}-default"
    text = json.dumps(given, sort_keys=True, default=str)
    return Path(book) / RUNS / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def execute(source: Path, parameters: dict, progress: bool = True, output: Path | None = None) -> Path:
    """Convert NAME.md, execute it with ``parameters`` (those it declares) in its own folder, and
    write the result to ``output`` (default: NAME.ipynb beside the source) only if execution
    succeeded. Returns the written notebook's path."""
    import jupytext
    import papermill

    declared = parameters_of(source)
    use = {k: v for k, v in parameters.items() if k in declared}
    target = Path(output) if output is not None else source.with_suffix(".ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    with temporary_beside(target, ".ipynb") as converted, temporary_beside(target, ".ipynb") as result:
        jupytext.write(jupytext.read(source), converted, fmt="ipynb")
        papermill.execute_notebook(str(converted), str(result), parameters=use, cwd=str(source.parent),
                                   progress_bar=progress, kernel_name="python3")
        publish(result, target)
    return target


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _same_type(value, default) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_parameters(parameters: dict, declared: dict[str, dict]) -> None:
    """Refuse (``ValueError``) a parameter no selected notebook declares, a value whose type
    differs from the declared default's, or one its rule refuses (the rule the notebook applies,
    :data:`dfsae.paper.parameters.PARAMETERS`), before anything runs."""
    from .parameters import PARAMETERS

    names = sorted({k for d in declared.values() for k in d})
    unknown = sorted(set(parameters) - set(names))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {sorted(declared)}; valid names: {names}")
    for name, value in parameters.items():
        for notebook, params in declared.items():
            if name not in params:
                continue
            default = parse_value(params[name])
            if not _same_type(value, default):
                raise ValueError(f"parameter {name}={value!r} of {notebook} must be of the same type as its "
                                 f"default {params[name]} ({type(default).__name__}), "
                                 f"got {type(value).__name__}; -p takes a Python literal, e.g. "
                                 f"-p {name} {json.dumps(params[name])}")
        if name in PARAMETERS:
            PARAMETERS[name](name, value)


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, a CI timeout) and SIGINT (Ctrl-C) into ``SystemExit``, so that
    the temporary notebook files of a run in progress are removed instead of being left beside
    the notebooks. (A plain ``KeyboardInterrupt`` can be taken by the notebook client for an
    interrupt of the running cell, and the run would go on.)"""
    def stop(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def _lock_folder(source: Path, declared: dict, use: dict, out: Path) -> Path:
    """The folder a notebook's results go to (its ``results_dir``), else the folder it is written to."""
    default = parse_value(declared["results_dir"]) if "results_dir" in declared else ""
    results = use.get("results_dir", default)
    return (source.parent / results) if results else out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dfsae.paper.reproduce",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--book", help="folder with the book's _toc.yml (default: found from the working "
                                       "directory)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="notebooks to run (default: all)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter, as a Python literal: -p epochs 200, -p seeds '[0, 1, 2]'")
    parser.add_argument("--list", action="store_true", help="list notebooks and parameters, run nothing")
    parser.add_argument("--update-stored", action="store_true",
                        help="rewrite the stored notebooks (NAME.ipynb beside NAME.md) and their results "
                             "in place, instead of writing a run folder under runs/")
    parser.add_argument("--new-reference", action="store_true",
                        help="do not compare reported numbers with the stored run (after a deliberate "
                             "change)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        book = Path(args.book) if args.book else find_book()
        available = notebooks(book)
    except FileNotFoundError as err:
        parser.error(str(err))
    names = args.only or list(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; choose from {list(available)}")
    selected = [n for n in available if n in names]
    declared = {name: parameters_of(available[name]) for name in selected}
    if args.list:
        for name in selected:
            print(name, declared[name] or "(no parameters)")
        return 0
    given = [k for k, _ in args.parameter]
    repeated = sorted({k for k in given if given.count(k) > 1})
    if repeated:
        parser.error(f"parameter(s) {repeated} given more than once; give each -p NAME VALUE once")
    parameters = {k: parse_value(v) for k, v in args.parameter}
    parameters = {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()}
    try:
        check_parameters(parameters, declared)
    except ValueError as err:
        parser.error(str(err))
    if args.new_reference:
        os.environ["DFSAE_NEW_REFERENCE"] = "1"
    stop_cleanly_on_sigterm()
    for i, name in enumerate(selected, 1):
        source = available[name]
        use = {k: v for k, v in parameters.items() if k in declared[name]}
        if args.update_stored:
            out, output = source.parent, None
        else:
            out = run_folder(book, name, use)
            output = out / f"{name}.ipynb"
            if "results_dir" in declared[name]:
                use = {**use, "results_dir": str((out / "results").resolve())}
        print(f"[{i}/{len(selected)}] {name}", flush=True)
        if output is not None and output.exists():   # a trial compares with its own earlier run
            os.environ["DFSAE_EARLIER_RUN"] = str(output.resolve())
        else:
            os.environ.pop("DFSAE_EARLIER_RUN", None)
        with folder_lock(_lock_folder(source, declared[name], use, out), f"reproduce {name}"):
            written = execute(source, use, progress=not args.no_progress, output=output)
        print(f"    wrote {written}" + ("" if args.update_stored else f" (results in {out / 'results'})"),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
