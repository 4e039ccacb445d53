"""environment.yml and pyproject.toml declare the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= {r for r in extra if not r.startswith("dfsae")}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip if not r.startswith("-e")}
    assert {name(r): r for r in listed} == {name(r): r for r in declared}


def test_the_library_imports_nothing_for_plotting_or_notebooks():
    import subprocess
    import sys

    code = ("import dfsae, sys; bad = {'matplotlib', 'papermill', 'myst_nb', 'seaborn'} & set(sys.modules); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_no_library_module_names_a_notebook():
    import re

    for path in (ROOT / "dfsae").rglob("*.py"):
        assert not re.search(r"\b(0[0-7]|99|A1)_[a-z]", path.read_text()), path
