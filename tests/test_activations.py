"""Extraction of MiniLM-L6 hidden states on a tiny slice, checked against a direct forward pass."""

import pytest
import torch

from dfsae import activations

TEXTS = ["The quick brown fox jumps over the lazy dog near the river bank.",
         "Return the number of items in a container; raise an error when it is closed. " * 3,
         "Sparse autoencoders read the hidden states of language models."]


@pytest.fixture(scope="module")
def minilm():
    return activations.load_minilm()


def test_extract_matches_a_direct_forward_pass(minilm, tmp_path):
    tokenizer, model = minilm
    act = activations.extract(TEXTS, layer=2, n_tokens=40, seq_len=16, batch_size=3, cache_dir=tmp_path,
                              model=model, tokenizer=tokenizer, progress=False)
    assert act.x.shape == (40, activations.HIDDEN_SIZE) and act.x.dtype == torch.float32
    assert all(len(w) <= 14 for w in act.windows) and sum(map(len, act.windows)) == 40
    ids = tokenizer(TEXTS[0], add_special_tokens=False)["input_ids"]
    assert act.token_ids[:14].tolist() == ids[:14]
    # Each window alone, unpadded, through the model: same hidden states as the padded batches.
    for w in range(len(act.windows)):
        window = act.windows[w]
        with torch.no_grad():
            out = model(input_ids=torch.tensor([[tokenizer.cls_token_id, *window, tokenizer.sep_token_id]]),
                        output_hidden_states=True).hidden_states[2][0, 1:-1]
        assert torch.allclose(act.x[act.window == w], out, atol=1e-4)
    assert "⟦" in act.context(tokenizer, 3) and "fox" in act.context(tokenizer, 3)


def test_cache_is_reused_and_keyed_by_content(minilm, tmp_path, monkeypatch):
    tokenizer, model = minilm
    first = activations.extract(TEXTS, layer=1, n_tokens=20, seq_len=16, cache_dir=tmp_path, model=model,
                                tokenizer=tokenizer, progress=False)
    assert len(list(tmp_path.glob("minilm-*.safetensors"))) == 1

    def no_model(*args, **kwargs):
        raise AssertionError("the model was run although the cache holds the result")

    monkeypatch.setattr(activations, "load_minilm", no_model)
    again = activations.extract(TEXTS, layer=1, n_tokens=20, seq_len=16, cache_dir=tmp_path, progress=False)
    assert torch.equal(again.x, first.x) and again.key == first.key
    keys = {activations.cache_key(TEXTS, 1, 20, 16), activations.cache_key(TEXTS, 2, 20, 16),
            activations.cache_key(TEXTS[:2], 1, 20, 16), activations.cache_key(TEXTS, 1, 21, 16)}
    assert len(keys) == 4


@pytest.mark.parametrize("kwargs,name", [({"layer": 7}, "layer"), ({"layer": -1}, "layer"),
                                         ({"n_tokens": 0}, "n_tokens"), ({"seq_len": 600}, "seq_len"),
                                         ({"n_tokens": 10_000}, "n_tokens")])
def test_bad_extraction_parameters(minilm, kwargs, name):
    tokenizer, model = minilm
    with pytest.raises(ValueError, match=name):
        activations.extract(TEXTS, **{"n_tokens": 10, **kwargs}, model=model, tokenizer=tokenizer,
                            progress=False)


def test_stdlib_docstrings_reads_without_importing(tmp_path):
    (tmp_path / "mod.py").write_text('"""' + "A module about widgets. " * 10 + '\n\n>>> widget()\n"""\n'
                                     'raise SystemExit("must not run")\n'
                                     'def f():\n    """short"""\n')
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.py").write_text('"""' + "test prose " * 40 + '"""\n')
    docs = activations.stdlib_docstrings(min_chars=100, root=tmp_path)
    assert docs == [("A module about widgets. " * 10).strip()]
    with pytest.raises(FileNotFoundError):
        activations.stdlib_docstrings(root=tmp_path / "absent")


def test_the_cache_equals_a_fresh_extraction_windows_included(minilm, tmp_path):
    tokenizer, model = minilm
    kwargs = {"layer": 1, "n_tokens": 30, "seq_len": 12, "model": model, "tokenizer": tokenizer,
              "progress": False}
    first = activations.extract(TEXTS, cache_dir=tmp_path, **kwargs)
    again = activations.extract(TEXTS, cache_dir=tmp_path, **kwargs)
    assert again.windows == first.windows and torch.equal(again.position, first.position)
    assert again.layer == first.layer and torch.equal(again.token_ids, first.token_ids)


@pytest.mark.parametrize("damage", ["truncate", "pickle", "other-key"])
def test_a_damaged_cache_names_its_path_and_is_rebuilt(minilm, tmp_path, damage):
    """A truncated file, a pickle (which safetensors will not execute) or another run's cache under
    this name: a warning with the path, then a fresh extraction that replaces the file."""
    import pickle

    tokenizer, model = minilm
    kwargs = {"layer": 1, "n_tokens": 20, "seq_len": 16, "model": model, "tokenizer": tokenizer,
              "progress": False}
    good = activations.extract(TEXTS, cache_dir=tmp_path, **kwargs)
    (path,) = tmp_path.glob("minilm-*.safetensors")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "pickle":
        path.write_bytes(pickle.dumps({"x": "not activations"}))
    else:
        other = activations.extract(TEXTS[:2], cache_dir=tmp_path / "other", **kwargs)
        path.write_bytes(next((tmp_path / "other").glob("*.safetensors")).read_bytes())
        assert other.key != good.key
    with pytest.warns(UserWarning, match=f"{path}.*rebuilding"):
        again = activations.extract(TEXTS, cache_dir=tmp_path, **kwargs)
    assert torch.equal(again.x, good.x)
    assert activations.read_cache(path, good.key) is not None          # the rebuilt file is good


def test_texts_and_cache_dir_are_checked_before_any_work(tmp_path, monkeypatch):
    def no_model(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(activations, "load_minilm", no_model)
    with pytest.raises(ValueError, match="single string.*\\[text\\]"):
        activations.extract("hello world", n_tokens=3)
    with pytest.raises(ValueError, match="cache_dir is ''"):
        activations.extract(TEXTS, n_tokens=3, cache_dir="")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cache_dir.*cannot be created or written"):
        activations.extract(TEXTS, n_tokens=3, cache_dir=blocker / "cache")


def test_several_layers_in_one_pass_equal_one_layer_at_a_time(minilm, tmp_path, monkeypatch):
    tokenizer, model = minilm
    kwargs = {"n_tokens": 25, "seq_len": 12, "model": model, "tokenizer": tokenizer, "progress": False}
    calls = []
    real_forward = model.forward

    def counted(*args, **kw):
        calls.append(1)
        return real_forward(*args, **kw)

    monkeypatch.setattr(model, "forward", counted)
    both = activations.extract_layers(TEXTS, layers=[4, 0], cache_dir=tmp_path, **kwargs)
    passes = len(calls)
    assert list(both) == [0, 4] and passes == -(-len(both[0].windows) // 32)   # one pass over the windows
    for layer in (0, 4):
        alone = activations.extract(TEXTS, layer=layer, **kwargs)
        assert torch.equal(both[layer].x, alone.x) and both[layer].layer == layer
        assert both[layer].key == activations.cache_key(TEXTS, layer, 25, 12)
    calls.clear()
    again = activations.extract_layers(TEXTS, layers=[0, 4], cache_dir=tmp_path, **kwargs)
    assert calls == [] and torch.equal(again[4].x, both[4].x)            # both layers came from the cache
    with pytest.raises(ValueError, match="layers must be a non-empty list"):
        activations.extract_layers(TEXTS, layers=3, **kwargs)
    with pytest.raises(ValueError, match="layer must be between 0"):
        activations.extract_layers(TEXTS, layers=[2, 9], **kwargs)


PAGE = """<html><body><div class="nav">Navigation text</div>
<div class="body" role="main"><h1>Lists</h1><p>A list holds items &amp; keeps their order.</p>
<div class="note"><p>Nested text stays.</p></div><pre>x = [1, 2]  # code is left out</pre>
<p>After the code.</p></div><div class="footer">Footer text</div></body></html>"""


def test_python_docs_reads_the_main_prose_of_each_page(tmp_path):
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "lists.html").write_text(PAGE)
    (tmp_path / "short.html").write_text('<div role="main"><p>Too short.</p></div>')
    docs = activations.python_docs(tmp_path, min_chars=20)
    assert docs == {"library/lists.html": "Lists A list holds items & keeps their order. Nested text stays. "
                                          "After the code."}
    with pytest.raises(FileNotFoundError, match="apt-get install python3.11-doc"):
        activations.python_docs(tmp_path / "missing")


def test_documents_are_split_whole_deterministically_and_stably():
    names = [f"page{i}.html" for i in range(400)]
    train, test = activations.split_documents(names, test_fraction=0.1)
    assert set(train).isdisjoint(test) and sorted(train + test) == sorted(names)
    assert 20 <= len(test) <= 60 and activations.split_documents(names, 0.1) == (train, test)
    fewer_train, fewer_test = activations.split_documents(names[:200], 0.1)
    assert set(fewer_test) == set(test) & set(names[:200])          # a page keeps its side
    with pytest.raises(ValueError, match="test_fraction"):
        activations.split_documents(names, 1.5)


@pytest.mark.skipif(not activations.PYTHON_DOCS.is_dir(), reason="python3.11-doc is not installed")
def test_the_python_documentation_holds_over_two_million_tokens(minilm):
    tokenizer, _ = minilm
    docs = activations.python_docs()
    tokens = sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in docs.values())
    assert len(docs) >= 500 and tokens >= 2_000_000


def test_hash_order_is_a_fixed_permutation_not_the_sorted_order():
    names = [f"page{i:03d}.html" for i in range(200)]
    ordered = activations.hash_order(names)
    assert sorted(ordered) == names and ordered != names
    assert activations.hash_order(list(reversed(names))) == ordered        # input order does not matter
    # a page keeps its place relative to the others when one is removed
    assert [n for n in ordered if n != "page007.html"] == activations.hash_order(names[:7] + names[8:])
    assert activations.hash_order(names, salt="other") != ordered


def test_sentences_splits_after_end_marks_and_keeps_lengths():
    text = ("Short one. " + "A sentence that is long enough to be kept here. "
            + "Is this question long enough to be kept too? " + "x" * 500
            + ". Tail end of the text that is kept as well!")
    got = activations.sentences([text], 3)
    assert got == ["A sentence that is long enough to be kept here.",
                   "Is this question long enough to be kept too?",
                   "Tail end of the text that is kept as well!"]
    with pytest.raises(ValueError, match=r"only 3 sentences.*lower n"):
        activations.sentences([text], 4)
    with pytest.raises(ValueError, match="n"):
        activations.sentences([text], 0)
