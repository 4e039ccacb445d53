"""SAELens checkpoints: save, read back independently, load, and compare behaviour."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import dfsae
from dfsae import DecoderFreeSAE, StandardSAE, TopKSAE, checkpoint


def trained_like(model):
    """Non-default weights everywhere (biases and thresholds included), so a lost tensor would show."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        if isinstance(model, dfsae.BatchTopKSAE):
            model.threshold.fill_(0.3)
        if isinstance(model, dfsae.TiedSAE):
            model.decoder_scale.fill_(0.7)
    return model


OPTIONS = {"topk": {"k": 3}, "batchtopk": {"k": 3}}
def make_model(name):
    return dfsae.family(name).config.make(**OPTIONS.get(name, {})).build(12, 20)[0]


FAMILIES = [pytest.param(lambda name=name: make_model(name), id=name) for name in dfsae.FAMILIES]


def saelens_codes(x, t, cfg):
    """SAELens's encode on raw inputs, written out independently of dfsae."""
    pre = (x - t["b_dec"] * cfg["apply_b_dec_to_input"]) @ t["W_enc"] + t["b_enc"]
    if cfg["architecture"] == "topk":
        pre = torch.where(pre >= pre.topk(cfg["k"], dim=-1).values[:, -1:], pre, torch.zeros_like(pre))
    if cfg["architecture"] == "jumprelu":
        pre = pre * (pre > t["threshold"])
    return torch.relu(pre)


@pytest.mark.parametrize("make", FAMILIES)
def test_round_trip_same_codes_and_reconstructions(tmp_path, make):
    model = trained_like(make())
    checkpoint.save(model, tmp_path / "ckpt", model_name="minilm-l6", hook_layer=3)
    loaded, cfg = checkpoint.load(tmp_path / "ckpt")
    assert type(loaded) is type(model) and cfg["raw"]["metadata"]["hook_layer"] == 3
    assert cfg["d_in"] == 12 and cfg["d_sae"] == 20
    assert cfg["dfsae"]["family"] == checkpoint.family_of(model).name
    x = torch.randn(30, 12, generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded.encode(x), model.encode(x))
    if model.has_decoder:
        assert torch.equal(loaded.decode(loaded.encode(x)), model.decode(model.encode(x)))


@pytest.mark.parametrize("make", FAMILIES)
def test_input_scale_is_folded_so_raw_inputs_give_the_same_codes(tmp_path, make):
    model, s = trained_like(make()).double(), 3.7
    checkpoint.save(model, tmp_path, input_scale=s)
    t = {k: v.double() for k, v in load_file(str(tmp_path / "sae_weights.safetensors")).items()}
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    x = torch.randn(8, 12, dtype=torch.float64)
    with torch.no_grad():
        expected = model.encode(s * x)
        codes = saelens_codes(x, t, cfg)
        assert torch.allclose(codes, expected, atol=1e-10)
        x_hat = codes @ t["W_dec"] + t["b_dec"]
        own = model.decode(expected) if model.has_decoder else model.implicit_decode(expected)
        assert torch.allclose(x_hat, own / s, atol=1e-10)      # reconstructions in raw units


def test_decoder_free_codes_are_documented_as_energies(tmp_path):
    model = trained_like(DecoderFreeSAE(12, 20))
    checkpoint.save(model, tmp_path, decoder_scale=0.5)
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["architecture"] == "standard" and cfg["apply_b_dec_to_input"] is False
    assert cfg["metadata"]["sae_lens_version"] >= "6" and cfg["normalize_activations"] == "none"
    assert torch.allclose(tensors["W_dec"], 0.5 * tensors["W_enc"].T) and not tensors["b_dec"].any()
    info = cfg["metadata"]["dfsae"]
    assert info["family"] == "decoder_free" and "LOW means a good match" in info["codes"]
    assert "softmax(-E)" in info["rank_features_by"]


@pytest.mark.parametrize("activation", ["softplus", "identity"])
def test_energies_saelens_cannot_compute_are_refused(tmp_path, activation):
    with pytest.raises(ValueError, match=f"activation='{activation}'.*ReLU"):
        checkpoint.save(DecoderFreeSAE(6, 4, activation=activation), tmp_path)
    assert list(tmp_path.iterdir()) == []


def write(folder, cfg, tensors=None, d_in=6, d_sae=4):
    folder.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(0)
    tensors = tensors or {"W_enc": torch.randn(d_in, d_sae, generator=g),
                          "b_enc": torch.randn(d_sae, generator=g),
                          "W_dec": torch.randn(d_sae, d_in, generator=g),
                          "b_dec": torch.randn(d_in, generator=g)}
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps(cfg))
    return tensors


def test_legacy_layouts_load(tmp_path):
    t = write(tmp_path / "old_topk", {"d_in": 6, "d_sae": 4, "dtype": "float32", "activation_fn_str": "topk",
                                      "activation_fn_kwargs": {"k": 2}, "apply_b_dec_to_input": True})
    model, cfg = checkpoint.load(tmp_path / "old_topk")
    assert isinstance(model, TopKSAE) and model.k == 2 and cfg["architecture"] == "topk"
    x = torch.randn(3, 6)
    pre = (x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
    assert ((model.encode(x) > 0).sum(1) <= 2).all()
    assert torch.allclose(model.encode(x).max(1).values, torch.relu(pre).max(1).values)
    old_df = {"d_in": 6, "d_sae": 4, "architecture": "decoder_free", "activation_fn_str": "relu"}
    t = write(tmp_path / "old_df", old_df, {"W_enc": torch.randn(6, 4), "b_enc": torch.randn(4),
                                            "W_dec": torch.randn(4, 6), "b_dec": torch.zeros(6)})
    model, _ = checkpoint.load(tmp_path / "old_df")
    assert isinstance(model, DecoderFreeSAE)
    assert torch.allclose(model.encode(x), torch.relu(x @ t["W_enc"] + t["b_enc"]))


def test_a_standard_sae_without_b_dec_subtraction_is_folded(tmp_path):
    t = write(tmp_path, {"d_in": 6, "d_sae": 4, "dtype": "float32", "architecture": "standard",
                         "apply_b_dec_to_input": False, "metadata": {"sae_lens_version": "6.54.12"}})
    model, _ = checkpoint.load(tmp_path)
    x = torch.randn(5, 6)
    with torch.no_grad():
        assert torch.allclose(model.encode(x), torch.relu(x @ t["W_enc"] + t["b_enc"]), atol=1e-5)


@pytest.mark.parametrize("change,message", [
    ({"d_sae": 5}, "W_enc has shape"),
    ({"architecture": "jumprelu"}, "'standard' is written as architecture 'standard', but cfg.json says "
                                   "'jumprelu'"),
    ({"dtype": "int8"}, "'dtype' must be one of"),
    ({"d_in": "six"}, "'d_in' must be a positive integer"),
    ({"architecture": None}, "says None"),
    ({"normalize_activations": "expected_average_only_in"}, "normalize_activations"),
])
def test_bad_configs_name_the_key(tmp_path, change, message):
    checkpoint.save(StandardSAE(6, 4), tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, **change}))
    with pytest.raises(ValueError, match=message):
        checkpoint.load(tmp_path)


@pytest.mark.parametrize("key", ["d_in", "d_sae", "architecture"])
def test_missing_keys_are_named(tmp_path, key):
    checkpoint.save(StandardSAE(6, 4), tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    del cfg[key]
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=f"no '{key}'"):
        checkpoint.load(tmp_path)


def test_missing_files_and_reserved_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json|sae_weights"):
        checkpoint.load(tmp_path)
    with pytest.raises(ValueError, match="override"):
        checkpoint.save(StandardSAE(6, 4), tmp_path / "x", dfsae={})
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", fail)
    with pytest.raises(OSError):
        checkpoint.save(StandardSAE(6, 4), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_files_follow_the_umask(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        checkpoint.save(StandardSAE(6, 4), tmp_path)
    finally:
        os.umask(old)
    for name in ("cfg.json", "sae_weights.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644
