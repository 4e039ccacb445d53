"""Training runs stored once, one file per run, and rendered from there.

Sweeps that would not fit in CI's budget are trained once and kept in the repository: each run
(one configuration, one seed, one dataset) is a JSON file holding its :class:`RunConfig`, seed,
dataset, metrics, training time and the version of the code that trained it
(:func:`code_version`). A notebook asks a :class:`RunStore` for its grid; runs already stored are
read, missing ones are trained and stored as each finishes, so an interrupted sweep resumes where
it stopped. CI then retrains a stated subset (:meth:`RunStore.verify`) and checks it against the
stored values within what another machine may move.

Two folders, so that a trial never overwrites the reference: ``reference`` (in the repository,
e.g. ``notebooks/stored/<experiment>``) is read, and written only in ``refresh`` mode (the book's
own refresh); new runs go to ``working`` (the run's results folder). A run's file name is a hash of
what determines its result, so a run with other parameters can never be mistaken for a stored one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from .. import validation
from ..files import atomic_write
from . import experiments as ex
from .record import REQUIRE_COMPARISON, RESULT_NEUTRAL, ReproductionError, Tolerance

MODES = ("use", "extend", "refresh")

ONE_SEED = Tolerance.relative(0.1, 0.005, "one seed retrained on another machine: 10 %")
"""What a number of one seed (a reconstruction error, say) may move when the run is retrained on
another machine: 10 % of it, or 0.005."""
RETRAIN_TOLERANCES = {"l0": Tolerance.relative(0.1, 0.5, "one seed: 10 % or half a unit"),
                      "fvu_linear": ONE_SEED, "probe_acc": Tolerance.absolute(0.02, "one seed: 0.02"),
                      "dead": Tolerance.count(3, 0.05)}
"""What a stored run of one seed may move when it is retrained on another machine, for the
metrics every family reports (add the family's own reconstruction, e.g. ``fvu_own``, with
:data:`ONE_SEED`): reproduction tolerances, which no verdict uses."""
FORMAT = 1


def fresh_seed_tolerances(runs, floors: dict[str, Tolerance], reference: int = 0,
                          k: float = 3.0) -> dict[str, Tolerance]:
    """Tolerances for retraining ``runs[reference]`` on another machine, when the run is chaotic:
    its trajectory diverges from the last bits on, so a rerun lands where a fresh seed would.
    Each metric of ``floors`` may move by the larger of its floor (taken at the stored value) and
    ``k·sd·√2``, the bound on the difference of two single runs, with ``sd`` over the stored
    seeds ``runs`` (at least 2; the same configuration, other seeds)."""
    runs = list(runs)
    if len(runs) < 2:
        raise ValueError(f"runs must hold at least 2 seeds of the configuration to measure a seed's "
                         f"spread; got {len(runs)}")
    if not 0 <= reference < len(runs):
        raise ValueError(f"reference must index runs (0 to {len(runs) - 1}); got {reference}")
    out = {}
    for name, floor in floors.items():
        values = [float(r.metrics[name]) for r in runs]
        mean = sum(values) / len(values)
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        at = values[reference]
        band = k * sd * math.sqrt(2.0)
        out[name] = Tolerance.absolute(max(band, floor.width(at)),
                                       f"the larger of {floor.basis} and a fresh seed's {k:g}·sd·√2, sd = "
                                       f"{sd:.3g} over {len(runs)} stored seeds")
    return out


def code_version() -> str:
    """SHA-256 (first 12 hex digits) over the library's source files: the code that trains a run."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def has_late(run: StoredRun) -> bool:
    """Whether a stored run was also measured late in training (``late_<metric>`` columns)."""
    return any(k.startswith("late_") for k in run.metrics)


def run_key(config: ex.RunConfig, seed: int, dataset: str) -> str:
    """The hash of everything that determines a run's result: the family's options, the budget
    (not the device, which only says where it runs), the seed and the dataset."""
    what = {k: v for k, v in config.as_dict().items() if k not in RESULT_NEUTRAL}
    text = json.dumps({"config": what, "seed": int(seed), "dataset": dataset, "format": FORMAT},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredRun:
    """One stored run: what trained it and what it measured."""

    key: str
    dataset: str
    seed: int
    config: dict
    metrics: dict
    code_version: str
    stored_at: str

    def as_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, default=float)


class RunStore:
    """Stored runs of one experiment (see the module docstring).

    ``reference`` and ``working`` are folders; ``mode="use"`` reads the reference and the working
    folder and trains what neither holds into ``working``; ``mode="extend"`` trains what the
    reference lacks into the reference (how a stored sweep is made, resumably); ``mode="refresh"``
    retrains every run asked for and writes it into ``reference``."""

    def __init__(self, reference, working, dataset: str, mode: str = "use"):
        self.reference, self.working = Path(reference), Path(working)
        self.dataset = dataset
        self.mode = validation.choice("mode", mode, MODES)
        self.trained: list[str] = []        # keys trained (not read) by this store
        self.used: set[str] = set()          # keys asked for (read or trained)

    def _path(self, folder: Path, key: str) -> Path:
        return folder / f"{key}.json"

    def get(self, config: ex.RunConfig, seed: int) -> StoredRun | None:
        """The stored run of ``config`` and ``seed``, from the reference first, else None."""
        key = run_key(config, seed, self.dataset)
        for folder in (self.reference, self.working):
            path = self._path(folder, key)
            if path.exists():
                try:
                    run = StoredRun(**json.loads(path.read_text()))
                except (ValueError, TypeError) as err:
                    raise ValueError(f"stored run {path} cannot be read ({err}); delete it to retrain "
                                     "it") from None
                if run.key != key:
                    raise ValueError(f"stored run {path} holds key {run.key}, not {key}: the file was "
                                     "renamed or edited; delete it to retrain it")
                return run
        return None

    def has(self, config: ex.RunConfig, seed: int, late: bool = False) -> bool:
        """Whether :meth:`run` would read this run rather than train it: it is stored (with its late
        measurement when ``late``) and the mode is not ``"refresh"``."""
        if self.mode == "refresh":
            return False
        found = self.get(config, seed)
        return found is not None and (not late or has_late(found))

    def run(self, config: ex.RunConfig, data, seed: int, **run_kwargs) -> StoredRun:
        """The stored run, or train, evaluate and store it (as soon as it finishes)."""
        self.used.add(run_key(config, seed, self.dataset))
        late = bool(run_kwargs.get("late"))
        found = None if self.mode == "refresh" else self.get(config, seed)   # read once
        if found is not None and (not late or has_late(found)):              # what has() says
            return found
        if self.mode == "use" and os.environ.get(REQUIRE_COMPARISON) == "1":
            what = "no stored run" if found is None else "no late measurement (convergence) in the stored run"
            raise ReproductionError(
                f"{what} of {config.family} with seed {seed} on {self.dataset} (key "
                f"{run_key(config, seed, self.dataset)}) in {self.reference}: under the test suite a page "
                "trains only the stated subset it checks, never a sweep. If the data changed (another corpus "
                "or package version gives another dataset key), remake the store with -p stored_runs extend")
        _, _, metrics = ex.run(config, data, seed, **run_kwargs)
        metrics = {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
        if found is not None:
            # A stored run retrained to add its late measurement: its final metrics must be the ones
            # stored (the same run, on this machine), or the store would silently change.
            problems = [f"{name}: stored {found.metrics[name]:.6g}, retrained {metrics[name]:.6g}"
                        for name, tol in {**RETRAIN_TOLERANCES, "fvu_wt_scaled": ONE_SEED}.items()
                        if name in found.metrics and not tol.allows(float(found.metrics[name]),
                                                                     float(metrics[name]))]
            if problems:
                raise ReproductionError(f"retraining stored run {found.key} to measure its convergence gave "
                                        "other final metrics than the stored ones (" + "; ".join(problems)
                                        + "): remake the store with -p stored_runs refresh")
        run = StoredRun(run_key(config, seed, self.dataset), self.dataset, int(seed), config.as_dict(),
                        metrics, code_version(), time.strftime("%Y-%m-%d %H:%M:%S"))
        folder = self.working if self.mode == "use" else self.reference
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path(folder, run.key), run.as_json())
        self.trained.append(run.key)
        return run

    def grid(self, points, data, seeds, progress: bool = True, desc: str = "grid", **budget) -> pd.DataFrame:
        """:func:`dfsae.paper.experiments.run_grid` through the store: one row per (point, seed) with the
        point's label, family and options, and columns ``stored`` (read, not trained) and
        ``code_version``. Every point's config is checked before anything trains."""
        points = list(points)
        run_kwargs = {k: budget.pop(k) for k in ex.RUN_ARGUMENTS if k in budget}
        configs = []
        for p in points:
            if "family" not in p or "label" not in p:
                raise ValueError(f"each point needs a 'family' and a 'label'; got {p!r}")
            options = {k: v for k, v in p.items() if k not in ("family", "label")}
            configs.append(ex.RunConfig.of(p["family"], **{**budget, **options}))
        rows = []
        todo = [(p, c, s) for p, c in zip(points, configs, strict=True) for s in seeds]
        for point, config, seed in tqdm(todo, desc=desc, disable=not progress, leave=False):
            trained_before = len(self.trained)
            run = self.run(config, data, seed, **run_kwargs)
            options = {k: v for k, v in point.items() if k not in ("family", "label")}
            rows.append({"config": point["label"], "seed": seed, **run.metrics, "family": point["family"],
                         **options, "stored": len(self.trained) == trained_before,
                         "code_version": run.code_version})
        frame = pd.DataFrame(rows)
        frame.attrs["runs"] = {p["label"]: c.as_dict() for p, c in zip(points, configs, strict=True)}
        return frame

    def training_seconds(self) -> tuple[int, float]:
        """(number of runs, total training seconds) of every run this store was asked for, as
        each was measured when it was trained (on whichever machine trained it)."""
        seconds = []
        for key in sorted(self.used):
            for folder in (self.reference, self.working):
                path = self._path(folder, key)
                if path.exists():
                    seconds.append(float(json.loads(path.read_text())["metrics"].get("seconds", 0.0)))
                    break
        return len(seconds), float(sum(seconds))

    def prune(self) -> list[Path]:
        """Delete the reference's runs this store was not asked for, after a sweep has been made
        or remade (``mode`` "extend" or "refresh"), so that no stale run stays beside the ones a
        notebook reads; returns the deleted paths. Refused in "use" mode, which never writes the
        reference."""
        if self.mode == "use":
            raise ValueError("prune changes the reference: only with mode='extend' or 'refresh'")
        stale = [p for p in sorted(self.reference.glob("*.json")) if p.stem not in self.used]
        for p in stale:
            p.unlink()
        return stale

    def verify(self, config: ex.RunConfig, data, seed: int, tolerances: dict[str, Tolerance],
               **run_kwargs) -> list[str]:
        """Retrain one stored run and compare the metrics named in ``tolerances`` with the stored
        values; returns one line per metric outside its tolerance. Refuses a run that is not
        stored (nothing to compare) and an empty ``tolerances`` (nothing compared)."""
        return self.retrain(config, data, seed, tolerances, **run_kwargs)[1]

    def retrain(self, config: ex.RunConfig, data, seed: int, tolerances: dict[str, Tolerance],
                **run_kwargs):
        """:meth:`verify`, also returning the retrained model: (model, problems). A notebook
        that needs a stored run's weights (a gallery, a checkpoint) retrains it this way, so the
        weights it shows are checked against the stored metrics."""
        if not tolerances:
            raise ValueError("verify needs at least one metric to compare")
        stored = self.get(config, seed)
        if stored is None:
            key = run_key(config, seed, self.dataset)
            raise ValueError(f"no stored run of {config.family} (key {key}) with seed {seed} in "
                             f"{self.reference} or {self.working}: nothing to verify")
        missing = sorted(set(tolerances) - set(stored.metrics))
        if missing:
            raise ValueError(f"the stored run has no {missing}; it reports {sorted(stored.metrics)}")
        model, _, metrics = ex.run(config, data, seed, **run_kwargs)
        problems = []
        for name, tolerance in tolerances.items():
            old, new = float(stored.metrics[name]), float(metrics[name])
            if not tolerance.allows(old, new):
                problems.append(f"{config.family} seed {seed} {name}: stored {old:.6g}, retrained {new:.6g}, "
                                f"tolerance {tolerance.describe(old)}")
        return model, problems
