"""The field's evaluations of a sparse code, as pure functions of codes, inputs and a model.

* :func:`density` — how often each latent fires: the fraction of inputs it is active on, the
  dead (never) and dense (more than ``dense_threshold`` of inputs) counts, and a histogram of the
  log10 firing rates. :class:`DensityMonitor` records the dead and dense counts at steps of
  training (``dfsae.train(..., monitor=...)``).
* :func:`shrinkage` — the relative reconstruction bias γ of Rajamanoharan et al. (2024a),
  γ = argmin_γ E‖x̂/γ − x‖² = E‖x̂‖² / E⟨x̂, x⟩, which is below 1 when the reconstruction is shrunk,
  and the mean norm ratio ‖x̂‖/‖x‖.
* :func:`k_sparse_probe` — k-sparse probing (Gurnee et al., 2023): the k latents whose mean code
  differs most between the positive and negative training inputs, then a logistic regression on
  those k alone, scored on the test inputs.
* :func:`spliced_fidelity` — replace a transformer's hidden states at one layer by a reconstruction,
  run the rest of the model, and compare the pooled sentence embedding with the clean one (cosine,
  retention of each sentence's nearest neighbours), anchored as the field anchors "loss recovered":
  recovered = (m_ablated − m_model) / (m_ablated − m_clean) with m = 1 − cosine to the clean
  embedding, for a zero- and a mean-ablated reference (:func:`fidelity_recovered`).

* :func:`absorption` — first-letter feature absorption (after Chanin et al., 2024): of the tokens
  a linear probe on the activations recognises as starting with a letter, the share on which the
  SAE's main latents for the letter stay silent while another latent aligned with the probe fires
  and carries the direction; :func:`token_properties` labels WordPiece tokens offline.

A code is *active* where it exceeds ``threshold`` (0 by default: a ReLU code's non-zero entries).
For the decoder-free model every evaluation can be run in each of its readings
(:func:`reading`): the energy E (active: E > 0, which is a *poor* match), the similarity
s = max E − E (active: s > 0) and the responsibility r = softmax(−E) (active: r above the uniform
share 1/K, :func:`reading_threshold`).
"""

from __future__ import annotations

import numpy as np
import torch

from . import validation

READINGS = ("code", "similarity", "responsibility")


def reading(model, codes: torch.Tensor, name: str = "code") -> torch.Tensor:
    """``codes`` read as ``name``: ``"code"`` itself, or for a model whose codes are energies its
    ``"similarity"`` s = max E − E or ``"responsibility"`` r = softmax(−E)."""
    validation.choice("reading", name, READINGS)
    if name == "code":
        return codes
    if not getattr(model, "codes_are_energies", False):
        raise ValueError(f"reading {name!r} applies to a model whose codes are energies (the decoder-free "
                         f"SAE), not a {type(model).__name__}; use reading='code'")
    return model.similarities(codes) if name == "similarity" else model.responsibilities(codes)


def reading_threshold(name: str, hidden_dim: int) -> float:
    """The level above which a code counts as active in a reading: 0, or 1/K for responsibilities."""
    validation.choice("reading", name, READINGS)
    return 1.0 / hidden_dim if name == "responsibility" else 0.0


def firing_rates(codes: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """The fraction of rows on which each latent's code exceeds ``threshold``, shape (K,)."""
    codes = validation.as_matrix("codes", codes)
    return (codes > threshold).double().mean(dim=0)


def density(codes: torch.Tensor, threshold: float = 0.0, dense_threshold: float = 0.1,
            bins: int = 20) -> dict:
    """Firing rates of every latent (``rates``), the ``dead`` count (rate 0), the ``dense`` count
    (rate above ``dense_threshold``; the field counts latents on more than 10 % of tokens as dense)
    and a histogram of log10 rates of the live latents (``log10_edges``, ``counts``)."""
    dense_threshold = validation.Real(0, 1).check("dense_threshold", dense_threshold)
    bins = validation.Integer(1).check("bins", bins)
    rates = firing_rates(codes, threshold)
    live = rates[rates > 0]
    low = float(np.log10(1.0 / len(codes)))
    counts, edges = np.histogram(np.log10(live.numpy()) if len(live) else np.array([]), bins=bins,
                                 range=(low, 0.0))
    return {"rates": rates, "dead": int((rates == 0).sum()), "dense": int((rates > dense_threshold).sum()),
            "dense_threshold": dense_threshold, "log10_edges": edges, "counts": counts}



class DensityMonitor:
    """The density of a model's latents on fixed inputs, recorded as training goes.

    Pass it to :func:`dfsae.training.train` (``monitor=``): it is called with the model before the first
    step, after every ``every`` steps, and after the last step, and records for each call the
    step, the ``dead`` and ``dense`` counts of :func:`density` and the mean number of active latents
    per input (``l0``), all read in ``reading``. It reads the model in evaluation mode without
    gradients and changes neither the model nor the training (the same seed gives the same
    weights with or without it).

    Parameters
    ----------
    x : (n, input_dim) tensor, finite, n ≥ 1: the inputs the density is measured on (held out)
    every : int ≥ 1, steps between two records
    reading : "code", "similarity" or "responsibility" (:func:`reading`)
    dense_threshold : float in [0, 1], as in :func:`density`
    """

    def __init__(self, x, every: int = 50, reading: str = "code", dense_threshold: float = 0.1):
        self.x = validation.as_matrix("x", x)
        self.every = validation.Integer(1).check("every", every)
        self.reading = validation.choice("reading", reading, READINGS)
        self.dense_threshold = validation.Real(0, 1).check("dense_threshold", dense_threshold)
        self.rows: list[dict] = []

    def __call__(self, model, step: int) -> None:
        from .metrics import encode

        was_training = model.training
        codes = encode(model, self.x)
        model.train(was_training)
        read = reading(model, codes, self.reading)
        threshold = reading_threshold(self.reading, codes.shape[1])
        found = density(read, threshold, self.dense_threshold)
        self.rows.append({"step": int(step), "dead": found["dead"], "dense": found["dense"],
                          "l0": float((read > threshold).sum(dim=1).double().mean())})

    def to_frame(self):
        """The records as a DataFrame indexed by step."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["step", "dead", "dense", "l0"]).set_index("step")


def shrinkage(x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """``gamma`` = E‖x̂‖² / E⟨x̂, x⟩ (1: unbiased; below 1: shrunk towards 0) and ``norm_ratio``, the
    mean of ‖x̂‖/‖x‖ over the inputs with x ≠ 0."""
    x, x_hat = validation.as_matrix("x", x).double(), validation.as_matrix("x_hat", x_hat).double()
    if x.shape != x_hat.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but x_hat has {tuple(x_hat.shape)}")
    inner = float((x_hat * x).sum())
    if inner <= 0:
        raise ValueError("the reconstruction is orthogonal or opposite to the input (E<x_hat, x> <= 0): "
                         "no relative reconstruction bias is defined")
    norms = x.norm(dim=1)
    keep = norms > 0
    return {"gamma": float((x_hat * x_hat).sum()) / inner,
            "norm_ratio": float((x_hat.norm(dim=1)[keep] / norms[keep]).mean())}


def k_sparse_probe(codes_train, y_train, codes_test, y_test, k: int, max_iter: int = 1000) -> dict:
    """k-sparse probing of a binary property: the ``k`` latents with the largest
    abs(mean code on positives − mean code on negatives) in the training set (ties: lower index),
    then a logistic regression on their standardised codes alone, its classes weighted by their
    inverse frequency (so that a rare property is not predicted away). Returns ``accuracy`` on the
    test set, ``balanced_accuracy`` and the chosen ``latents``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    a_train, a_test = (np.asarray(validation.as_matrix(n, c), dtype=np.float64)
                       for n, c in (("codes_train", codes_train), ("codes_test", codes_test)))
    y_train, y_test = np.asarray(y_train).astype(bool).ravel(), np.asarray(y_test).astype(bool).ravel()
    if len(y_train) != len(a_train) or len(y_test) != len(a_test):
        raise ValueError(f"one label per row: {len(y_train)} labels for {len(a_train)} training rows, "
                         f"{len(y_test)} for {len(a_test)} test rows")
    if y_train.all() or not y_train.any():
        raise ValueError("y_train must hold both classes")
    k = validation.Integer(1, a_train.shape[1]).check("k", k)
    gap = np.abs(a_train[y_train].mean(0) - a_train[~y_train].mean(0))
    latents = np.argsort(-gap, kind="stable")[:k]
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, class_weight="balanced"))
    with threadpool_limits(limits=1):
        probe.fit(a_train[:, latents], y_train)
        predicted = probe.predict(a_test[:, latents])
    return {"accuracy": float((predicted == y_test).mean()),
            "balanced_accuracy": float(balanced_accuracy_score(y_test, predicted)),
            "latents": latents.tolist()}


def fidelity_recovered(m_ablated: float, m_model: float, m_clean: float = 0.0) -> float:
    """(m_ablated − m_model) / (m_ablated − m_clean): 1 when the model's reconstruction is as good as
    the clean activations, 0 when it is as bad as ablating them."""
    if m_ablated == m_clean:
        raise ValueError("the ablated reference equals the clean one: nothing to recover")
    return (m_ablated - m_model) / (m_ablated - m_clean)


def neighbour_retention(clean: torch.Tensor, other: torch.Tensor, k: int = 5) -> float:
    """The mean fraction of each row's ``k`` nearest neighbours (cosine, among the other rows) in
    ``clean`` that are still among its ``k`` nearest in ``other``."""
    clean = validation.as_matrix("clean", clean).double()
    other = validation.as_matrix("other", other).double()
    n = len(clean)
    k = validation.Integer(1, n - 1).check("k", k)

    def neighbours(e):
        e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))
        return sim.topk(k, dim=1).indices

    a, b = neighbours(clean), neighbours(other)
    return float(np.mean([len(set(a[i].tolist()) & set(b[i].tolist())) / k for i in range(n)]))


@torch.no_grad()
def sentence_embeddings(texts, layer: int | None = None, replace=None, model=None, tokenizer=None,
                        seq_len: int = 128, batch_size: int = 32) -> torch.Tensor:
    """MiniLM-L6 sentence embeddings (mean of the last hidden states over the tokens, L2-normalised,
    as the sentence-transformers model does), one per text (truncated to ``seq_len`` tokens).

    With ``layer`` ℓ and ``replace`` (a function from the (n, 384) hidden states of the real tokens
    to their replacement), the hidden states after ℓ layers (ℓ = 0: the embeddings; the ones
    :func:`dfsae.activations.extract` reads) are replaced at the real tokens ([CLS], [SEP] and
    padding are kept) before the remaining layers run."""
    from .activations import NUM_LAYERS, load_minilm

    if isinstance(texts, (str, bytes)) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty list of strings")
    if (layer is None) != (replace is None):
        raise ValueError("give layer and replace together (or neither, for the clean embeddings)")
    if layer is not None:
        layer = validation.Integer(0, NUM_LAYERS).check("layer", layer)
    if model is None or tokenizer is None:
        tokenizer, model = load_minilm()
    target = model.embeddings if layer == 0 else model.encoder.layer[layer - 1] if layer else None
    real = {}

    def splice(module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        new = hidden.clone()
        new[real["mask"]] = replace(hidden[real["mask"]]).to(hidden.dtype)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    out = []
    handle = target.register_forward_hook(splice) if target is not None else None
    try:
        for b in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[b:b + batch_size]), padding=True, truncation=True,
                              max_length=seq_len, return_tensors="pt")
            mask = batch["attention_mask"].bool()
            lengths = mask.sum(1)
            real["mask"] = mask.clone()
            real["mask"][:, 0] = False                                   # [CLS]
            real["mask"][torch.arange(len(lengths)), lengths - 1] = False  # [SEP]
            hidden = model(**batch).last_hidden_state
            pooled = (hidden * mask[..., None]).sum(1) / lengths[:, None]
            out.append(torch.nn.functional.normalize(pooled, dim=1))
    finally:
        if handle is not None:
            handle.remove()
    return torch.cat(out)


def spliced_fidelity(texts, layer: int, reconstruct, mean: torch.Tensor, k: int = 5, model=None,
                     tokenizer=None, seq_len: int = 128) -> dict:
    """How much of MiniLM's sentence embedding survives replacing layer ``layer``'s hidden states by
    ``reconstruct(h)`` (e.g. an SAE's decode of its encode): ``cosine`` (mean over texts, to the
    clean embedding), ``neighbours`` (:func:`neighbour_retention`), and the same for two ablated
    references, zeros and ``mean`` (the mean hidden state), with ``recovered_zero`` and
    ``recovered_mean`` (:func:`fidelity_recovered` of m = 1 − cosine)."""
    from .activations import load_minilm

    if model is None or tokenizer is None:
        tokenizer, model = load_minilm()
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1)
    kwargs = {"model": model, "tokenizer": tokenizer, "seq_len": seq_len}
    clean = sentence_embeddings(texts, **kwargs)
    runs = {"model": reconstruct, "zero": lambda h: torch.zeros_like(h), "mean": lambda h: mean.expand_as(h)}
    result = {}
    for name, fn in runs.items():
        spliced = sentence_embeddings(texts, layer=layer, replace=fn, **kwargs)
        suffix = "" if name == "model" else f"_{name}"
        result[f"cosine{suffix}"] = float((spliced * clean).sum(1).mean())
        result[f"neighbours{suffix}"] = neighbour_retention(clean, spliced, k)
    for name in ("zero", "mean"):
        result[f"recovered_{name}"] = fidelity_recovered(1 - result[f"cosine_{name}"], 1 - result["cosine"])
    return result


def token_properties(tokens) -> dict[str, np.ndarray]:
    """Properties of WordPiece tokens (strings such as ``"the"``, ``"##ing"``, ``","``) that can be
    labelled offline, as boolean arrays: ``word_start`` (not a ``##`` continuation), ``punctuation``
    (no letter or digit), ``digit`` (contains one), ``capitalised`` (first letter upper case) and
    ``first_letter`` (the lower-case first letter of a word-initial token that starts with an ASCII
    letter, or ``""``)."""
    tokens = [str(t) for t in tokens]
    body = [t[2:] if t.startswith("##") else t for t in tokens]
    start = np.array([not t.startswith("##") for t in tokens])
    return {
        "word_start": start,
        "punctuation": np.array([bool(b) and not any(c.isalnum() for c in b) for b in body]),
        "digit": np.array([any(c.isdigit() for c in b) for b in body]),
        "capitalised": np.array([bool(b) and b[0].isalpha() and b[0].isupper() for b in body]),
        "first_letter": np.array([b[0].lower() if s and b and b[0].isascii() and b[0].isalpha() else ""
                                  for s, b in zip(start, body, strict=True)]),
    }


def absorption(x, codes, active, decoder, labels, probe_direction, probe_bias: float, main_latents,
               cos_threshold: float = 0.025, share_threshold: float = 0.4) -> dict:
    """First-letter feature absorption (after Chanin et al., 2024), for one letter.

    ``x`` (n, d) are the model's activations, ``codes`` (n, K) and ``active`` (n, K, bool) the SAE's
    codes and where they count as firing, ``decoder`` (K, d) each latent's decoder direction (for
    the decoder-free model, its implicit decoder W), ``labels`` (n, bool) the tokens that start with
    the letter, and (``probe_direction``, ``probe_bias``) a linear probe for the letter trained on
    ``x``. ``main_latents`` are the SAE's latents for the letter (from :func:`k_sparse_probe`).

    Among the tokens that start with the letter and that the probe recognises, a *false negative* is
    one on which no main latent fires; it is *absorbed* when another firing latent j has a decoder
    direction with cosine ≥ ``cos_threshold`` to the probe and carries ≥ ``share_threshold`` of the
    token's projection onto the probe, a_j (d_j · p̂) ≥ share · (x · p̂). Returns the counts and
    ``absorption_rate`` = absorbed / recognised, ``false_negative_rate`` = false negatives /
    recognised."""
    x = np.asarray(x, dtype=np.float64)
    codes, active = np.asarray(codes, dtype=np.float64), np.asarray(active, dtype=bool)
    decoder, labels = np.asarray(decoder, dtype=np.float64), np.asarray(labels, dtype=bool)
    p = np.asarray(probe_direction, dtype=np.float64)
    if not (len(x) == len(codes) == len(active) == len(labels)) or codes.shape != active.shape:
        raise ValueError(f"x, codes, active and labels need one row per token; got {len(x)}, {codes.shape}, "
                         f"{active.shape}, {len(labels)}")
    if decoder.shape != (codes.shape[1], x.shape[1]) or p.shape != (x.shape[1],):
        raise ValueError(f"decoder must be (K, d) = {(codes.shape[1], x.shape[1])} and the probe direction "
                         f"({x.shape[1]},); got {decoder.shape} and {p.shape}")
    main = np.zeros(codes.shape[1], dtype=bool)
    main[list(main_latents)] = True
    unit = p / np.linalg.norm(p)
    cosine = decoder @ unit / np.linalg.norm(decoder, axis=1).clip(1e-12)
    recognised = labels & (x @ p + probe_bias > 0)
    false_negative = recognised & ~(active & main).any(axis=1)
    share = codes * (decoder @ unit)[None, :]                       # a_j (d_j · p̂), (n, K)
    carries = active & ~main & (cosine >= cos_threshold)[None, :] & \
        (share >= share_threshold * (x @ unit)[:, None])
    absorbed = false_negative & carries.any(axis=1)
    n = int(recognised.sum())
    return {"recognised": n, "false_negatives": int(false_negative.sum()), "absorbed": int(absorbed.sum()),
            "false_negative_rate": false_negative.sum() / n if n else float("nan"),
            "absorption_rate": absorbed.sum() / n if n else float("nan")}
