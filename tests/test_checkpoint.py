"""SAELens-style checkpoints: save, read back independently, load, and compare behaviour."""

import json

import pytest
import torch
from safetensors.torch import load_file

from dfsae import DecoderFreeSAE, StandardSAE, TopKSAE, checkpoint


def trained_like(model):
    """Non-default weights everywhere (biases included), so a lost tensor would show."""
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


@pytest.mark.parametrize("make", [lambda: DecoderFreeSAE(12, 20, activation="softplus"),
                                  lambda: StandardSAE(12, 20), lambda: TopKSAE(12, 20, k=3)])
def test_round_trip_same_codes_and_reconstructions(tmp_path, make):
    model = trained_like(make())
    checkpoint.save(model, tmp_path / "ckpt", model_name="minilm-l6", hook_layer=3)
    loaded, cfg = checkpoint.load(tmp_path / "ckpt")
    assert type(loaded) is type(model) and cfg["hook_layer"] == 3 and cfg["d_in"] == 12 and cfg["d_sae"] == 20
    x = torch.randn(30, 12, generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded.encode(x), model.encode(x))
    if isinstance(model, StandardSAE):
        assert torch.equal(loaded.decode(loaded.encode(x)), model.decode(model.encode(x)))


def test_saelens_layout_and_implicit_decoder(tmp_path):
    model = trained_like(DecoderFreeSAE(12, 20))
    checkpoint.save(model, tmp_path)
    tensors = load_file(str(tmp_path / "sae_weights.safetensors"))
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "W_enc": (12, 20), "b_enc": (20,), "W_dec": (20, 12), "b_dec": (12,)}
    assert torch.equal(tensors["W_dec"], tensors["W_enc"].T) and not tensors["b_dec"].any()
    assert cfg["architecture"] == "decoder_free" and "W_enc^T" in cfg["decoder"]
    # SAELens convention: codes = act(x @ W_enc + b_enc), here the energies.
    x = torch.randn(5, 12)
    assert torch.allclose(torch.relu(x @ tensors["W_enc"] + tensors["b_enc"]), model.energies(x).detach())
    sae = trained_like(StandardSAE(12, 20))
    checkpoint.save(sae, tmp_path / "sae")
    t = load_file(str(tmp_path / "sae" / "sae_weights.safetensors"))
    x_hat = torch.relu((x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]) @ t["W_dec"] + t["b_dec"]
    assert torch.allclose(x_hat, sae.decode(sae.encode(x)).detach(), atol=1e-5)


def test_missing_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json|sae_weights"):
        checkpoint.load(tmp_path)
    checkpoint.save(StandardSAE(6, 4), tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "d_sae": 5}))
    with pytest.raises(ValueError, match="W_enc has shape"):
        checkpoint.load(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "architecture": "gated"}))
    with pytest.raises(ValueError, match="unknown architecture"):
        checkpoint.load(tmp_path)
    with pytest.raises(ValueError, match="override"):
        checkpoint.save(StandardSAE(6, 4), tmp_path / "x", d_in=3)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_failed_save_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", fail)
    with pytest.raises(OSError):
        checkpoint.save(StandardSAE(6, 4), tmp_path)
    assert list(tmp_path.iterdir()) == []
