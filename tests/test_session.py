"""A scripted session on 05_1 (it runs in seconds), as a user would run it: a trial run, a default
run, Ctrl-C mid-run, a full disk under the results folder and two runs at once. The stored
notebook must come out byte-identical, and a default run must still compare against it."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dfsae.paper import experiments as ex

ROOT = Path(__file__).resolve().parents[1]
NAME = "05_1_identity"
FULL_DISK = textwrap.dedent('''
    # Loaded at interpreter start (PYTHONPATH): every write under $DFSAE_FULL_DISK fails with ENOSPC.
    import errno, os, pathlib
    _full = os.environ.get("DFSAE_FULL_DISK")
    if _full:
        _real = pathlib.Path.write_bytes
        def _write_bytes(self, data):
            if str(self.resolve()).startswith(_full):
                raise OSError(errno.ENOSPC, "No space left on device")
            return _real(self, data)
        pathlib.Path.write_bytes = _write_bytes
''')


@pytest.fixture
def book(tmp_path):
    (tmp_path / "notebooks").mkdir()
    for suffix in (".md", ".ipynb"):
        shutil.copy(ROOT / "notebooks" / f"{NAME}{suffix}", tmp_path / "notebooks")
    (tmp_path / "_toc.yml").write_text(f"format: jb-book\nroot: notebooks/{NAME}\n")
    return tmp_path


def reproduce(book, *args, env=None, wait=True):
    command = [sys.executable, "-m", "dfsae.paper.reproduce", "--book", str(book), "--no-progress", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, **(env or {})}, start_new_session=True)
    if not wait:
        return process
    out, _ = process.communicate(timeout=600)
    return process.returncode, out


def stop_group(process):
    """Kill whatever of ``process``'s group outlived it (a notebook runner it started), so an
    interrupted run does not keep a core busy for the rest of the suite."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def outputs(path):
    cells = json.loads(Path(path).read_text())["cells"]
    texts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


def leftovers(book):
    """Temporary notebooks, temporary result files and locks anywhere in the book."""
    return sorted(str(p.relative_to(book)) for p in book.rglob(".*") if p.is_file())


def wait_for(predicate, timeout=120):
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the run did not get there in time")
        time.sleep(0.2)


def test_a_session_loses_nothing_and_still_compares(book, tmp_path_factory):
    stored = (book / "notebooks" / f"{NAME}.ipynb").read_bytes()
    default = book / "runs" / f"{NAME}-default"

    # 1. A trial run with other parameters goes to its own folder.
    trial_env = {"DFSAE_REQUIRE_COMPARISON": "0"}     # nothing to compare a trial with: allowed here
    code, out = reproduce(book, "--only", NAME, "-p", "n_samples", "100", env=trial_env)
    assert code == 0, out
    (trial,) = [p for p in (book / "runs").iterdir() if p.name != f"{NAME}-default"]
    assert "parameters differ from the stored run (n_samples)" in outputs(trial / f"{NAME}.ipynb")
    assert ex.load_results(trial / "results" / "identity.csv")[1]["parameters"]["n_samples"] == 100
    code, out = reproduce(book, "--only", NAME, "-p", "n_samples", "100")     # the same trial again ...
    assert code == 0, out
    assert "within tolerance of the earlier run with these parameters" in outputs(trial / f"{NAME}.ipynb")

    # 2. A default run compares against the stored notebook.
    code, out = reproduce(book, "--only", NAME)
    assert code == 0, out
    assert "within tolerance of the stored run" in outputs(default / f"{NAME}.ipynb")
    first_run = (default / f"{NAME}.ipynb").read_bytes()
    results = default / "results" / "identity.csv"
    pair = (results.read_bytes(), results.with_suffix(".json").read_bytes())

    # 3. Ctrl-C mid-run: nothing half-written, no lock left. The run is made long (many epochs) so
    # that the interrupt lands while it trains, on a fast machine too.
    before = set((book / "runs").iterdir())
    process = reproduce(book, "--only", NAME, "-p", "train_epochs", "100000", wait=False, env=trial_env)
    wait_for(lambda: any((p / "results" / ".dfsae-lock").exists() for p in (book / "runs").iterdir()))
    (long_run,) = set((book / "runs").iterdir()) - before
    # Interrupt while a cell runs: after the first cells' outputs are written to the temporary file.
    wait_for(lambda: any(p.stat().st_size > 20_000 for p in long_run.glob(".*.ipynb")))
    os.killpg(process.pid, signal.SIGINT)
    process.communicate(timeout=120)
    stop_group(process)
    assert process.returncode != 0
    assert not (long_run / f"{NAME}.ipynb").exists()                # nothing half-written
    assert (default / f"{NAME}.ipynb").read_bytes() == first_run and leftovers(book) == []

    # 4. A full disk under the results folder: the run fails naming the file; the pair stays.
    hooks = tmp_path_factory.mktemp("hooks")
    (hooks / "sitecustomize.py").write_text(FULL_DISK)
    env = {"PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]),
           "DFSAE_FULL_DISK": str((default / "results").resolve())}
    code, out = reproduce(book, "--only", NAME, env=env)
    assert code != 0 and "No space left on device" in out and "identity" in out
    assert (results.read_bytes(), results.with_suffix(".json").read_bytes()) == pair
    assert (default / f"{NAME}.ipynb").read_bytes() == first_run and leftovers(book) == []

    # 5. Two runs at once: the second stops at once and says who holds the folder.
    first = reproduce(book, "--only", NAME, wait=False)
    wait_for(lambda: (default / "results" / ".dfsae-lock").exists())
    code, out = reproduce(book, "--only", NAME)
    assert code != 0 and f"in use by process {first.pid}" in out
    out_first, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out_first
    assert ex.load_results(results)[1]["parameters"]["n_samples"] == 1000

    # The reference is untouched, and a default run still compares against it.
    assert (book / "notebooks" / f"{NAME}.ipynb").read_bytes() == stored
    assert "within tolerance of the stored run" in outputs(default / f"{NAME}.ipynb")
    assert leftovers(book) == []


def edit_record(path, change):
    """Apply ``change`` to the record stored in the outputs of the notebook at ``path``."""
    from dfsae.paper.record import MIME

    nb = json.loads(Path(path).read_text())
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if MIME in output.get("data", {}):
                data = output["data"][MIME]
                data = json.loads(data) if isinstance(data, str) else data
                change(data)
                output["data"][MIME] = data
    Path(path).write_text(json.dumps(nb))


def nbval(path):
    env = {**os.environ, "DFSAE_REQUIRE_COMPARISON": "1"}
    env.pop("DFSAE_NEW_REFERENCE", None)
    command = [sys.executable, "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider", str(path)]
    result = subprocess.run(command, cwd=path.parent, capture_output=True, text=True, env=env, timeout=600)
    return result.returncode, result.stdout + result.stderr


def first_number(entries):
    return next(name for name, e in entries.items() if e["kind"] == "number" and e["value"] not in (0, None)
                and not e["tolerance"].get("machine"))


@pytest.mark.parametrize("edit", ["parameters", "value"])
def test_nbval_fails_on_an_edited_stored_record(book, edit):
    """Edited stored parameters would make the run compare nothing; a stored value moved past its
    tolerance would differ: either way the re-executed notebook fails."""
    path = book / "notebooks" / f"{NAME}.ipynb"

    def change(record):
        if edit == "parameters":
            record["parameters"]["n_samples"] = 999
        else:
            from dfsae.paper.record import Tolerance

            entry = record["entries"][first_number(record["entries"])]
            tolerance = Tolerance(**entry["tolerance"])
            entry["value"] = float(entry["value"]) + 2 * tolerance.width(float(entry["value"])) + 1.0

    edit_record(path, change)
    code, out = nbval(path)
    expected = "parameters differ from the stored run (n_samples)" if edit == "parameters" else \
        "differ from the stored run by more than their tolerance"
    assert code != 0 and expected in out, out[-3000:]
