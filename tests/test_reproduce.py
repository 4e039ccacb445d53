"""python -m dfsae.paper.reproduce: parameters reach the notebook, failures leave nothing behind."""

import json

import pytest

from dfsae.paper import reproduce

NOTEBOOK = """---
jupytext:
  formats: ipynb,md:myst
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

```{code-cell} ipython3
:tags: [parameters]

value = 1
```

```{code-cell} ipython3
assert value > 0, "value must be positive"
print(value * 2)
```
"""


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    (tmp_path / "demo.md").write_text(NOTEBOOK)
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: demo\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def outputs(path):
    cells = json.loads(path.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_parameters_reach_the_notebook_in_its_run_folder(notebooks):
    assert reproduce.main(["--no-progress", "-p", "value", "21"]) == 0
    (run,) = (notebooks / "runs").iterdir()
    assert run.name.startswith("demo-") and run.name != "demo-default"
    assert outputs(run / "demo.ipynb").strip() == "42"
    assert not (notebooks / "demo.ipynb").exists()               # the stored notebook is not written
    assert reproduce.parameters_of(notebooks / "demo.md") == {"value": "1"}


def test_only_update_stored_rewrites_the_stored_notebook(notebooks):
    assert reproduce.main(["--no-progress", "--update-stored"]) == 0
    stored = (notebooks / "demo.ipynb").read_bytes()
    assert reproduce.main(["--no-progress", "-p", "value", "5"]) == 0
    assert reproduce.main(["--no-progress"]) == 0
    assert (notebooks / "demo.ipynb").read_bytes() == stored
    assert outputs(notebooks / "runs" / "demo-default" / "demo.ipynb") == "2\n"


def test_failed_run_keeps_previous_notebook_and_no_temp_files(notebooks):
    reproduce.main(["--no-progress", "--update-stored"])
    before = (notebooks / "demo.ipynb").read_text()
    for extra in ([], ["--update-stored"]):
        with pytest.raises(Exception, match="value must be positive"):
            reproduce.main(["--no-progress", *extra, "-p", "value", "-5"])
    assert sorted(p.name for p in notebooks.iterdir()) == ["_toc.yml", "demo.ipynb", "demo.md", "runs"]
    assert outputs(notebooks / "demo.ipynb") == "2\n" and before
    assert [p.name for p in (notebooks / "runs").rglob("*") if p.is_file()] == []


def test_a_second_run_on_the_same_folder_says_who_holds_it(notebooks):
    from dfsae.files import FolderInUseError, folder_lock

    with folder_lock(notebooks / "runs" / "demo-default", "another run"):
        with pytest.raises(FolderInUseError, match=r"in use by process \d+ .*another run"):
            reproduce.main(["--no-progress"])
    assert reproduce.main(["--no-progress"]) == 0                # released: the next run proceeds


def test_a_stale_lock_is_taken_over(tmp_path):
    import json as _json

    from dfsae.files import LOCK, folder_lock

    gone = {"pid": 2**22 + 12345, "host": __import__("socket").gethostname()}   # no such process
    (tmp_path / LOCK).write_text(_json.dumps(gone))
    with folder_lock(tmp_path, "me") as lock:
        assert _json.loads(lock.read_text())["purpose"] == "me"
    assert not (tmp_path / LOCK).exists()


def test_unknown_notebook_is_an_error(notebooks):
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "nope"])


@pytest.mark.parametrize("argv,message", [
    (["-p", "valeu", "3"], "unknown parameter"),                 # misspelled: refused, lists valid names
    (["-p", "value", "yes"], "same type as its default"),         # a string where an int is declared
    (["-p", "value", "[1, 2]"], "same type as its default"),
    (["-p", "value", "2", "-p", "value", "3"], "given more than once"),
])
def test_bad_parameters_are_refused_before_any_work(notebooks, capsys, argv, message):
    with pytest.raises(SystemExit):
        reproduce.main(["--no-progress", *argv])
    err = capsys.readouterr().err
    assert message in err and "value" in err
    assert not (notebooks / "demo.ipynb").exists()


def test_booleans_must_be_booleans():
    declared = {"nb": {"flag": "True"}}
    reproduce.check_parameters({"flag": False}, declared)
    with pytest.raises(ValueError, match="flag"):
        reproduce.check_parameters({"flag": "no"}, declared)


def test_notebooks_come_from_the_toc_with_quoting_pages_last(tmp_path):
    for name, body in {"a": "", "summary": "reglue(x)", "b": ""}.items():
        (tmp_path / f"{name}.md").write_text(NOTEBOOK + body)
    toc = "format: jb-book\nroot: summary\nchapters:\n  - file: a\n  - file: b\n"
    (tmp_path / "_toc.yml").write_text(toc)
    assert list(reproduce.notebooks(tmp_path)) == ["a", "b", "summary"]


def test_sigterm_removes_the_temporary_notebook(tmp_path):
    import os
    import signal

    from dfsae.files import temporary_beside

    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        reproduce.stop_cleanly_on_sigterm()
        for signum in previous:                    # kill, and Ctrl-C: both leave nothing behind
            with pytest.raises(SystemExit):
                with temporary_beside(tmp_path / "nb.ipynb", ".ipynb") as tmp:
                    assert tmp.exists()
                    os.kill(os.getpid(), signum)
            assert list(tmp_path.iterdir()) == []
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


BOOK_PARAMETERS = {"05_1_identity": {"train_epochs": "20", "seeds": "[0]", "device": "'cpu'",
                                     "n_samples": "512"},
                   "05_3_benchmark": {"sweeps": '{"topk": [4, 8, 16]}', "family_options": "{}",
                                      "stored_runs": "'use'"},
                   "05_4_comparison": {"sweeps_by_dim": '{64: {"topk": [4, 8, 16]}}',
                                       "family_options_by_dim": "{}"}}


@pytest.mark.parametrize("name,value,message", [
    ("train_epochs", -3, "train_epochs must be >= 1"),
    ("seeds", [], "seeds must be a non-empty list"),
    ("device", "cuda", "no CUDA device"),
    ("seeds", "0,1", "Python literal"),
    ("sweeps", {"topk": [0, 8, 16]}, r"sweeps\['topk'\]: k must be an integer >= 1"),
    ("sweeps", {"topk": [8, 16]}, "at least 3 values of k"),
    ("sweeps", {"decoder_free": [1.0, 10.0, 100.0]}, "swept by `balances`"),
    ("sweeps", {"lasso": [1.0, 2.0, 3.0]}, "unknown family 'lasso'"),
    ("family_options", {"jumprelu": {"bandwith": 0.01}}, r"unknown option\(s\) \['bandwith'\]"),
    ("sweeps_by_dim", {"sixty-four": {"topk": [4, 8, 16]}}, "not a dictionary size"),
    ("sweeps_by_dim", {64: {"topk": [4, 8]}}, r"sweeps_by_dim\[64\]\['topk'\] must list at least 3"),
    ("family_options_by_dim", {64: {"jumprelu": {"bandwidth": -1.0}}}, "bandwidth must be a finite number"),
    ("stored_runs", "append", "unknown stored_runs .append.; choose one of"),
])
def test_the_notebooks_own_rules_refuse_values_before_any_kernel(name, value, message):
    import torch

    if name == "device" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ValueError, match=message):
        reproduce.check_parameters({name: value}, BOOK_PARAMETERS)


def test_a_tuple_reaches_the_notebook_as_a_list(notebooks, capsys):
    (notebooks / "demo.md").write_text(NOTEBOOK.replace("value = 1", "value = [1]").replace(
        'assert value > 0, "value must be positive"\nprint(value * 2)', "print(type(value).__name__, value)"))
    assert reproduce.main(["--no-progress", "-p", "value", "(3, 4)"]) == 0
    (run,) = (notebooks / "runs").iterdir()
    assert outputs(run / "demo.ipynb").strip() == "list [3, 4]"
