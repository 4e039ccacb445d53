"""The field's evaluations of one trained model, measured once as it finishes training so that a
stored run carries them (:func:`dfsae.paper.experiments.run`'s ``measure``).

A stored run keeps numbers, not weights; evaluations that need the model — splicing its
reconstruction into the transformer, the density of its latents — are therefore taken at training
time. :func:`field_measure` builds that function for one dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import activations, evals, metrics
from ..data import Dataset


def documents(root=None):
    """The Python documentation (:func:`dfsae.activations.python_docs`) split by page into
    training and held-out pages, each side in its fixed pseudo-random order: (docs, train, test),
    ``docs`` mapping page name to text and the sides lists of page names.

    The pages must be the book's corpus, ``python3.11-doc``
    :data:`~dfsae.activations.PYTHON_DOCS_VERSION` (checked by
    :data:`~dfsae.activations.PYTHON_DOCS_DIGEST`): another version gives other activations, under
    other names, and no stored run would be found. Another version is refused with how to get the
    pinned one."""
    docs = activations.python_docs(root)
    digest = activations.corpus_digest(docs)
    if digest != activations.PYTHON_DOCS_DIGEST:
        raise ValueError(f"the Python documentation read ({len(docs)} pages, digest {digest[:12]}) is not "
                         f"the book's corpus, python3.11-doc {activations.PYTHON_DOCS_VERSION} (digest "
                         f"{activations.PYTHON_DOCS_DIGEST[:12]}); its stored runs were trained on that "
                         f"version. To use it, {activations.PYTHON_DOCS_FIX}")
    train, test = activations.split_documents(list(docs))
    return docs, activations.hash_order(train), activations.hash_order(test)


def dataset_name(layer: int, train_key: str, held_key: str, n_eval: int) -> str:
    """The name a stored run is keyed by: the layer, both activation cache keys and the number of
    training tokens the post-hoc decoder is fitted on."""
    return f"minilm-l{layer}-{train_key[:12]}-{held_key[:12]}-eval{n_eval}"


@dataclass
class LayerData:
    """One layer's activations, ready to train on: ``data`` (scaled training and held-out tokens),
    ``eval_data`` (a fixed subset of the training tokens for the post-hoc decoder, and the held-out
    tokens), the input ``scale`` (E‖x‖² = d on the training tokens), the raw ``mean_state``, and
    the raw activations ``act`` and ``held``, and ``subset``, the indices of ``eval_data``'s
    training tokens in ``data``."""
    data: Dataset
    eval_data: Dataset
    scale: float
    mean_state: torch.Tensor
    act: activations.Activations
    held: activations.Activations
    subset: torch.Tensor


def layer_data(docs, train, test, layers, n_tokens: int, test_tokens: int, seq_len: int, posthoc_tokens: int,
               cache_dir=None, lm=None, tokenizer=None) -> dict[int, LayerData]:
    """:class:`LayerData` for each of ``layers``, extracted in one pass per side
    (:func:`dfsae.activations.extract_layers`). The post-hoc subset is the same draw (seed 0) for
    every layer."""
    acts = activations.extract_layers([docs[p] for p in train], layers, n_tokens=n_tokens, seq_len=seq_len,
                                      cache_dir=cache_dir, model=lm, tokenizer=tokenizer)
    helds = activations.extract_layers([docs[p] for p in test], layers, n_tokens=test_tokens, seq_len=seq_len,
                                       cache_dir=cache_dir, model=lm, tokenizer=tokenizer)
    n_eval = min(posthoc_tokens, n_tokens)
    subset = torch.from_numpy(np.sort(np.random.default_rng(0).choice(n_tokens, n_eval, replace=False)))
    out = {}
    for layer in acts:
        act, held = acts[layer], helds[layer]
        scale = float((act.x.shape[1] / act.x.pow(2).sum(1).mean()).sqrt())
        x_train, x_test = act.x * scale, held.x * scale
        name = dataset_name(layer, act.key, held.key, n_eval)
        # every training token in the subset: the same tensor, not a copy of it
        x_eval = x_train if len(subset) == len(x_train) else x_train[subset]
        out[layer] = LayerData(Dataset(x_train, None, x_test, None, name),
                               Dataset(x_eval, None, x_test, None, name), scale, act.x.mean(0),
                               act, held, subset)
    return out


def layer_names(docs, train, test, layers, n_tokens: int, test_tokens: int, seq_len: int,
                posthoc_tokens: int) -> dict[int, str]:
    """The :func:`dataset_name` of each layer that :func:`layer_data` would give, without running
    the transformer (a stored run can be found before any activation is extracted)."""
    n_eval = min(posthoc_tokens, n_tokens)
    train_texts, test_texts = [docs[p] for p in train], [docs[p] for p in test]
    return {layer: dataset_name(layer, activations.cache_key(train_texts, layer, n_tokens, seq_len),
                                activations.cache_key(test_texts, layer, test_tokens, seq_len), n_eval)
            for layer in layers}

#: Names of the metrics :func:`field_measure` adds to a run, each with what it is.
FIELD_METRICS = {
    "dense": "latents firing on more than 10 % of held-out tokens (energy reading for a decoder-free model)",
    "dense_frac": "dense ÷ K",
    "splice_cos": "mean cosine of the spliced to the clean sentence embedding, through the model's own map",
    "splice_rec_mean": "fidelity recovered against mean-ablation, own map",
    "splice_rec_zero": "fidelity recovered against zero-ablation, own map",
    "splice_neighbours": "share of each sentence's 5 nearest neighbours kept, own map",
    "splice_cos_posthoc": "the cosine through a post-hoc affine decoder fitted on training tokens",
    "splice_rec_mean_posthoc": "fidelity recovered against mean-ablation through the post-hoc decoder",
}


def field_measure(x_fit: torch.Tensor, x_test: torch.Tensor, texts, layer: int, scale: float,
                  mean_state: torch.Tensor, lm=None, tokenizer=None, seq_len: int = 128):
    """A function ``measure(model) -> dict`` of :data:`FIELD_METRICS`.

    ``x_fit`` (n, d) are scaled training tokens for the post-hoc decoder and the implicit decoder's
    scale; ``x_test`` scaled held-out tokens for the density; ``texts`` held-out sentences spliced
    at ``layer`` (:func:`dfsae.evals.spliced_fidelity`); ``scale`` the factor that took raw hidden
    states to the model's inputs, and ``mean_state`` the raw mean hidden state (the mean-ablation).
    A model whose codes are energies is spliced through its implicit decoder c·WᵀE (c fitted on
    ``x_fit``); any other through its own decoder."""
    if not texts:
        raise ValueError("texts must hold at least one held-out sentence to splice")

    def measure(model) -> dict:
        model.eval()
        with torch.no_grad():
            fit_codes = metrics.encode(model, x_fit)
            post_hoc = metrics.fit_linear_decoder(fit_codes, x_fit)
            if model.codes_are_energies:
                W = model.W.detach()
                c = metrics.optimal_scale(x_fit, fit_codes @ W)

                def own(a):
                    return c * (a @ W)
            else:
                own = model.decode
            rates = evals.firing_rates(metrics.encode(model, x_test))

        def through(read):
            def reconstruct(h):
                a = metrics.encode(model, h * scale)
                return (read(a).float()) / scale
            return reconstruct

        out = {"dense": int((rates > 0.1).sum()), "dense_frac": float((rates > 0.1).float().mean())}
        kwargs = {"model": lm, "tokenizer": tokenizer, "seq_len": seq_len}
        with torch.no_grad():
            f = evals.spliced_fidelity(texts, layer, through(own), mean_state, **kwargs)
            g = evals.spliced_fidelity(texts, layer, through(post_hoc), mean_state, **kwargs)
        out.update(splice_cos=f["cosine"], splice_rec_mean=f["recovered_mean"],
                   splice_rec_zero=f["recovered_zero"], splice_neighbours=f["neighbours"],
                   splice_cos_posthoc=g["cosine"], splice_rec_mean_posthoc=g["recovered_mean"])
        return out

    return measure
