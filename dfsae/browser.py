"""A feature browser: one self-contained HTML file, no server and no network, in which a reader
picks a model (family and layer) and a latent, and sees the latent's top contexts with the token
highlighted, its density among the model's latents, and a few random inputs on which it fires.

Three steps, each usable on its own:

* :func:`sample_latents` — a seeded random sample of a model's live latents, plus the ones a text
  cites;
* :func:`latent_cards` — for each sampled latent, its density and its examples, as token indices
  into held-out activations (:class:`dfsae.activations.Activations`). A code of activations is
  ranked by its largest values. A decoder-free code is a vector of energies, where *low* is a good
  match, so it is ranked three ways: lowest energy (ties broken by the highest responsibility), highest
  responsibility r = softmax(−E), and largest energy (its worst matches);
* :func:`page` — the HTML page, the data embedded as JSON, the contexts decoded once and shared;
  :func:`inline` puts it in an ``<iframe srcdoc>`` (a notebook output), :func:`write` in a file.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import torch

from . import validation
from .files import atomic_write

DENSE = 0.1
"""A latent active on more than this fraction of tokens is *dense*, as the field counts it."""


def _codes(codes) -> torch.Tensor:
    codes = torch.as_tensor(codes)
    if codes.ndim != 2 or codes.shape[0] < 1 or codes.shape[1] < 1:
        raise ValueError(f"codes must be a (tokens, latents) matrix, got shape {tuple(codes.shape)}")
    if not torch.isfinite(codes).all():
        raise ValueError("codes must be finite; encode the held-out activations again")
    return codes


def sample_latents(codes, n: int = 200, cited=(), seed: int = 0) -> list[int]:
    """``n`` live latents (active on at least one row of ``codes``) drawn at random with ``seed``,
    plus every latent in ``cited`` (live or not), in increasing order."""
    codes = _codes(codes)
    n = validation.positive_int("n", n)
    cited = [int(c) for c in cited]
    bad = [c for c in cited if not 0 <= c < codes.shape[1]]
    if bad:
        raise ValueError(f"cited latents must be in [0, {codes.shape[1]}); got {bad}")
    live = torch.nonzero((codes != 0).any(0)).squeeze(1).numpy()
    drawn = np.random.default_rng(seed).choice(live, min(n, len(live)), replace=False) if len(live) else []
    return sorted({int(j) for j in drawn} | set(cited))


def _top(values: np.ndarray, n: int, keep: np.ndarray) -> list[int]:
    """Indices of the ``n`` largest ``values`` among the rows where ``keep``, largest first; ties
    by the lower index."""
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((rows, -values[rows]))]
    return order[:n].tolist()


def latent_cards(codes, latents, n_top: int = 6, n_random: int = 3, energies: bool = False,
                 seed: int = 0) -> list[dict]:
    """One card per latent of ``latents``: ``{"latent", "density", "rankings", "random"}``.

    ``density`` is the fraction of rows on which the latent is active (code ≠ 0). ``rankings`` maps
    a ranking's name to a list of ``[row, value]`` pairs, best first: for a code of activations,
    "largest activation" (active rows only); for ``energies=True``, "lowest energy" (ties by the
    highest responsibility), "highest responsibility" (value r_j) and "largest energy". ``random``
    is ``n_random`` active rows drawn with ``seed`` (fewer if the latent fires on fewer rows).
    """
    codes = _codes(codes).double()
    n_top = validation.positive_int("n_top", n_top)
    n_random = validation.positive_int("n_random", n_random, minimum=0)
    latents = [int(j) for j in latents]
    bad = [j for j in latents if not 0 <= j < codes.shape[1]]
    if bad:
        raise ValueError(f"latents must be in [0, {codes.shape[1]}); got {bad}")
    c = codes.numpy()
    r = torch.softmax(-codes, dim=1).numpy() if energies else None
    every = np.ones(len(c), dtype=bool)
    rng = np.random.default_rng(seed)
    cards = []
    for j in latents:
        a = c[:, j]
        active = a != 0
        if energies:
            best = np.lexsort((np.arange(len(a)), -r[:, j], a))[:n_top].tolist()
            rankings = {"lowest energy": [[i, float(a[i])] for i in best],
                        "highest responsibility": [[i, float(r[i, j])] for i in _top(r[:, j], n_top, every)],
                        "largest energy": [[i, float(a[i])] for i in _top(a, n_top, active)]}
        else:
            rankings = {"largest activation": [[i, float(a[i])] for i in _top(a, n_top, active)]}
        rows = np.flatnonzero(active)
        picked = (sorted(rng.choice(rows, min(n_random, len(rows)), replace=False).tolist())
                  if len(rows) else [])
        cards.append({"latent": j, "density": float(active.mean()), "rankings": rankings,
                      "random": [[int(i), float(a[i])] for i in picked]})
    return cards


def densities(codes) -> list[float]:
    """The fraction of rows on which each latent is active (the model's density histogram)."""
    return (_codes(codes) != 0).double().mean(0).tolist()


def _contexts(rows, acts, tokenizer, width: int):
    """The shared string table and, per row, [token-string ids of its context, centre position]."""
    strings, index, contexts = [], {}, {}
    for i in sorted(set(rows)):
        ids = acts.windows[int(acts.window[i])]
        p = int(acts.position[i])
        lo, hi = max(0, p - width), min(len(ids), p + width + 1)
        pieces = tokenizer.convert_ids_to_tokens(ids[lo:hi])
        out = []
        for piece in pieces:
            if piece not in index:
                index[piece] = len(strings)
                strings.append(piece)
            out.append(index[piece])
        contexts[str(i)] = [out, p - lo]
    return strings, contexts


def payload(models: dict, acts, tokenizer, width: int = 5) -> dict:
    """The browser's data: ``models`` maps a model's name to ``{"family", "layer", "reading",
    "cards"}`` (cards from :func:`latent_cards`, ``densities`` from :func:`densities`); the rows
    the cards cite are looked up in ``acts`` (held-out :class:`~dfsae.activations.Activations`)
    and decoded by ``tokenizer`` with ``width`` tokens either side."""
    width = validation.positive_int("width", width, minimum=0)
    if not models:
        raise ValueError("models is empty: give at least one model's cards")
    rows = []
    for name, m in models.items():
        missing = {"family", "layer", "reading", "cards", "densities"} - set(m)
        if missing:
            raise ValueError(f"models[{name!r}] lacks {sorted(missing)}")
        for card in m["cards"]:
            rows += [i for ranked in card["rankings"].values() for i, _ in ranked]
            rows += [i for i, _ in card["random"]]
    bad = [i for i in rows if not 0 <= i < len(acts.token_ids)]
    if bad:
        raise ValueError(f"the cards cite rows {bad[:5]} outside the {len(acts.token_ids)} held-out tokens")
    strings, contexts = _contexts(rows, acts, tokenizer, width)
    return {"models": [{"name": name, **m} for name, m in models.items()], "strings": strings,
            "contexts": contexts, "dense": DENSE}


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0.8em; color: #222; }
h1 { font-size: 1.2em; margin: 0 0 0.4em; }
label { margin-right: 1em; white-space: nowrap; }
select { font: inherit; max-width: 100%; }
.note { color: #555; font-size: 0.9em; }
.ctx { font-family: ui-monospace, monospace; font-size: 0.9em; overflow-wrap: anywhere; }
.ctx mark { padding: 0 2px; border-radius: 3px; outline: 1px solid #c60; }
table { border-collapse: collapse; width: 100%; margin: 0.3em 0 1em; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
td.v { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; width: 5.5em; }
svg text { font-size: 12px; fill: #333; }
</style></head>
<body>
<h1>__TITLE__</h1>
<p class="note">__INTRO__</p>
<div><label>model <select id="model"></select></label>
<label>latent <select id="latent"></select></label></div>
<div id="card"></div>
<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
const modelSel = document.getElementById("model"), latentSel = document.getElementById("latent");
const card = document.getElementById("card");
function esc(s) {
  return s.replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
}
function piece(s) { return s.startsWith("##") ? s.slice(2) : " " + s; }
function context(row) {
  const [ids, at] = data.contexts[String(row)];
  return ids.map((k, n) => {
    const p = piece(data.strings[k]);
    return n === at ? (p.startsWith(" ") ? " " : "") + "<mark>" + esc(p.trim()) + "</mark>" : esc(p);
  }).join("").trim();
}
function fmt(v) {
  return Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2);
}
function table(title, rows, what) {
  if (!rows.length) return "<p class='note'>" + esc(title) + ": none (the latent never fires).</p>";
  return "<table><caption style='text-align:left'><b>" + esc(title) + "</b></caption><tr><th>" + esc(what) +
    "</th><th>context (the token marked)</th></tr>" + rows.map(([i, v]) =>
    "<tr><td class='v'>" + fmt(v) + "</td><td class='ctx'>" + context(i) + "</td></tr>").join("") +
    "</table>";
}
function histogram(model, density) {
  const w = 320, h = 90, lo = -5, bins = 25, counts = new Array(bins).fill(0);
  let dead = 0;
  for (const d of model.densities) {
    if (d <= 0) { dead++; continue; }
    const b = Math.min(bins - 1, Math.max(0, Math.floor((Math.log10(d) - lo) / (-lo) * bins)));
    counts[b]++;
  }
  const top = Math.max(1, ...counts), x = d => 10 + (w - 20) * (Math.log10(Math.max(d, 1e-5)) - lo) / (-lo);
  let s = "<svg width='" + w + "' height='" + (h + 30) + "' role='img' aria-label='density histogram'>";
  counts.forEach((c, b) => { const bh = (h - 10) * c / top;
    s += "<rect x='" + (10 + (w - 20) * b / bins) + "' y='" + (h - bh) + "' width='" + ((w - 20) / bins - 1) +
         "' height='" + bh + "' fill='#9bb'/>"; });
  s += "<line x1='" + x(data.dense) + "' x2='" + x(data.dense) + "' y1='0' y2='" + h +
       "' stroke='#888' stroke-dasharray='3'/>";
  if (density > 0) s += "<line x1='" + x(density) + "' x2='" + x(density) + "' y1='0' y2='" + h +
                        "' stroke='#c60' stroke-width='2'/>";
  ["10⁻⁵", "10⁻⁴", "10⁻³", "10⁻²", "10⁻¹", "1"].forEach((t, k) =>
    s += "<text x='" + (x(Math.pow(10, lo + k)) - (k === 5 ? 4 : 12)) + "' y='" + (h + 14) + "'>" + t +
         "</text>");
  s += "<text x='10' y='" + (h + 28) + "'>fraction of tokens (log); " + dead + " dead not shown</text></svg>";
  return s;
}
function showLatent() {
  const model = data.models[modelSel.value], c = model.cards[latentSel.value];
  const kind = c.density === 0 ? "dead"
             : c.density > data.dense ? "dense (above " + (100 * data.dense) + " %)" : "";
  let s = "<h2 style='font-size:1.05em'>" + esc(model.name) + ", latent " + c.latent + "</h2>" +
    "<p>Active on " + (100 * c.density).toPrecision(3) + " % of held-out tokens" +
    (kind ? " — " + kind : "") +
    ". " + esc(model.reading) + "</p>" + histogram(model, c.density);
  for (const [name, rows] of Object.entries(c.rankings))
    s += table(name, rows, name.includes("responsibility") ? "r" :
    name.includes("energy") ? "E" : "a");
  s += table("random tokens on which it fires", c.random, "code");
  card.innerHTML = s;
}
function showModel() {
  const model = data.models[modelSel.value];
  latentSel.innerHTML = model.cards.map((c, k) => "<option value='" + k + "'>" + c.latent +
    ((model.cited || []).includes(c.latent) ? " (cited in the text)" : "") + "</option>").join("");
  showLatent();
}
data.models.forEach((m, k) => {
  const o = document.createElement("option"); o.value = k; o.textContent = m.name;
  modelSel.appendChild(o); });
modelSel.addEventListener("change", showModel);
latentSel.addEventListener("change", showLatent);
showModel();
document.body.dataset.ready = "1";
</script></body></html>
"""


def page(data: dict, title: str = "Feature browser", intro: str = "") -> str:
    """The browser page for ``data`` (from :func:`payload`) as one HTML document: the JSON is
    embedded (``</`` escaped, so that no string can end the script), so the page works offline."""
    if not data.get("models"):
        raise ValueError("data has no models; make it with dfsae.browser.payload")
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    return (_PAGE.replace("__TITLE__", html.escape(title)).replace("__INTRO__", html.escape(intro))
            .replace("__DATA__", text))


def inline(data: dict, title: str = "Feature browser", intro: str = "", height: int = 900) -> str:
    """The page of :func:`page` inside an ``<iframe srcdoc>``: how a notebook output (and so a built
    book) carries the browser with no file beside it."""
    height = validation.positive_int("height", height)
    return (f'<iframe class="feature-browser" title="{html.escape(title)}" '
            f'style="width:100%;height:{height}px;'
            f'border:1px solid #ccc" srcdoc="{html.escape(page(data, title, intro), quote=True)}"></iframe>')


def write(path, data: dict, title: str = "Feature browser", intro: str = "") -> Path:
    """Write the page of :func:`page` to ``path`` atomically (never a partial file; see
    :func:`dfsae.files.atomic_write`), to be opened directly in a browser."""
    return atomic_write(path, page(data, title, intro))
