"""The stored verdicts: each one that a notebook has moved to the book's rule carries its decision
data (seeds ≥ MIN_SEEDS or an exact computation, the printed rule, the intervals), and the
notebooks that still judge the old way are named here, so that the list can only shrink."""

from pathlib import Path

import pytest

from dfsae.paper import judgement as J
from dfsae.paper.record import stored_record

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
# Notebooks whose verdicts are not yet decided by seed statistics (their margins come from
# reproduction tolerances); every other notebook's verdicts must carry their decision data.
NOT_YET_JUDGED: set[str] = set()


def records():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        rec = stored_record(path)
        if rec is not None:
            yield path.stem, rec


def verdicts(rec):
    return {name: e for name, e in rec["entries"].items() if e["kind"] == "verdict"}


@pytest.mark.parametrize("name,rec", list(records()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_judged_verdict_carries_its_seeds_rule_and_intervals(name, rec):
    entries = verdicts(rec)
    if name in NOT_YET_JUDGED:
        assert entries and not all("rule" in e for e in entries.values()), (
            f"{name} judges every verdict by the rule now: remove it from NOT_YET_JUDGED")
        return
    for key, e in entries.items():
        assert e.get("rule") == J.rule(), f"{name}: {key} was not judged by the printed rule"
        assert e.get("deterministic") is True or (e.get("seeds") or 0) >= J.MIN_SEEDS, (
            f"{name}: {key} rests on {e.get('seeds')} seeds")
        assert e["intervals"] or e.get("deterministic"), f"{name}: {key} stores no interval"
        for label, i in e["intervals"].items():
            assert i["low"] <= i["estimate"] <= i["high"], f"{name}: {key}[{label}] is not an interval"
            assert i["verdict"] in J.VERDICTS
        assert e["value"] in J.VERDICTS
