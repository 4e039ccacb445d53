"""python -m dfsae.reproduce: parameters reach the notebook, failures leave nothing behind."""

import json

import pytest

from dfsae import reproduce

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
    monkeypatch.setattr(reproduce, "NOTEBOOK_DIR", tmp_path)
    monkeypatch.setattr(reproduce, "ORDER", ["demo"])
    return tmp_path


def outputs(path):
    cells = json.loads(path.read_text())["cells"]
    return "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))


def test_parameters_reach_the_notebook(notebooks):
    assert reproduce.main(["--no-progress", "-p", "value", "21"]) == 0
    assert outputs(notebooks / "demo.ipynb").strip() == "42"
    assert reproduce.parameters_of("demo") == {"value": "1"}


def test_failed_run_keeps_previous_notebook_and_no_temp_files(notebooks):
    reproduce.main(["--no-progress"])
    before = (notebooks / "demo.ipynb").read_text()
    with pytest.raises(Exception, match="value must be positive"):
        reproduce.main(["--no-progress", "-p", "value", "-5"])
    assert sorted(p.name for p in notebooks.iterdir()) == ["demo.ipynb", "demo.md"]
    assert outputs(notebooks / "demo.ipynb") == "2\n" and before


def test_unknown_notebook_is_an_error(notebooks):
    with pytest.raises(SystemExit):
        reproduce.main(["--only", "nope"])
