"""What a notebook reports, with the tolerance each number is checked by on re-execution.

Training is not bitwise reproducible across CPUs (BLAS kernels, instruction sets) or thread
counts, so a re-executed notebook cannot be compared with its stored outputs digit for digit.
Instead every number a notebook reports goes through a :class:`Record`, together with a
:class:`Tolerance` and the reason for it. The record is stored in the notebook's outputs; when
the notebook runs again with the same parameters (``pytest --nbval notebooks``, or
``python -m dfsae.paper.reproduce``), :meth:`Record.finish` compares every number with its stored
value and raises :class:`ReproductionError`, naming the quantity, both values and the tolerance,
for each one outside its tolerance.

* Means over seeds get a tolerance from their spread: two means of ``n`` independent runs with
  standard deviation ``sd`` differ by less than ``k·sd·√(2/n)`` (``k = 3``) unless something
  changed; a standard deviation gets its own bound, a factor from the F distribution of the
  ratio of two sds of ``n`` seeds (:meth:`Tolerance.sd_spread`), plus its mean's floor.
* Numbers without a spread (one seed, derived ratios) get a stated relative or absolute bound;
  counts get a stated slack; wall-clock times are machine-dependent and are only checked to
  be finite and positive.
* Text (evidence sentences) is compared word for word, and each number in it with the
  tolerance given for the text.
* Verdicts are categories: a verdict must be the same, except that "inconclusive" may meet
  "held" or "failed" when the stored number sits within two tolerances of the verdict's threshold.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MIME = "application/vnd.dfsae.record+json"
INCONCLUSIVE = "inconclusive at this budget"
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:e[-+]?\d+)?")


class ReproductionError(AssertionError):
    """A re-executed notebook reports a number outside the tolerance of its stored value."""


@dataclass(frozen=True)
class Tolerance:
    """A number passes when ``abs(new − stored) ≤ abs + rel·abs(stored)``; with ``machine=True``
    it is only checked to be finite and positive. With ``factor`` f > 1 (a standard deviation,
    :meth:`sd_spread`) it passes when ``stored/f − w ≤ new ≤ stored·f + w``, w = abs + rel·abs(stored)."""

    abs: float = 0.0
    rel: float = 0.0
    basis: str = ""
    machine: bool = False
    factor: float = 1.0

    @classmethod
    def relative(cls, rel: float, abs: float = 0.0, basis: str = "stated relative bound"):
        return cls(abs=abs, rel=rel, basis=basis)

    @classmethod
    def absolute(cls, abs: float, basis: str = "stated absolute bound"):
        return cls(abs=abs, basis=basis)

    @classmethod
    def count(cls, slack: int, rel: float = 0.0):
        return cls(abs=float(slack), rel=rel, basis=f"count, stated slack ±{slack}"
                   + (f" or {rel:.0%}" if rel else ""))

    @classmethod
    def machine_dependent(cls):
        return cls(machine=True, basis="wall-clock time on this machine: checked to be finite and > 0 only")

    @classmethod
    def exact(cls):
        return cls(basis="exact (does not depend on training)")

    @classmethod
    def spread(cls, sd: float, n: int, k: float = 3.0, floor: Tolerance | None = None,
               at: float | None = None):
        """``k·sd·√(2/n)``, the bound on the difference of two means of ``n`` seeds, or the
        ``floor`` if that is wider: the larger of the two, never their sum. ``at`` is the stored
        value the floor's relative part is taken of (without it, the relative part stays
        relative and is compared with the band's absolute width only through ``abs``)."""
        floor = floor or cls()
        band = k * float(sd) * math.sqrt(2.0 / n) if n > 1 and math.isfinite(sd) else 0.0
        if at is not None and math.isfinite(at):
            return cls(abs=max(band, floor.width(at)), rel=0.0,
                       basis=f"the larger of {k:g}·sd·√(2/n), sd = {sd:.3g} over n = {n} seeds"
                       + (f", and {floor.basis}" if floor.basis else ""))
        return cls(abs=max(band, floor.abs), rel=floor.rel,
                   basis=f"{k:g}·sd·√(2/n), sd = {sd:.3g} over n = {n} seeds"
                   + (f"; at least {floor.basis}" if floor.basis else ""))

    @classmethod
    def sd_spread(cls, sd: float, n: int, k: float = 3.0, floor: Tolerance | None = None,
                  at: float | None = None):
        """The bound on a standard deviation of ``n`` seeds, its own and not its mean's: two sds
        s, s' of n seeds from one distribution have (s'/s)² ~ F(n − 1, n − 1), so s' lies within a
        factor f = √F⁻¹(1 − α/2) of s, α the two-sided tail of ``k`` normal sds (k = 3: 0.27 %).
        The ``floor`` of its mean, taken at the mean ``at``, is added as an absolute margin, so an
        sd of zero (every seed equal) may grow by what one seed may move."""
        from scipy import stats

        if n < 2:
            raise ValueError(f"an sd needs at least 2 seeds, got n={n}")
        alpha = 2 * stats.norm.sf(k)
        factor = math.sqrt(float(stats.f.ppf(1 - alpha / 2, n - 1, n - 1)))
        margin = (floor or cls()).width(at if at is not None and math.isfinite(at) else 0.0)
        return cls(abs=margin, factor=factor,
                   basis=f"an sd of n = {n} seeds: within a factor {factor:.3g} (F({n - 1}, {n - 1}) at "
                         f"{k:g} sd) plus {margin:.3g}")

    def width(self, stored: float) -> float:
        return self.abs + self.rel * abs(stored)

    def allows(self, stored, new) -> bool:
        if self.machine:
            return new is not None and math.isfinite(new) and new > 0
        if stored is None or new is None:
            return stored is None and new is None
        if math.isnan(stored) or math.isnan(new):
            return math.isnan(stored) and math.isnan(new)
        if math.isinf(stored) or math.isinf(new):
            return stored == new
        if self.factor > 1:
            w = self.width(stored) * (1 + 1e-9) + 1e-12
            return stored / self.factor - w <= new <= stored * self.factor + w
        return abs(new - stored) <= self.width(stored) * (1 + 1e-9) + 1e-12

    def describe(self, stored) -> str:
        if self.machine:
            return self.basis
        if self.factor > 1:
            low, high = stored / self.factor - self.width(stored), stored * self.factor + self.width(stored)
            return (f"[{low:.3g}, {high:.3g}] "
                    f"({self.basis})")
        return f"±{self.width(stored):.3g} ({self.basis})"


def metric_floors(hidden_dim: int, slack: int = 3, rel: float = 0.05) -> dict:
    """Floors for the metrics of :func:`dfsae.metrics.evaluate` that count units — on another
    machine a unit or two more may die or come alive — and for wall-clock times, which are
    machine-dependent: ``{column: Tolerance}`` for :meth:`Record.frame`. Counts may move by
    ``slack`` units or by ``rel`` of themselves, whichever is larger."""
    count = Tolerance.count(slack, rel)
    return {"dead": count, "low_var": count, "live": count,
            "dead_frac": Tolerance.relative(rel, slack / hidden_dim,
                                            f"count, stated slack ±{slack} units or {rel:.0%}"),
            "seconds": Tolerance.machine_dependent()}


def judge(margin: float, tolerance: float, held: str = "held", failed: str = "failed") -> str:
    """A verdict from the signed distance of a number to its threshold (positive: on the side
    of ``held``). Within ``tolerance`` of the threshold the verdict is inconclusive, so no
    verdict can turn from held into failed (or back) while its number moves within tolerance."""
    if not math.isfinite(margin):
        return held if margin > 0 else failed
    if abs(margin) <= tolerance:
        return INCONCLUSIVE
    return held if margin > 0 else failed


def judge_all(margins, tolerances) -> str:
    """One verdict over several settings (e.g. dictionary sizes): held if held at every one,
    failed if failed at every one, partly held if mixed; inconclusive when any is inconclusive
    (unless all are)."""
    each = [judge(float(m), float(t)) for m, t in zip(margins, tolerances, strict=True)]
    if INCONCLUSIVE in each:
        return INCONCLUSIVE
    return "held" if set(each) == {"held"} else ("failed" if set(each) == {"failed"} else "partly held")


def judge_curve(margins, tolerances) -> str:
    """One verdict along a curve (e.g. the points of a sweep): partly held when some point has
    clearly held and another clearly failed, whatever the points in between; otherwise as
    :func:`judge_all` (held or failed only when every point is decided alike); inconclusive
    when there are no points to judge."""
    if len(margins) == 0:
        return INCONCLUSIVE
    each = {judge(float(m), float(t)) for m, t in zip(margins, tolerances, strict=True)}
    if {"held", "failed"} <= each:
        return "partly held"
    return judge_all(margins, tolerances)


def closest_to_threshold(margins, tolerances) -> tuple[float, float]:
    """The (margin, tolerance) of the setting nearest to deciding differently, for the record."""
    pairs = list(zip(map(float, margins), map(float, tolerances), strict=True))
    if not pairs:
        return math.nan, 0.0
    return min(pairs, key=lambda mt: abs(mt[0]) - mt[1])


def _number(value):
    """A float as JSON can hold it: NaN and ±inf become the strings "nan", "inf", "-inf"."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


def _float(value):
    return None if value is None else float(value)


def _clean(obj):
    """``obj`` with every non-finite float written as a string, so that it is valid JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _numbers_in(text: str):
    numbers = [float(m.replace(",", "")) for m in NUMBER.findall(text) if any(c.isdigit() for c in m)]
    return NUMBER.sub("#", text), numbers


class Record:
    """The numbers, texts, tables and verdicts one notebook reports, each with its tolerance.

    ``notebook`` is the name of the notebook's stored file (``NAME`` of ``NAME.ipynb``, looked
    for in the working directory) and ``parameters`` the values of its parameters cell: the
    stored record is compared only when they are the same.
    """

    def __init__(self, notebook: str, parameters: dict, text_tolerance: Tolerance | None = None):
        self.notebook = notebook
        self.parameters = json.loads(json.dumps(parameters, default=str))
        self.text_tolerance = text_tolerance or Tolerance.relative(
            0.25, 1e-3, "stated bound for numbers quoted in a sentence; each is also checked at its source")
        self.entries: dict[str, dict] = {}

    # -- registering ------------------------------------------------------------------------
    def _add(self, name: str, entry: dict) -> None:
        if name in self.entries:
            raise ValueError(f"{name!r} is recorded twice in {self.notebook}")
        self.entries[name] = entry

    def number(self, name: str, value, tolerance: Tolerance, fmt: str | None = None,
               glue: bool = True) -> None:
        """Record a number; glue it for the prose, formatted with ``fmt`` (e.g. ``".3f"``) or else
        by the book's rule (:func:`dfsae.paper.numbers.number`, counts with separators)."""
        if not isinstance(tolerance, Tolerance):
            raise TypeError(f"tolerance of {name!r} must be a Tolerance, got {tolerance!r}")
        self._add(name, {"kind": "number", "value": _number(value), "tolerance": asdict(tolerance)})
        if glue:
            _glue(name, format(value, fmt) if fmt else _default_text(value))
        return None

    def text(self, name: str, text: str, tolerance: Tolerance | None = None, glue: bool = True) -> None:
        """Record a sentence: its words must match, and each number in it within ``tolerance``."""
        tolerance = tolerance or self.text_tolerance
        self._add(name, {"kind": "text", "value": str(text), "tolerance": asdict(tolerance)})
        if glue:
            _glue(name, str(text))
        return None

    def verdict(self, name: str, verdict: str, evidence: str, margin: float, tolerance: float,
                evidence_tolerance: Tolerance | None = None) -> None:
        """Record a verdict (glued as ``NAME_verdict``) with its evidence (``NAME_evidence``), the
        signed margin of its deciding number from the threshold, and that number's tolerance."""
        self._add(name, {"kind": "verdict", "value": verdict, "margin": _number(margin),
                         "tolerance": asdict(Tolerance.absolute(tolerance, "of the deciding number"))})
        _glue(f"{name}_verdict", verdict)
        self.text(f"{name}_evidence", evidence, evidence_tolerance)
        return None

    def judged(self, name: str, judgement, evidence: str,
               evidence_tolerance: Tolerance | None = None) -> None:
        """Record a verdict decided by seed statistics (a :class:`dfsae.paper.judgement.Judgement`),
        glued as ``NAME_verdict``, with its decision data — the seeds behind it (or
        ``deterministic``), the printed rule and each interval — and its evidence
        (``NAME_evidence``). A re-execution must reach the same verdict on the same seeds."""
        from . import judgement as jm

        if not isinstance(judgement, jm.Judgement):
            raise TypeError(f"{name!r}: a verdict must be a Judgement made by dfsae.paper.judgement "
                            f"from seed replicates, got {judgement!r}")
        if not judgement.deterministic and (judgement.seeds is None or judgement.seeds < jm.MIN_SEEDS):
            raise ValueError(f"{name!r}: judged on {judgement.seeds} seeds; a verdict needs at least "
                             f"{jm.MIN_SEEDS}")
        self._add(name, {"kind": "verdict", **_clean(judgement.as_entry()), "margin": None,
                         "tolerance": asdict(Tolerance.exact())})
        _glue(f"{name}_verdict", judgement.verdict)
        self.text(f"{name}_evidence", evidence, evidence_tolerance)
        return None

    def frame(self, name: str, frame, by: str, columns=None, k: float = 3.0,
              floors: dict | None = None, default_floor: Tolerance | None = None):
        """Record the mean and sd over seeds of every numeric column of ``frame`` per ``by`` group.

        Means are checked within ``k·sd·√(2/n)`` but at least ``floors[column]`` (default
        ``default_floor``; a count column such as ``dead`` wants a slack); groups of one seed
        get the floor alone; sds within their own bound (:meth:`Tolerance.sd_spread`).
        """
        floors = floors or {}
        default_floor = default_floor or Tolerance.relative(0.02, 1e-6, "2 % relative")
        numeric = frame.select_dtypes("number")
        columns = [c for c in (columns or numeric.columns) if c in numeric.columns and c != "seed"]
        for group, rows in frame.groupby(by, sort=False):
            n = len(rows)
            for col in columns:
                values = rows[col].to_numpy(dtype=float)
                floor = floors.get(col, default_floor)
                mean = float(values.mean())
                if floor.machine:
                    self._add(f"{name}[{group}].{col}", {"kind": "number", "value": _number(mean),
                                                         "tolerance": asdict(floor)})
                    continue
                sd = float(np.std(values, ddof=1)) if n > 1 else float("nan")
                tol = Tolerance.spread(sd, n, k, floor, at=mean) if n > 1 else floor
                self._add(f"{name}[{group}].{col}", {"kind": "number", "value": _number(mean),
                                                     "tolerance": asdict(tol)})
                if n > 1 and math.isfinite(sd):
                    # An sd gets its own bound (F-distributed ratio of two sds), not its mean's.
                    sd_tol = Tolerance.sd_spread(sd, n, k, floor, at=mean)
                    self._add(f"{name}[{group}].{col}.sd", {"kind": "number", "value": _number(sd),
                                                             "tolerance": asdict(sd_tol)})
        return None

    def value(self, name: str) -> float:
        """The recorded value of entry ``name`` (e.g. ``"runs[C].l0"``)."""
        return _float(self._entry(name)["value"])

    def width(self, name: str) -> float:
        """The absolute tolerance of entry ``name`` around its value."""
        entry = self._entry(name)
        return Tolerance(**entry["tolerance"]).width(_float(entry["value"]))

    def quote(self, glue_name: str, name: str, fmt: str | None = None) -> None:
        """Glue the recorded entry ``name`` for the prose, formatted with ``fmt`` or else by the
        book's rule (:func:`dfsae.paper.numbers.number`); it is checked through the entry."""
        text = format(self.value(name), fmt) if fmt else _default_text(self.value(name))
        _glue(glue_name, text)
        return None

    def _entry(self, name: str) -> dict:
        if name not in self.entries:
            raise KeyError(f"{name!r} is not recorded in {self.notebook}; "
                           f"recorded: {sorted(self.entries)[:20]} …")
        return self.entries[name]

    def table(self, name: str, table, tolerance: Tolerance):
        """Record every numeric cell of a displayed table with one tolerance."""
        for row, values in table.iterrows():
            for col, value in values.items():
                if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                    self._add(f"{name}[{row}].{col}", {"kind": "number", "value": _number(value),
                                                       "tolerance": asdict(tolerance)})
                elif isinstance(value, str):
                    self._add(f"{name}[{row}].{col}", {"kind": "text", "value": value,
                                                       "tolerance": asdict(tolerance)})
        return table

    # -- storing and checking ---------------------------------------------------------------
    def to_json(self) -> dict:
        return _clean({"notebook": self.notebook, "parameters": self.parameters, "entries": self.entries})

    def finish(self, stored_dir=".") -> str:
        """Store the record in the notebook's outputs, then compare it with the stored one.

        Skipped (with a message) when no record is stored, when the parameters (other than
        :data:`RESULT_NEUTRAL` ones, such as the results folder) differ from the
        stored run's, or when ``DFSAE_NEW_REFERENCE=1`` (set by ``reproduce --new-reference``).
        A trial run with other parameters is compared instead with its own earlier run, when
        ``reproduce`` names one (``DFSAE_EARLIER_RUN``) and it has the same parameters.
        Where a comparison is required (``DFSAE_REQUIRE_COMPARISON=1``, which the test suite sets,
        so ``pytest --nbval notebooks`` cannot pass by comparing nothing) a skip other than a new
        reference raises :class:`ReproductionError`."""
        from IPython.display import display

        display({MIME: self.to_json(), "text/plain": f"<record of {len(self.entries)} reported values>"},
                raw=True)
        if os.environ.get("DFSAE_NEW_REFERENCE") == "1":
            return "new reference: nothing compared"
        stored = stored_record(Path(stored_dir) / f"{self.notebook}.ipynb")
        changed = None if stored is None else differing_parameters(stored["parameters"], self.parameters)
        earlier = os.environ.get(EARLIER_RUN)      # a trial's own earlier run (set by reproduce)
        if changed and earlier and Path(earlier).exists():
            trial = stored_record(earlier)
            if trial is not None and not differing_parameters(trial["parameters"], self.parameters):
                problems = compare(trial["entries"], self.entries)
                if problems:
                    raise ReproductionError(
                        f"{len(problems)} reported value(s) of {self.notebook} differ from the earlier run "
                        f"with these parameters ({earlier}) by more than their tolerance:\n  "
                        + "\n  ".join(problems))
                return (f"parameters differ from the stored run ({', '.join(changed)}); all "
                        f"{len(self.entries)} reported values within tolerance of the earlier run with these "
                        "parameters")
        skipped = ("no stored record" if stored is None else
                   f"parameters differ from the stored run ({', '.join(changed)})" if changed else None)
        if skipped:
            if os.environ.get(REQUIRE_COMPARISON) == "1":
                where = Path(stored_dir).resolve()
                raise ReproductionError(f"{self.notebook}: {skipped} (looked in {where}), so nothing would "
                                        "be compared, but this run must compare with the stored one "
                                        f"({REQUIRE_COMPARISON}=1)")
            return f"{skipped}: nothing compared"
        problems = compare(stored["entries"], self.entries)
        if problems:
            raise ReproductionError(
                f"{len(problems)} reported value(s) of {self.notebook} differ from the stored run by more "
                "than their tolerance:\n  " + "\n  ".join(problems))
        return f"all {len(self.entries)} reported values within tolerance of the stored run"


REQUIRE_COMPARISON = "DFSAE_REQUIRE_COMPARISON"
EARLIER_RUN = "DFSAE_EARLIER_RUN"
RESULT_NEUTRAL = ("results_dir", "cache_dir", "device")
"""Parameters that say where a run writes or computes, not what it computes: they never make two
runs incomparable."""


def differing_parameters(stored: dict, new: dict) -> list[str]:
    """The names whose values differ between two parameter sets, except :data:`RESULT_NEUTRAL` ones."""
    names = (set(stored) | set(new)) - set(RESULT_NEUTRAL)
    return sorted(k for k in names if stored.get(k) != new.get(k))


def _default_text(value) -> str:
    from . import numbers

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return numbers.count(value)
    return numbers.number(value)


def _glue(name, value):
    from myst_nb import glue

    glue(name, value, display=False)


def stored_record(path) -> dict | None:
    """The record stored in the outputs of the notebook at ``path``, or None."""
    path = Path(path)
    if not path.exists():
        return None
    for cell in json.loads(path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            if MIME in output.get("data", {}):
                data = output["data"][MIME]
                return json.loads(data) if isinstance(data, str) else data
    return None


def compare(stored: dict, new: dict) -> list[str]:
    """One line per reported value of ``new`` outside the tolerance of its ``stored`` value."""
    problems = []
    for name in sorted(set(stored) - set(new)):
        problems.append(f"{name}: stored but no longer reported")
    for name in sorted(set(new) - set(stored)):
        problems.append(f"{name}: reported but not in the stored run")
    for name in [n for n in new if n in stored]:
        old, cur = stored[name], new[name]
        tol = Tolerance(**{k: _float(v) if k in ("abs", "rel", "factor") else v
                           for k, v in old["tolerance"].items()})
        if old["kind"] != cur["kind"]:
            problems.append(f"{name}: stored as a {old['kind']}, now a {cur['kind']}")
        elif old["kind"] == "number":
            if not tol.allows(_float(old["value"]), _float(cur["value"])):
                problems.append(f"{name}: stored {old['value']!r}, new {cur['value']!r}, "
                                f"tolerance {tol.describe(_float(old['value']) or 0.0)}")
        elif old["kind"] == "text":
            skeleton_old, nums_old = _numbers_in(old["value"])
            skeleton_new, nums_new = _numbers_in(cur["value"])
            if skeleton_old != skeleton_new or len(nums_old) != len(nums_new):
                problems.append(f"{name}: text changed: stored {old['value']!r}, new {cur['value']!r}")
                continue
            for i, (a, b) in enumerate(zip(nums_old, nums_new, strict=True)):
                if not tol.allows(a, b):
                    problems.append(f"{name} (number {i + 1} of the text): stored {a:g}, new {b:g}, "
                                    f"tolerance {tol.describe(a)}; stored text {old['value']!r}")
        elif old["kind"] == "verdict" and "rule" in old and not _same_judgement(old, cur):
            problems.append(f"{name}: verdict stored {old['value']!r} on {old.get('seeds')} seeds "
                            f"{_point_verdicts(old)}, new {cur['value']!r} on {cur.get('seeds')} seeds "
                            f"{_point_verdicts(cur)}; a point may turn into or out of 'inconclusive' only "
                            "where its stored interval lay within its half-width plus its slack of the "
                            "threshold")
        elif old["kind"] == "verdict" and "rule" not in old and old["value"] != cur["value"]:
            near = old["margin"] is not None and abs(_float(old["margin"])) <= 2 * tol.abs
            if not (near and INCONCLUSIVE in (old["value"], cur["value"])):
                problems.append(f"{name}: verdict stored {old['value']!r}, new {cur['value']!r} "
                                f"(stored margin {_float(old['margin']):.3g}, tolerance {tol.abs:.3g})")
    return problems


def _point_verdicts(entry: dict) -> dict:
    return {label: i.get("verdict") for label, i in entry.get("intervals", {}).items()}


def _near_threshold(point: dict) -> bool:
    """Whether a stored point's interval lay so close to its threshold that a re-execution
    elsewhere may legitimately decide it differently: an edge within the interval's half-width
    plus the point's slack (how far its estimate may move on another machine) of a threshold."""
    t = point.get("threshold")
    if t is None:
        return False
    low, high = _float(point["low"]), _float(point["high"])
    reach = (high - low) / 2 + float(point.get("slack") or 0.0)
    return any(min(abs(low - e), abs(high - e)) <= reach for e in (t if isinstance(t, list) else [t]))


def _same_judgement(old: dict, new: dict) -> bool:
    """A judged verdict reproduces when it rests on as many seeds and every point's verdict is the
    same, except that a point near its threshold (:func:`_near_threshold`) may turn into or out of
    "inconclusive" (and the verdict over the points with it)."""
    if old.get("seeds") != new.get("seeds") or set(old["intervals"]) != set(new["intervals"]):
        return False
    for label, point in old["intervals"].items():
        a, b = point["verdict"], new["intervals"][label]["verdict"]
        if a != b and not ("inconclusive" in (a, b) and _near_threshold(point)):
            return False
    return True
