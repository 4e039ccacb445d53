"""Building blocks the experiment notebooks share: one run, many seeds, tables, results.

A *run* is described by a :class:`RunConfig` — the family's typed config and the training budget
— validated once when it is made. :func:`run` builds the model,
trains it with :func:`dfsae.training.train` and evaluates it with :func:`dfsae.metrics.evaluate`.
Notebooks call these instead of writing their own loops, so every experiment trains and
measures models the same way, and :func:`save_results` writes each run's configuration beside
its results.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .. import families, validation
from ..families import FamilyConfig
from ..files import atomic_write_all
from ..metrics import evaluate
from ..metrics import readings as code_readings
from ..training import OPTIMIZERS, train
from . import numbers


def knob_label(family: str, value) -> str:
    """How tables and legends name a sweep point: the family's title and its knob's value, e.g.
    "TopK SAE, k=16" or "standard SAE (L1), λ=0.3"."""
    spec = families.family(family)
    return f"{spec.title}, {'k' if spec.knob == 'k' else 'λ'}={value:g}"


def build(family: str, input_dim: int, hidden_dim: int, seed: int, **options):
    """A freshly initialised (model, objective) pair of ``family`` (:data:`dfsae.families.FAMILIES`)
    with the family's ``options`` (its config's fields, e.g. ``lambda_var``, ``k``, ``l1_coefficient``);
    an unknown option is refused with the list of valid ones."""
    return families.family(family).config.make(**options).build(input_dim, hidden_dim, seed)


@dataclass(frozen=True)
class RunConfig:
    """One training run: the family's typed config (``options``, a
    :class:`dfsae.families.FamilyConfig`) and the training budget.

    Validated when made: the budget by :mod:`dfsae.validation`, the options by their family's
    config when that was made, and the two together (e.g. TopK's k ≤ ``hidden_dim``).
    ``as_dict()`` is what :func:`save_results` writes beside the results: every option of the
    family, defaults included, so a stored run says exactly what it trained.
    """

    options: FamilyConfig
    hidden_dim: int = 64
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    device: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.options, FamilyConfig):
            raise ValueError(f"options must be a family's config (e.g. dfsae.TopKConfig(k=32)), got "
                             f"{self.options!r}; RunConfig.of(family, **settings) makes one from names")
        validation.positive_int("hidden_dim", self.hidden_dim)
        validation.positive_int("epochs", self.epochs)
        validation.positive_int("batch_size", self.batch_size, minimum=2)
        validation.positive_float("lr", self.lr)
        validation.choice("optimizer", self.optimizer, OPTIMIZERS)
        validation.device("device", self.device)
        self.options.check_width(self.hidden_dim)

    @property
    def family(self) -> str:
        return self.options.family

    @classmethod
    def of(cls, family: str, **settings) -> RunConfig:
        """A config from flat keywords: budget names go to their fields, the rest to the family's config."""
        budget = {f for f in cls.__dataclass_fields__ if f != "options"}
        config = families.family(family).config
        options = config.make(**{k: v for k, v in settings.items() if k not in budget})
        return cls(options, **{k: v for k, v in settings.items() if k in budget})

    def build(self, input_dim: int, seed: int):
        """A freshly initialised (model, objective) pair for this config."""
        return self.options.build(input_dim, self.hidden_dim, seed)

    def as_dict(self) -> dict:
        out = {"family": self.family, **asdict(self)}
        out["options"] = asdict(self.options)
        return out


def run(config: RunConfig, data, seed: int = 0, progress=False, probe=True, eval_data=None, readings=False,
        late=False, measure=None, monitor=None):
    """Build, train (on ``data.x_train``) and evaluate one model of ``config`` with ``seed``.

    Returns ``(model, history, metrics_dict)``. ``eval_data`` (default ``data``) is the
    dataset :func:`dfsae.metrics.evaluate` reads, e.g. a subsample of the training set for the
    post-hoc decoder when the full one is large. With ``readings=True`` a decoder-free model is
    also read as similarities and responsibilities (:func:`dfsae.metrics.readings`). With
    ``late=True`` the model is also measured after :data:`dfsae.paper.judgement.LATE` of its training
    steps, and the metrics of :data:`~dfsae.paper.judgement.CONVERGENCE_METRICS` it reports are added
    as ``late_<metric>`` (for :func:`dfsae.paper.judgement.convergence`). ``measure``, a function of the
    trained model returning a dict of further metrics (e.g. spliced fidelity), adds them; a name it
    shares with the standard metrics is refused. ``monitor`` is passed to :func:`dfsae.training.train` (e.g. a
    :class:`dfsae.evals.DensityMonitor`)."""
    from .judgement import CONVERGENCE_METRICS, LATE, late_name

    model, objective = config.build(data.x_train.shape[1], seed)
    history = train(model, objective, data.x_train, epochs=config.epochs, batch_size=config.batch_size,
                    lr=config.lr, optimizer=config.optimizer, seed=seed, device=config.device,
                    progress=progress, snapshot_at=LATE if late else None, monitor=monitor)
    model.cpu()
    metrics = _measure(model, data if eval_data is None else eval_data, probe, readings)
    if late:
        earlier, _ = config.build(data.x_train.shape[1], seed)
        earlier.load_state_dict(history.snapshot)
        earlier.eval()
        before = _measure(earlier, data if eval_data is None else eval_data, probe, readings)
        metrics.update({late_name(k): before[k] for k in CONVERGENCE_METRICS if k in before})
    if measure is not None:
        extra = dict(measure(model))
        clash = sorted(set(extra) & set(metrics))
        if clash:
            raise ValueError(f"measure returned {clash}, which the standard metrics already report; "
                             "rename them")
        metrics.update(extra)
    metrics["seconds"] = history.seconds
    return model, history, metrics


def _measure(model, data, probe, readings) -> dict:
    metrics = evaluate(model, data, probe=probe)
    if readings and model.codes_are_energies:
        metrics.update(code_readings(model, data))
    return metrics


def run_seeds(family: str, data, seeds, label=None, progress=True, probe=True, eval_data=None, readings=False,
              late=False, **settings):
    """:func:`run` once per seed of one :class:`RunConfig` (``RunConfig.of(family, **settings)``).

    Returns (DataFrame of metrics, {seed: model}, {seed: history}); the frame's
    ``attrs["runs"]`` maps the label to the config, for :func:`save_results`."""
    label = label or family
    config = RunConfig.of(family, **settings)
    rows, models, histories = [], {}, {}
    for seed in tqdm(list(seeds), desc=label, disable=not progress, leave=False):
        model, history, metrics = run(config, data, seed, probe=probe, eval_data=eval_data, readings=readings,
                                      late=late)
        rows.append({"config": label, "seed": seed, **metrics})
        models[seed], histories[seed] = model, history
    frame = pd.DataFrame(rows)
    frame.attrs["runs"] = {label: config.as_dict()}
    return frame, models, histories


def concat(frames) -> pd.DataFrame:
    """``pd.concat`` of result frames that keeps every frame's run configs (``attrs["runs"]``)."""
    frames = list(frames)
    runs = {}
    for frame in frames:
        runs.update(frame.attrs.get("runs", {}))
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"runs": runs}
    return out


RUN_ARGUMENTS = ("probe", "eval_data", "readings", "late", "measure")  # keywords of run(), not of a RunConfig


def run_grid(points, data, seeds=(0,), progress=True, desc="grid", **budget):
    """:func:`run_seeds` for each point of a sweep; one row per (point, seed).

    ``points`` is a list of dicts, each with ``"family"``, a ``"label"`` and that family's
    options (``lambda_var``, ``l1_coefficient``, ``k``, ``lr``, ...); options given in a point
    override ``budget``. Every option of a point also becomes a column of the result, so a
    frontier can be plotted straight from it. Every point's config is checked before the first
    one trains. Returns (DataFrame, {(label, seed): model}, {...: history}).
    """
    points = list(points)
    for p in points:
        if "family" not in p or "label" not in p:
            raise ValueError(f"each point needs a 'family' and a 'label'; got {p!r}")
    settings = [{**budget, **{k: v for k, v in p.items() if k not in ("family", "label")}} for p in points]
    for point, s in zip(points, settings, strict=True):
        RunConfig.of(point["family"], **{k: v for k, v in s.items() if k not in RUN_ARGUMENTS})
    frames, models, histories = [], {}, {}
    pairs = list(zip(points, settings, strict=True))
    for point, s in tqdm(pairs, desc=desc, disable=not progress, leave=False):
        frame, m, h = run_seeds(point["family"], data, seeds, label=point["label"], progress=False, **s)
        options = {k: v for k, v in point.items() if k not in ("family", "label")}
        frames.append(frame.assign(family=point["family"], **options))
        frames[-1].attrs = frame.attrs
        models.update({(point["label"], s): v for s, v in m.items()})
        histories.update({(point["label"], s): v for s, v in h.items()})
    return concat(frames), models, histories


def mean_sd_table(frame: pd.DataFrame, by: str, columns) -> pd.DataFrame:
    """A table of "mean ± sd" strings (sd over seeds, :func:`dfsae.paper.numbers.mean_sd`) per
    group, columns in the given order."""
    grouped = frame.groupby(by, sort=False)[list(columns)]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    table = pd.DataFrame(index=mean.index)
    for col in columns:
        table[col] = [numbers.mean_sd(m, s) for m, s in zip(mean[col], sd[col], strict=True)]
    return table


RUN_ID = "run_id"


def save_results(frame: pd.DataFrame, path, parameters: dict | None = None) -> Path:
    """Write ``frame`` as CSV, and beside it (same name, ``.json``) the notebook's ``parameters``
    and the :class:`RunConfig` of every run in the frame (``frame.attrs["runs"]``), as a pair.

    Both texts are made before either file is touched (a value that cannot be written as JSON
    changes nothing), both are written to temporary files, and only then are both renamed into
    place (:func:`dfsae.files.atomic_write_all`): a full disk leaves the previous pair as it was.
    Both carry one new ``run_id`` (a CSV column and a JSON key), so :func:`load_results` refuses
    a pair mixed by a kill between the two renames.
    """
    path = Path(path)
    run_id = uuid.uuid4().hex
    csv = frame.assign(**{RUN_ID: run_id}).to_csv(index=False)
    text = json.dumps({RUN_ID: run_id, "parameters": parameters or {}, "runs": frame.attrs.get("runs", {})},
                      indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_all({path.with_suffix(".json"): text, path: csv})
    return path


def load_results(path) -> tuple[pd.DataFrame, dict]:
    """The frame and the JSON (parameters, runs) that :func:`save_results` wrote to ``path``;
    refused with a ``ValueError`` naming both files when they come from different writes."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    for p in (path, meta_path):
        if not p.exists():
            raise FileNotFoundError(f"{p} not found; results are written as a pair, {path.name} and "
                                    f"{meta_path.name}")
    frame = pd.read_csv(path)
    meta = json.loads(meta_path.read_text())
    ids = set(frame[RUN_ID].astype(str)) if RUN_ID in frame else set()
    if not isinstance(meta, dict) or ids != {meta.get(RUN_ID)}:
        other = meta.get(RUN_ID) if isinstance(meta, dict) else None
        raise ValueError(f"{path} and {meta_path} come from different writes (run ids {sorted(ids)} and "
                         f"{other!r}): a run was stopped between renaming them, or one was replaced by "
                         "hand. Rerun the experiment to write both.")
    return frame.drop(columns=RUN_ID), meta
