"""Building blocks the experiment notebooks share: one run, many seeds, tables, results.

A *run* builds a model of a given family, trains it with :func:`dfsae.training.train` and
evaluates it with :func:`dfsae.metrics.evaluate`. Notebooks call these instead of writing their
own loops, so every experiment trains and measures models the same way.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import _checks
from .data import DATASETS
from .metrics import evaluate
from .model import DecoderFreeSAE, StandardSAE, TopKSAE
from .objective import DecoderFreeObjective, SAEObjective, TopKObjective
from .training import OPTIMIZERS, train

FAMILIES = ("decoder_free", "sae", "topk")


def validate_parameters(*, dataset="mnist5k", hidden_dim=64, activation="relu", epochs=100,
                        batch_size=128, lr=1e-3, optimizer="adam", seeds=(0,), device="cpu",
                        n_samples=1, **lambdas) -> None:
    """Check a notebook's papermill parameters before any work; raise ``ValueError``.

    Keyword arguments beyond the named ones are non-negative weights (λ's, L1
    coefficients), each a number or a non-empty list of numbers.
    """
    _checks.choice("dataset", dataset, DATASETS)
    _checks.positive_int("hidden_dim", hidden_dim)
    _checks.choice("activation", activation, ("relu", "softplus", "identity"))
    _checks.positive_int("epochs", epochs)
    _checks.positive_int("batch_size", batch_size, minimum=2)
    _checks.positive_float("lr", lr)
    _checks.choice("optimizer", optimizer, OPTIMIZERS)
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__") or len(list(seeds)) == 0:
        raise ValueError(f"seeds must be a non-empty list of integers, e.g. [0, 1, 2]; got {seeds!r}")
    for s in seeds:
        _checks.positive_int("seeds", s, minimum=0)
    _checks.device("device", device)
    _checks.positive_int("n_samples", n_samples)
    for name, value in lambdas.items():
        if isinstance(value, (list, tuple)):
            if not value:
                raise ValueError(f"{name} must not be empty")
            for v in value:
                _checks.positive_float(name, v, allow_zero=True)
        else:
            _checks.positive_float(name, value, allow_zero=True)


def build(family: str, input_dim: int, hidden_dim: int, seed: int, *, activation="relu",
          lambda_lse=1.0, lambda_var=1.0, lambda_tc=1.0, lambda_wr=0.0, lse_reduction="mean",
          l1_coefficient=1e-3, l1_weighting="plain", unit_norm_decoder=False, unit_norm_rows=False,
          k=None):
    """A freshly initialised (model, objective) pair of ``family``."""
    _checks.choice("family", family, FAMILIES)
    if family == "decoder_free":
        return (DecoderFreeSAE(input_dim, hidden_dim, activation=activation, seed=seed,
                               unit_norm_rows=unit_norm_rows),
                DecoderFreeObjective(lambda_lse, lambda_var, lambda_tc, lambda_wr, lse_reduction))
    if family == "sae":
        return (StandardSAE(input_dim, hidden_dim, unit_norm_decoder=unit_norm_decoder, seed=seed),
                SAEObjective(l1_coefficient, l1_weighting))
    if k is None:
        raise ValueError("family='topk' needs k, the number of active units per input")
    return TopKSAE(input_dim, hidden_dim, k=k, seed=seed), TopKObjective()


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

    Each file is written to a temporary file in the same folder and renamed over the
    target, so an interrupted run never leaves a partial result file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, frame.to_csv(index=False))
    if parameters is not None:
        _atomic_write(path.with_suffix(".json"), json.dumps(parameters, indent=2, default=str))
    return path


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
