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


def test_parameters_reach_the_notebook(notebooks):
    assert reproduce.main(["--no-progress", "-p", "value", "21"]) == 0
    assert outputs(notebooks / "demo.ipynb").strip() == "42"
    assert reproduce.parameters_of(notebooks / "demo.md") == {"value": "1"}


def test_failed_run_keeps_previous_notebook_and_no_temp_files(notebooks):
    reproduce.main(["--no-progress"])
    before = (notebooks / "demo.ipynb").read_text()
    with pytest.raises(Exception, match="value must be positive"):
        reproduce.main(["--no-progress", "-p", "value", "-5"])
    assert sorted(p.name for p in notebooks.iterdir()) == ["_toc.yml", "demo.ipynb", "demo.md"]
    assert outputs(notebooks / "demo.ipynb") == "2\n" and before


def test_unknown_notebook_is_an_error(notebooks):
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "nope"])


@pytest.mark.parametrize("argv,message", [
    (["-p", "valeu", "3"], "unknown parameter"),                 # misspelled: refused, lists valid names
    (["-p", "value", "yes"], "same type as its default"),         # a string where an int is declared
    (["-p", "value", "[1, 2]"], "same type as its default"),
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

    previous = signal.getsignal(signal.SIGTERM)
    try:
        reproduce.stop_cleanly_on_sigterm()
        with pytest.raises(SystemExit):
            with temporary_beside(tmp_path / "nb.ipynb", ".ipynb") as tmp:
                assert tmp.exists()
                os.kill(os.getpid(), signal.SIGTERM)
        assert list(tmp_path.iterdir()) == []
    finally:
        signal.signal(signal.SIGTERM, previous)
