"""Building blocks the experiment notebooks share: one run, many seeds, tables, results.

A *run* builds a model of a given family, trains it with :func:`dfsae.training.train` and
evaluates it with :func:`dfsae.metrics.evaluate`. Notebooks call these instead of writing their
own loops, so every experiment trains and measures models the same way.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .. import validation
from ..data import DATASETS
from ..files import atomic_write
from ..metrics import evaluate
from ..model import ACTIVATIONS, FAMILIES
from ..objective import DecoderFreeObjective, SAEObjective, TopKObjective
from ..training import OPTIMIZERS, train

WEIGHTS = ("lambda_lse", "lambda_var", "lambda_tc", "lambda_wr", "l1_coefficient", "l1_sweep", "df_lambdas")


def validate_parameters(*, dataset="mnist5k", hidden_dim=64, activation="relu", epochs=100,
                        batch_size=128, lr=1e-3, optimizer="adam", seeds=(0,), device="cpu",
                        n_samples=1, results_dir="", **weights) -> None:
    """Check a notebook's papermill parameters before any work; raise ``ValueError``.

    Keyword arguments beyond the named ones are non-negative weights (``WEIGHTS``), each a
    number or a non-empty list of numbers; any other name is refused with the list of valid
    ones, so a misspelled parameter never passes silently.
    """
    unknown = [k for k in weights if k not in WEIGHTS]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: dataset, hidden_dim, activation, epochs, "
                         "batch_size, lr, optimizer, seeds, device, n_samples, results_dir, "
                         f"{', '.join(WEIGHTS)}")
    validation.choice("dataset", dataset, DATASETS)
    validation.positive_int("hidden_dim", hidden_dim)
    validation.choice("activation", activation, ACTIVATIONS)
    validation.positive_int("epochs", epochs)
    validation.positive_int("batch_size", batch_size, minimum=2)
    validation.positive_float("lr", lr)
    validation.choice("optimizer", optimizer, OPTIMIZERS)
    validation.integer_list("seeds", seeds)
    validation.device("device", device)
    validation.positive_int("n_samples", n_samples)
    if results_dir:
        validation.writable_folder("results_dir", results_dir)
    for name, value in weights.items():
        if isinstance(value, str):
            raise ValueError(f"{name} must be a number or a list of numbers, got the string {value!r}; "
                             f"give lists with -y, e.g. `-y '{name}: [0.1, 1.0]'`")
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"{name} must not be empty")
            for v in value:
                validation.positive_float(name, v, allow_zero=True)
        else:
            validation.positive_float(name, value, allow_zero=True)


OBJECTIVES = {objective.model_type.family: objective
              for objective in (DecoderFreeObjective, SAEObjective, TopKObjective)}


def _keywords(cls, skip=()) -> set[str]:
    return {p for p in inspect.signature(cls).parameters if p not in skip}


def options_of(family: str) -> dict[str, set[str]]:
    """{"model": names, "objective": names}: every option ``build`` accepts for ``family``."""
    validation.choice("family", family, FAMILIES)
    return {"model": _keywords(FAMILIES[family], ("input_dim", "hidden_dim", "seed")),
            "objective": _keywords(OBJECTIVES[family])}


def build(family: str, input_dim: int, hidden_dim: int, seed: int, **options):
    """A freshly initialised (model, objective) pair of ``family`` (:data:`dfsae.model.FAMILIES`).

    Each option goes, by name, to the model's constructor (e.g. ``activation``, ``k``,
    ``unit_norm_rows``) or the objective's (e.g. ``lambda_var``, ``decorrelation``, ``n_probes``,
    ``l1_coefficient``); an option neither accepts is refused with the list of valid ones.
    """
    names = options_of(family)
    unknown = sorted(set(options) - names["model"] - names["objective"])
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for family {family!r}; valid: "
                         f"{sorted(names['model'] | names['objective'])}")
    if family == "topk" and options.get("k") is None:
        raise ValueError("family='topk' needs k, the number of active units per input")
    model = FAMILIES[family](input_dim, hidden_dim, seed=seed,
                             **{k: v for k, v in options.items() if k in names["model"]})
    objective = OBJECTIVES[family](**{k: v for k, v in options.items() if k in names["objective"]})
    return model, objective


def run(family: str, data, *, hidden_dim=64, seed=0, epochs=100, batch_size=128, lr=1e-3,
        optimizer="adam", device="cpu", progress=False, probe=True, eval_data=None, **model_options):
    """Build, train (on ``data.x_train``) and evaluate one model. Returns ``(model, history,
    metrics_dict)``. ``eval_data`` (default ``data``) is the dataset :func:`dfsae.metrics.evaluate` reads,
    e.g. a subsample of the training set for the post-hoc decoder when the full one is large."""
    model, objective = build(family, data.x_train.shape[1], hidden_dim, seed, **model_options)
    history = train(model, objective, data.x_train, epochs=epochs, batch_size=batch_size, lr=lr,
                    optimizer=optimizer, seed=seed, device=device, progress=progress)
    model.cpu()
    metrics = evaluate(model, data if eval_data is None else eval_data, probe=probe)
    metrics["seconds"] = history.seconds
    return model, history, metrics


def run_seeds(family: str, data, seeds, label=None, progress=True, **options):
    """:func:`run` once per seed. Returns (DataFrame of metrics, {seed: model}, {seed: history})."""
    rows, models, histories = [], {}, {}
    for seed in tqdm(list(seeds), desc=label or family, disable=not progress, leave=False):
        model, history, metrics = run(family, data, seed=seed, **options)
        rows.append({"config": label or family, "seed": seed, **metrics})
        models[seed], histories[seed] = model, history
    return pd.DataFrame(rows), models, histories


def run_grid(points, data, seeds=(0,), progress=True, desc="grid", **budget):
    """:func:`run_seeds` for each point of a sweep; one row per (point, seed).

    ``points`` is a list of dicts, each with ``"family"``, a ``"label"`` and that family's
    options (``lambda_var``, ``l1_coefficient``, ``k``, ``lr``, ...); options given in a point
    override ``budget``. Every option of a point also becomes a column of the result, so a
    frontier can be plotted straight from it. Returns (DataFrame, {(label, seed): model}, {...: history}).
    """
    points = list(points)
    for p in points:
        if "family" not in p or "label" not in p:
            raise ValueError(f"each point needs a 'family' and a 'label'; got {p!r}")
    frames, models, histories = [], {}, {}
    for point in tqdm(points, desc=desc, disable=not progress, leave=False):
        options = {k: v for k, v in point.items() if k not in ("family", "label")}
        frame, m, h = run_seeds(point["family"], data, seeds, label=point["label"], progress=False,
                                **{**budget, **options})
        frames.append(frame.assign(family=point["family"], **options))
        models.update({(point["label"], s): v for s, v in m.items()})
        histories.update({(point["label"], s): v for s, v in h.items()})
    return pd.concat(frames, ignore_index=True), models, histories


def mean_sd_table(frame: pd.DataFrame, by: str, columns, digits: int = 3) -> pd.DataFrame:
    """A table of "mean ± sd" strings (sd over seeds) per group, columns in the given order."""
    grouped = frame.groupby(by, sort=False)[list(columns)]
    mean, sd = grouped.mean(), grouped.std(ddof=1).fillna(0.0)
    table = pd.DataFrame(index=mean.index)
    for col in columns:
        table[col] = [f"{m:.{digits}g} ± {s:.2g}" for m, s in zip(mean[col], sd[col], strict=True)]
    return table


def save_results(frame: pd.DataFrame, path, parameters: dict | None = None) -> Path:
    """Write ``frame`` as CSV (and ``parameters`` as JSON beside it) atomically.

    Both texts are serialised before either file is touched, so a parameter that cannot be
    written as JSON leaves the previous results as they were; each file is then written
    through a temporary file and a rename (:func:`dfsae.files.atomic_write`).
    """
    path = Path(path)
    csv = frame.to_csv(index=False)
    text = json.dumps(parameters, indent=2) if parameters is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is not None:
        atomic_write(path.with_suffix(".json"), text)
    atomic_write(path, csv)
    return path
