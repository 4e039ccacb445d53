"""The feature browser: latent samples, cards checked against hand-computed rankings, the page's data
round-tripped, and the page opened in a real headless browser."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from dfsae import browser
from dfsae.activations import Activations

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian: apt-get install "
                                    "chromium); .ci/run installs it")


def test_sample_excludes_dead_and_adds_cited():
    codes = torch.zeros(5, 6)
    codes[0, [1, 3, 4]] = 1.0
    got = browser.sample_latents(codes, n=10, cited=[5])
    assert got == [1, 3, 4, 5]      # every live latent (fewer than n) plus the cited dead one
    two = browser.sample_latents(codes, n=2, seed=3)
    assert len(two) == 2 and set(two) <= {1, 3, 4}
    assert two == browser.sample_latents(codes, n=2, seed=3)


def test_sample_refuses_bad_input():
    with pytest.raises(ValueError, match="cited latents must be in"):
        browser.sample_latents(torch.ones(2, 3), cited=[3])
    with pytest.raises(ValueError, match="codes must be a"):
        browser.sample_latents(torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        browser.sample_latents(torch.tensor([[float("nan")]]))


def test_cards_of_activations_by_hand():
    codes = torch.tensor([[0.0, 2.0], [3.0, 0.0], [1.0, 2.0], [0.0, 5.0]])
    card = browser.latent_cards(codes, [0, 1], n_top=2, n_random=5)
    zero, one = card
    assert zero["density"] == 0.5 and one["density"] == 0.75
    assert zero["rankings"] == {"largest activation": [[1, 3.0], [2, 1.0]]}
    assert one["rankings"]["largest activation"] == [[3, 5.0], [0, 2.0]]  # tie at rows 0, 2: lower first
    assert sorted(i for i, _ in zero["random"]) == [1, 2]    # only active rows, at most all of them
    assert all(codes[i, 1] == v for i, v in one["random"])


def test_cards_of_energies_by_hand():
    # Latent 0 has energy 0 on rows 0 and 1; row 1's other energy is larger, so its responsibility for
    # latent 0 is higher and it ranks first among the ties.
    e = torch.tensor([[0.0, 1.0], [0.0, 3.0], [2.0, 0.0]])
    r = torch.softmax(-e.double(), dim=1)
    assert r[1, 0] > r[0, 0]
    (card,) = browser.latent_cards(e, [0], n_top=3, energies=True)
    assert [i for i, _ in card["rankings"]["lowest energy"]] == [1, 0, 2]
    assert [i for i, _ in card["rankings"]["highest responsibility"]] == [1, 0, 2]
    assert card["rankings"]["highest responsibility"][0][1] == pytest.approx(float(r[1, 0]))
    assert card["rankings"]["largest energy"] == [[2, 2.0]]               # the only row with E > 0
    assert card["density"] == pytest.approx(1 / 3)


def test_cards_refuse_bad_latents():
    with pytest.raises(ValueError, match=r"latents must be in \[0, 2\)"):
        browser.latent_cards(torch.ones(3, 2), [2])
    with pytest.raises(ValueError, match="n_top"):
        browser.latent_cards(torch.ones(3, 2), [0], n_top=0)


class _Tokenizer:
    def convert_ids_to_tokens(self, ids):
        return [f"t{i}" if i % 2 else f"##s{i}" for i in ids]


def _acts():
    windows = [[10, 11, 12, 13, 14], [20, 21, 22]]
    window = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    position = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    ids = torch.tensor([windows[int(w)][int(p)] for w, p in zip(window, position, strict=True)])
    return Activations(torch.zeros(8, 2), ids, window, position, windows, layer=3, key="k")


def _data(strings_extra=""):
    codes = torch.zeros(8, 3)
    codes[2, 0], codes[6, 0], codes[4, 1] = 2.0, 1.0, 0.5
    cards = browser.latent_cards(codes, [0, 1], n_top=2, n_random=1)
    models = {"TopK, layer 3" + strings_extra: {"family": "topk", "layer": 3, "reading": "largest activation",
                                                "cards": cards, "densities": browser.densities(codes),
                                                "cited": [1]}}
    return browser.payload(models, _acts(), _Tokenizer(), width=1)


def test_payload_contexts_by_hand():
    data = _data()
    ids, at = data["contexts"]["2"]                       # row 2: window 0, position 2, one token either side
    assert [data["strings"][k] for k in ids] == ["t11", "##s12", "t13"] and at == 1
    ids, at = data["contexts"]["6"]                       # row 6: window 1, position 1
    assert [data["strings"][k] for k in ids] == ["##s20", "t21", "##s22"] and at == 1
    ids, at = data["contexts"]["4"]                       # row 4: the window's last token
    assert [data["strings"][k] for k in ids] == ["t13", "##s14"] and at == 1
    assert len(set(data["strings"])) == len(data["strings"])


def test_payload_refuses_rows_outside_the_tokens():
    data = _data()
    model = dict(data["models"][0])
    model["cards"] = [{"latent": 0, "density": 0.1, "rankings": {"x": [[99, 1.0]]}, "random": []}]
    name = model.pop("name")
    with pytest.raises(ValueError, match="outside the 8 held-out tokens"):
        browser.payload({name: model}, _acts(), _Tokenizer())


def _embedded(page: str) -> dict:
    text = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1)
    return json.loads(text)


def test_write_round_trips_and_cannot_be_broken_by_a_string(tmp_path):
    data = _data(strings_extra=" </script><script>alert(1)</script>")
    path = browser.write(tmp_path / "b.html", data, title="t")
    page = path.read_text(encoding="utf-8")
    assert page.count("</script>") == 2      # the data's own and the code's, nothing from a string
    assert _embedded(page) == data
    assert not list(tmp_path.glob("*.tmp"))


def _open(path: Path) -> tuple[str, str]:
    """(DOM after the scripts ran, browser log) of ``path`` in headless Chromium."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", "--virtual-time-budget=5000", "--dump-dom", path.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr


def _script_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "Uncaught" in line]


@needs_chromium
def test_page_loads_in_a_real_browser(tmp_path):
    path = browser.write(tmp_path / "b.html", _data(), title="Feature browser test")
    dom, log = _open(path)
    assert _script_errors(log) == []
    assert 'data-ready="1"' in dom                         # the script ran to its end
    assert "<mark>s12</mark>" in dom                       # the first latent's top context, its token marked
    assert "(cited in the text)" in dom
    # The check can fail: the same page with a script error is caught.
    broken = tmp_path / "broken.html"
    text = path.read_text(encoding="utf-8")
    broken.write_text(text.replace("showModel();\ndocument", "showModl();\ndocument"), encoding="utf-8")
    assert "showModl();" in broken.read_text(encoding="utf-8")
    dom, log = _open(broken)
    assert _script_errors(log) and 'data-ready="1"' not in dom


def test_densities():
    codes = np.array([[0.0, 1.0], [0.0, 2.0]])
    assert browser.densities(codes) == [0.0, 1.0]


def test_inline_carries_the_same_page():
    import html as htmlmod

    data = _data()
    frame = browser.inline(data, title="t", height=500)
    srcdoc = re.search(r'srcdoc="(.*)"></iframe>', frame, re.S).group(1)
    assert '"' not in srcdoc and htmlmod.unescape(srcdoc) == browser.page(data, title="t")
    with pytest.raises(ValueError, match="height"):
        browser.inline(data, height=0)


ROOT = Path(__file__).resolve().parents[1]


def _stored_page() -> str:
    """The browser page that the stored 5.6 notebook (and so the built book) carries."""
    import html as htmlmod

    nb = json.loads((ROOT / "notebooks" / "05_6_language_model.ipynb").read_text(encoding="utf-8"))
    frames = ["".join(out["data"]["text/html"]) for cell in nb["cells"] for out in cell.get("outputs", [])
              if 'class="feature-browser"' in "".join(out.get("data", {}).get("text/html", ""))]
    assert len(frames) == 1, f"expected one feature browser in 5.6's stored outputs, found {len(frames)}"
    return htmlmod.unescape(re.search(r'srcdoc="(.*)"></iframe>', frames[0], re.S).group(1))


def test_the_book_carries_a_browser_of_every_retrained_model():
    data = _embedded(_stored_page())
    assert len(data["models"]) == 3
    for model in data["models"]:
        assert len(model["cards"]) >= 200 and set(model["cited"]) <= {c["latent"] for c in model["cards"]}
        assert len(model["densities"]) >= 3072
        ranked = {name for card in model["cards"] for name in card["rankings"]}
        assert ranked == ({"lowest energy", "highest responsibility", "largest energy"}
                          if model["family"] == "decoder-free" else {"largest activation"})
    rows = {str(i) for m in data["models"] for c in m["cards"] for r in c["rankings"].values() for i, _ in r}
    assert rows <= set(data["contexts"])


@needs_chromium
def test_the_books_browser_loads_in_a_real_browser(tmp_path):
    path = tmp_path / "stored.html"
    path.write_text(_stored_page(), encoding="utf-8")
    dom, log = _open(path)
    assert _script_errors(log) == [] and 'data-ready="1"' in dom and "<mark>" in dom
