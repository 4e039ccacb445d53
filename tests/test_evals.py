"""The field's evaluations against hand-computed cases, and the splice against the model's own
hidden states."""

import numpy as np
import pytest
import torch

import dfsae
from dfsae import activations, evals

TEXTS = ["The quick brown fox jumps over the lazy dog.", "Return the number of items in a container.",
         "Sparse autoencoders read hidden states.", "A dog runs across the green field.",
         "Count the items and raise an error when the container is closed.", "The cat sleeps."]


def test_density_by_hand():
    codes = torch.tensor([[1.0, 0, 0], [2.0, 0, 0], [0.0, 0, 3.0], [1.0, 0, 0]])
    d = evals.density(codes, dense_threshold=0.5, bins=2)
    assert d["rates"].tolist() == [0.75, 0.0, 0.25] and d["dead"] == 1 and d["dense"] == 1
    assert evals.density(codes)["dense"] == 2                       # the default, 10 %
    # log10 rates of the live latents, -0.125 and -0.602, in two bins over [log10(1/4), 0]
    assert d["counts"].tolist() == [1, 1] and d["log10_edges"][0] == pytest.approx(np.log10(0.25))
    assert evals.density(codes, threshold=1.5)["rates"].tolist() == [0.25, 0.0, 0.25]


def test_shrinkage_by_hand():
    x = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    assert evals.shrinkage(x, 0.8 * x) == pytest.approx({"gamma": 0.8, "norm_ratio": 0.8})
    assert evals.shrinkage(x, x)["gamma"] == pytest.approx(1.0)
    x_hat = torch.tensor([[3.0, 4.0], [0.0, 1.0]])                  # E‖x̂‖² = 26, E<x̂, x> = 25 + 0
    assert evals.shrinkage(x, x_hat)["gamma"] == pytest.approx(26 / 25)
    with pytest.raises(ValueError, match="orthogonal or opposite"):
        evals.shrinkage(x, -x)


def test_k_sparse_probe_finds_the_latent_that_carries_the_property():
    rng = np.random.default_rng(0)
    y = rng.random(400) < 0.3
    codes = rng.random((400, 10))
    codes[:, 7] = y * 2.0 + rng.random(400) * 0.1                   # latent 7 is the property
    codes[:, 2] = y * 0.5 + rng.random(400)                          # latent 2 carries a little of it
    one = evals.k_sparse_probe(codes[:300], y[:300], codes[300:], y[300:], k=1)
    assert one["latents"] == [7] and one["accuracy"] == 1.0 and one["balanced_accuracy"] == 1.0
    assert evals.k_sparse_probe(codes[:300], y[:300], codes[300:], y[300:], k=2)["latents"] == [7, 2]
    with pytest.raises(ValueError, match="both classes"):
        evals.k_sparse_probe(codes, np.zeros(400), codes, y, k=1)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 10\\]"):
        evals.k_sparse_probe(codes, y, codes, y, k=11)


def test_k_sparse_probe_does_not_predict_a_rare_property_away():
    # 5 % positives and a latent that shifts by one noise sd: an unweighted logistic regression
    # predicts "negative" everywhere (balanced accuracy 0.5); the class-weighted one finds the shift.
    # The closed form for a threshold at the midpoint of two unit normals 1 apart: Φ(0.5) ≈ 0.69.
    rng = np.random.default_rng(1)
    y = rng.random(20000) < 0.05
    codes = np.stack([y + rng.standard_normal(20000), rng.standard_normal(20000)], axis=1)
    got = evals.k_sparse_probe(codes[:10000], y[:10000], codes[10000:], y[10000:], k=1)
    assert got["latents"] == [0] and abs(got["balanced_accuracy"] - 0.69) < 0.03


def test_fidelity_recovered_and_neighbour_retention_by_hand():
    assert evals.fidelity_recovered(0.4, 0.1) == pytest.approx(0.75)
    assert evals.fidelity_recovered(0.4, 0.4) == 0.0 and evals.fidelity_recovered(0.4, 0.0) == 1.0
    with pytest.raises(ValueError, match="nothing to recover"):
        evals.fidelity_recovered(0.0, 0.1)
    square = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert evals.neighbour_retention(square, square, k=1) == 1.0
    swapped = square[[2, 3, 0, 1]]                                   # every row's neighbour changes
    assert evals.neighbour_retention(square, swapped, k=1) == 1.0    # ... but the pairs stay pairs
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert evals.neighbour_retention(square, mixed, k=1) == 0.0


def test_readings_of_a_decoder_free_code():
    model = dfsae.DecoderFreeSAE(4, 3, seed=0)
    e = torch.tensor([[0.0, 1.0, 3.0]])
    assert torch.equal(evals.reading(model, e, "similarity"), torch.tensor([[3.0, 2.0, 0.0]]))
    assert torch.allclose(evals.reading(model, e, "responsibility"), torch.softmax(-e, dim=1))
    assert evals.reading_threshold("responsibility", 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="energies"):
        evals.reading(dfsae.StandardSAE(4, 3), e, "similarity")


@pytest.fixture(scope="module")
def minilm():
    return activations.load_minilm()


@pytest.mark.parametrize("layer", [0, 3])
def test_the_splice_sees_the_hidden_states_extract_reads_and_identity_changes_nothing(minilm, layer):
    tokenizer, model = minilm
    seen = []

    def identity(h):
        seen.append(h.clone())
        return h

    clean = evals.sentence_embeddings(TEXTS, model=model, tokenizer=tokenizer)
    spliced = evals.sentence_embeddings(TEXTS, layer=layer, replace=identity, model=model,
                                        tokenizer=tokenizer)
    assert torch.allclose(spliced, clean, atol=1e-6)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].bool()
    pooled = (out.last_hidden_state * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(clean, torch.nn.functional.normalize(pooled, dim=1), atol=1e-6)
    real = mask.clone()
    real[:, 0] = False
    real[torch.arange(len(TEXTS)), mask.sum(1) - 1] = False
    assert torch.allclose(seen[0], out.hidden_states[layer][real], atol=1e-5)
    assert len(seen[0]) == int(real.sum())                         # [CLS], [SEP] and padding are kept


def test_spliced_fidelity_orders_perfect_ablated_and_noisy(minilm):
    tokenizer, model = minilm
    mean = torch.zeros(384)
    g = torch.Generator().manual_seed(0)
    perfect = evals.spliced_fidelity(TEXTS, 3, lambda h: h, mean, k=2, model=model, tokenizer=tokenizer)
    assert perfect["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert perfect["recovered_zero"] == pytest.approx(1.0)
    noisy = evals.spliced_fidelity(TEXTS, 3, lambda h: h + 0.5 * torch.randn(h.shape, generator=g), mean, k=2,
                                   model=model, tokenizer=tokenizer)
    assert noisy["cosine_zero"] < noisy["cosine"] < 1.0 and 0.0 < noisy["recovered_zero"] < 1.0
    clean_again = evals.sentence_embeddings(TEXTS, model=model, tokenizer=tokenizer)
    assert torch.allclose(clean_again, evals.sentence_embeddings(TEXTS, model=model, tokenizer=tokenizer))
    with pytest.raises(ValueError, match="layer and replace together"):
        evals.sentence_embeddings(TEXTS, layer=2, model=model, tokenizer=tokenizer)


def test_token_properties_by_hand():
    props = evals.token_properties(["The", "##ing", ",", "42", "apple", "##s", "Über", "x2"])
    assert props["word_start"].tolist() == [True, False, True, True, True, False, True, True]
    assert props["punctuation"].tolist() == [False, False, True, False, False, False, False, False]
    assert props["digit"].tolist() == [False, False, False, True, False, False, False, True]
    assert props["capitalised"].tolist() == [True, False, False, False, False, False, True, False]
    assert props["first_letter"].tolist() == ["t", "", "", "", "a", "", "", "x"]


def test_absorption_by_hand():
    """d = 3, the probe is the first axis. Latent 0 is the main "starts with the letter" latent;
    latent 1 points mostly along the probe (cosine 0.6) and latent 2 is orthogonal to it."""
    decoder = np.array([[1.0, 0, 0], [0.6, 0.8, 0], [0.0, 0, 1.0]])
    codes = np.array([[1.0, 0, 0],      # the main latent fires: not a false negative
                      [0.0, 2, 0],      # only latent 1: its share 2·0.6 = 1.2 ≥ 0.4·1.0 → absorbed
                      [0.0, 0, 1],      # only latent 2: a false negative, not absorbed
                      [0.0, 0.1, 0],    # latent 1 carries 0.06 < 0.4: a false negative, not absorbed
                      [1.0, 0, 0]])     # does not start with the letter: not counted
    x = np.array([[1.0, 0, 0], [1.0, 1, 0], [1.0, 0, 1], [1.0, 0, 0], [-1.0, 0, 0]])
    labels = np.array([True, True, True, True, False])
    out = evals.absorption(x, codes, codes > 0, decoder, labels, probe_direction=np.array([2.0, 0, 0]),
                           probe_bias=0.0, main_latents=[0])
    assert out["recognised"] == 4 and out["false_negatives"] == 3 and out["absorbed"] == 1
    assert out["absorption_rate"] == 0.25 and out["false_negative_rate"] == 0.75
    strict = evals.absorption(x, codes, codes > 0, decoder, labels, np.array([2.0, 0, 0]), 0.0, [0],
                              cos_threshold=0.7)
    assert strict["absorbed"] == 0                                  # latent 1's cosine 0.6 is below 0.7
    with pytest.raises(ValueError, match="one row per token"):
        evals.absorption(x[:3], codes, codes > 0, decoder, labels, np.ones(3), 0.0, [0])


# -- Density over training --------------------------------------------------------------------------
MONITORED = {"topk": {"k": 3}, "batchtopk": {"k": 3}, "decoder_free": {}, "standard": {}}


def monitored_run(name, monitor=None, seed=0):
    rng = torch.Generator().manual_seed(1)
    x = torch.randn(200, 6, generator=rng)
    model, objective = dfsae.family(name).config.make(**MONITORED[name]).build(6, 12, seed)
    dfsae.train(model, objective, x, epochs=3, batch_size=32, seed=seed, progress=False, monitor=monitor)
    return model


def brute_density(model, x, threshold=0.0, dense=0.1):
    """Dead and dense counts by looping over latents and inputs one at a time."""
    with torch.no_grad():
        codes = model.encode(x).tolist()
    dead = dense_n = 0
    for j in range(len(codes[0])):
        fired = sum(1 for row in codes if row[j] > threshold)
        dead += fired == 0
        dense_n += fired / len(codes) > dense
    l0 = sum(sum(1 for v in row if v > threshold) for row in codes) / len(codes)
    return dead, dense_n, l0


@pytest.mark.parametrize("name", list(MONITORED))
def test_density_monitor_does_not_change_training(name):
    """The monitor reads the model between steps; TopK's dead-latent counts and BatchTopK's
    threshold live in the objective and the model, and must not see the monitor's inputs."""
    watched = evals.DensityMonitor(torch.randn(50, 6) * 3, every=2)
    a, b = monitored_run(name), monitored_run(name, watched)
    for (key, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), key
    assert len(watched.rows) > 2
    b.train()
    watched(b, 99)
    assert b.training                                 # left in the mode training had put it in


def test_density_monitor_records_at_the_right_steps_against_brute_force():
    x_held = torch.randn(64, 6, generator=torch.Generator().manual_seed(3))
    watched = evals.DensityMonitor(x_held, every=5, dense_threshold=0.2)
    model = monitored_run("topk", watched)
    steps = watched.to_frame().index.tolist()
    assert steps == [0, 5, 10, 15, 18]                # 3 epochs of 6 batches: every 5, then the last
    dead, dense_n, l0 = brute_density(model, x_held, dense=0.2)
    last = watched.to_frame().loc[18]
    assert (last.dead, last.dense) == (dead, dense_n) and last.l0 == pytest.approx(l0)
    fresh, _ = dfsae.family("topk").config.make(k=3).build(6, 12, 0)
    first = watched.to_frame().loc[0]
    assert (first.dead, first.dense) == brute_density(fresh, x_held, dense=0.2)[:2]
    assert first.l0 == pytest.approx(3.0)             # TopK: k active latents per input (ties aside)


def test_density_monitor_reads_the_decoder_free_responsibilities():
    x_held = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    watched = evals.DensityMonitor(x_held, every=100, reading="responsibility")
    model = monitored_run("decoder_free", watched)
    assert watched.to_frame().index.tolist() == [0, 18]
    with torch.no_grad():
        r = torch.softmax(-model.encode(x_held), dim=1)
    read_out = type("Responsibilities", (), {"encode": lambda self, x: r})()
    dead, dense_n, l0 = brute_density(read_out, x_held, threshold=1 / 12)
    last = watched.to_frame().loc[18]
    assert (last.dead, last.dense) == (dead, dense_n) and last.l0 == pytest.approx(l0)


def test_density_monitor_bad_input_names_the_parameter():
    x = torch.randn(10, 6)
    with pytest.raises(ValueError, match="every"):
        evals.DensityMonitor(x, every=0)
    with pytest.raises(ValueError, match="reading"):
        evals.DensityMonitor(x, reading="energy")
    with pytest.raises(ValueError, match="dense_threshold"):
        evals.DensityMonitor(x, dense_threshold=2)
    with pytest.raises(ValueError, match="x contains NaN"):
        evals.DensityMonitor(torch.full((3, 6), float("nan")))
    with pytest.raises(ValueError, match="monitor.x has 5 features.*input_dim=6"):
        monitored_run("topk", evals.DensityMonitor(torch.randn(10, 5)))
    with pytest.raises(ValueError, match="monitor must be called"):
        monitored_run("topk", lambda model, step: None)
