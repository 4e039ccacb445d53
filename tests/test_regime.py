"""The measurements a stored run at scale carries (dfsae.paper.regime) and the hook that adds them:
checked against models whose reconstruction is known in closed form, and against brute force."""

import pytest
import torch

import dfsae
from dfsae import activations, evals
from dfsae.paper import experiments as ex
from dfsae.paper import regime

TEXTS = ["The module provides a way to read files.", "Numbers can be added, subtracted and compared.",
         "An exception is raised when the key is missing.", "Threads share the memory of their process.",
         "A list keeps its items in order.", "The socket waits until data arrives.",
         "Dates are printed in the local format.", "Each test runs in a fresh directory."]


class Identity(torch.nn.Module):
    """A 'model' whose code is its input and whose decoder is the identity: a perfect reconstruction."""
    codes_are_energies = False

    def check_input(self, x):
        return x

    def encode(self, x):
        return x

    def decode(self, a):
        return a


@pytest.fixture(scope="module")
def minilm():
    return activations.load_minilm()


@pytest.fixture(scope="module")
def states(minilm):
    tokenizer, model = minilm
    acts = activations.extract_layers(TEXTS * 4, (3,), n_tokens=240, model=model, tokenizer=tokenizer,
                                      progress=False)[3]
    return acts.x


def test_measure_adds_its_metrics_and_refuses_a_standard_name(digits):
    small = type(digits)(digits.x_train[::32], None, digits.x_test[::16], None, "small")
    config = ex.RunConfig.of("topk", k=2, hidden_dim=8, epochs=1, batch_size=64)
    seen = []
    _, _, out = ex.run(config, small, 0, probe=False, measure=lambda m: seen.append(m) or {"extra": 1.5})
    assert out["extra"] == 1.5 and isinstance(seen[0], dfsae.TopKSAE)
    with pytest.raises(ValueError, match=r"measure returned \['l0'\]"):
        ex.run(config, small, 0, probe=False, measure=lambda m: {"l0": 0.0})


def test_a_perfect_reconstruction_recovers_everything_and_the_density_is_counted_by_hand(minilm, states):
    tokenizer, model = minilm
    scale = 2.5                                       # inputs are scaled states; the splice must undo it
    x = states * scale
    measure = regime.field_measure(x[:160], x[160:], TEXTS, 3, scale, states.mean(0), model, tokenizer)
    out = measure(Identity())
    assert out["splice_cos"] == pytest.approx(1.0, abs=1e-6)
    assert out["splice_rec_mean"] == pytest.approx(1.0, abs=1e-5)
    assert out["splice_rec_zero"] == pytest.approx(1.0, abs=1e-5)
    assert out["splice_neighbours"] == pytest.approx(1.0)
    assert out["splice_rec_mean_posthoc"] == pytest.approx(1.0, abs=1e-3)   # least squares of x on x
    rates = (x[160:] > 0).float().mean(0)
    assert out["dense"] == int((rates > 0.1).sum()) and out["dense_frac"] == pytest.approx(out["dense"] / 384)
    assert set(out) == set(regime.FIELD_METRICS)


def test_an_energy_model_is_spliced_through_its_implicit_decoder(minilm, states):
    tokenizer, model = minilm
    df = dfsae.DecoderFreeSAE(384, 384)
    with torch.no_grad():
        df.encoder.weight.copy_(3 * torch.eye(384))
        df.encoder.bias.zero_()
    x = states * 1.7
    e_fit = torch.relu(3 * x[:160])                   # E = relu(3x) for W = 3I, b = 0
    c = float((x[:160] * 3 * e_fit).sum() / (9 * e_fit * e_fit).sum())  # least squares of x on WᵀE, by hand
    out = regime.field_measure(x[:160], x[160:], TEXTS, 3, 1.7, states.mean(0), model, tokenizer)(df)
    by_hand = evals.spliced_fidelity(TEXTS, 3, lambda h: c * 3 * torch.relu(3 * h * 1.7) / 1.7,
                                     states.mean(0), model=model, tokenizer=tokenizer)
    assert out["splice_rec_mean"] == pytest.approx(by_hand["recovered_mean"], abs=1e-5)
    assert out["splice_cos"] == pytest.approx(by_hand["cosine"], abs=1e-6)
    assert out["splice_cos"] < 0.999                  # relu(x) is not x: the read-out matters


def test_no_texts_is_refused():
    with pytest.raises(ValueError, match="texts"):
        regime.field_measure(torch.zeros(2, 384), torch.zeros(2, 384), [], 3, 1.0, torch.zeros(384))


def test_the_names_found_without_the_transformer_are_the_extracted_ones(minilm, tmp_path):
    tokenizer, model = minilm
    docs = {f"page{i}": TEXTS[i % 8] * 3 for i in range(40)}
    train, test = activations.split_documents(list(docs))
    got = regime.layer_data(docs, train, test, [2, 4], 300, 60, 64, 100, cache_dir=tmp_path, lm=model,
                            tokenizer=tokenizer)
    names = regime.layer_names(docs, train, test, [2, 4], 300, 60, 64, 100)
    assert {layer: d.data.name for layer, d in got.items()} == names
    assert names[2] != names[4] and names[2].endswith("-eval100")
    for d in got.values():
        assert d.data.x_train.pow(2).sum(1).mean() == pytest.approx(384, rel=1e-4)   # E‖x‖² = d
        rows = [int((d.data.x_train == r).all(1).nonzero()[0]) for r in d.eval_data.x_train[:5]]
        assert torch.equal(d.eval_data.x_train[:5], d.data.x_train[rows])
    assert torch.allclose(got[2].mean_state, got[2].act.x.mean(0))


PAGE = ('<html><body><div role="main"><p>' + "A page of prose long enough to be kept as a document. " * 5
        + '</p></div></body></html>')


def test_corpus_digest_is_sha256_of_the_sorted_pages_and_sees_any_change():
    import hashlib
    import json
    docs = {"b.html": "second page", "a.html": "first page"}
    expected = hashlib.sha256(b'{"a.html": "first page", "b.html": "second page"}').hexdigest()
    assert json.dumps(docs, sort_keys=True) == '{"a.html": "first page", "b.html": "second page"}'
    assert activations.corpus_digest(docs) == expected
    assert activations.corpus_digest({"a.html": "first page", "b.html": "second page"}) == expected
    assert activations.corpus_digest({**docs, "b.html": "second page."}) != expected


def test_documents_refuse_another_corpus_and_say_how_to_get_the_pinned_one(tmp_path, monkeypatch):
    (tmp_path / "page.html").write_text(PAGE)
    with pytest.raises(ValueError, match=r"not the book's corpus.*python3\.11-doc=3\.11\.2-6\+deb12u8.*"
                                         r"DFSAE_PYTHON_DOCS"):
        regime.documents(tmp_path)
    monkeypatch.setenv("DFSAE_PYTHON_DOCS", str(tmp_path))           # the variable is where pages are read
    assert list(activations.python_docs()) == ["page.html"]
    with pytest.raises(ValueError, match="not the book's corpus"):
        regime.documents()


@pytest.mark.skipif(not activations.PYTHON_DOCS.is_dir(), reason="python3.11-doc is not installed")
def test_the_installed_python_documentation_is_the_pinned_corpus(monkeypatch):
    monkeypatch.delenv("DFSAE_PYTHON_DOCS", raising=False)
    docs, train, test = regime.documents()        # raises, naming the fix, when another version is installed
    assert len(docs) == len(train) + len(test) and set(train).isdisjoint(test)
