"""Inputs and files that must not be trusted blindly: checkpoints, activations, datasets and
training arguments are checked before they are used, and each refusal names its parameter or path."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import dfsae
from dfsae import checkpoint, metrics


def saved(tmp_path, model=None):
    model = model or dfsae.StandardSAE(6, 4, seed=0)
    checkpoint.save(model, tmp_path)
    return model


# -- Checkpoints -----------------------------------------------------------------------------------
def test_weights_that_are_not_finite_are_refused_on_save_and_on_load(tmp_path):
    model = dfsae.StandardSAE(6, 4, seed=0)
    with torch.no_grad():
        model.decoder.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="W_dec contain NaN or inf"):
        checkpoint.save(model, tmp_path / "a")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    saved(tmp_path / "b")
    tensors = load_file(str(tmp_path / "b" / "sae_weights.safetensors"))
    tensors["b_enc"][1] = float("inf")
    save_file(tensors, str(tmp_path / "b" / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match=r"sae_weights.safetensors: b_enc contain NaN or inf"):
        checkpoint.load(tmp_path / "b")


def test_the_family_must_agree_with_the_architecture(tmp_path):
    """A standard SAE relabelled decoder-free would load with its decoder dropped: refused."""
    saved(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    cfg["metadata"]["dfsae"]["family"] = "topk"
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'topk' is written as architecture 'topk', but cfg.json says "
                                         "'standard'"):
        checkpoint.load(tmp_path)
    cfg["metadata"]["dfsae"]["family"] = "decoder_free"   # same architecture name, but b_dec ≠ 0 ...
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    tensors["b_dec"] += 1.0
    save_file(tensors, str(tmp_path / "sae_weights.safetensors"))
    with pytest.raises(ValueError, match="decoder-free checkpoint has b_dec = 0"):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["metadata"].__setitem__("dfsae", "x"), "'metadata.dfsae' must be an object"),
    (lambda c: c["metadata"]["dfsae"].__setitem__("family", "gated"), "metadata.dfsae.family must be one of"),
    (lambda c: c["metadata"]["dfsae"].pop("family"), "metadata.dfsae.family must be one of"),
    (lambda c: c["metadata"]["dfsae"].__setitem__("unit_norm_decoder", "yes"),
     "metadata.dfsae: 'unit_norm_decoder' must be true or false"),
    (lambda c: c.__setitem__("apply_b_dec_to_input", "no"), "'apply_b_dec_to_input' must be true or false"),
    (lambda c: c.__setitem__("metadata", [1]), "'metadata' must be an object"),
])
def test_every_bad_cfg_value_is_named(tmp_path, edit, message):
    saved(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    edit(cfg)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=message):
        checkpoint.load(tmp_path)


def test_family_specific_metadata_is_named(tmp_path):
    checkpoint.save(dfsae.BatchTopKSAE(6, 4, k=2, seed=0), tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    del cfg["metadata"]["dfsae"]["k"]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="metadata.dfsae.k must be an integer"):
        checkpoint.load(tmp_path)


def test_damaged_files_are_named(tmp_path):
    saved(tmp_path)
    weights = tmp_path / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ValueError, match=f"{weights} cannot be read as safetensors"):
        checkpoint.load(tmp_path)
    saved(tmp_path)
    (tmp_path / "cfg.json").write_bytes(b"\xff\xfe{not text")
    with pytest.raises(ValueError, match="cfg.json is not valid JSON text"):
        checkpoint.load(tmp_path)


# -- Activations and datasets ----------------------------------------------------------------------
def test_load_activations_takes_floating_dtypes_only():
    x = torch.rand(5, 3)
    assert dfsae.load_activations(x, dtype="float64").dtype == torch.float64
    for bad in (torch.int64, "int8", "float", 3):
        with pytest.raises(ValueError, match="dtype must be a floating dtype.*truncate"):
            dfsae.load_activations(x, dtype=bad)


def test_evaluate_checks_the_dataset_before_any_work(digits, monkeypatch):
    model = dfsae.StandardSAE(784, 8, seed=0)

    def no_work(*args, **kwargs):
        raise AssertionError("a metric was computed")

    monkeypatch.setattr(metrics, "encode", no_work)
    with pytest.raises(ValueError, match="data must be a dfsae.Dataset.*got tuple"):
        metrics.evaluate(model, (digits.x_train, digits.y_train))
    one_row = dfsae.Dataset(digits.x_train, digits.y_train, digits.x_test[:1], digits.y_test[:1], "d")
    with pytest.raises(ValueError, match="x_test has 1 row.*at least 2 test"):
        metrics.evaluate(model, one_row)
    short = dfsae.Dataset(digits.x_train, digits.y_train[:-3], digits.x_test, digits.y_test, "d")
    with pytest.raises(ValueError, match=r"data.y_train has \d+ labels for \d+ rows of data.x_train"):
        metrics.evaluate(model, short)
    monkeypatch.undo()
    assert "probe_acc" not in metrics.evaluate(model, short, probe=False)   # labels unused without a probe


def test_encode_checks_its_batch_size():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        metrics.encode(dfsae.StandardSAE(6, 4), torch.rand(3, 6), batch_size=0)


def test_the_divergence_hint_fits_the_optimiser_in_use(digits):
    model = dfsae.DecoderFreeSAE(784, 16, seed=0)
    with pytest.raises(FloatingPointError) as err:
        dfsae.train(model, dfsae.DecoderFreeObjective(), digits.x_train[:512] * 1e20, epochs=1,
                    batch_size=128, optimizer="adam", progress=False)
    assert "lower lr or rescale the inputs" in str(err.value) and "optimizer='adam'" not in str(err.value)
