"""Checkpoints against the real SAELens package, in both directions (``pip install -e ".[saelens]"``)."""

import importlib.util
import json
import runpy
from pathlib import Path

import pytest
import torch

import dfsae
from dfsae import checkpoint

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sae_lens") is None,
                                reason="sae-lens is not installed here; pip install -e '.[saelens]' to run")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "saelens_roundtrip.py"


def test_every_family_loads_in_saelens_and_encodes_and_decodes_identically(tmp_path):
    gaps = runpy.run_path(str(EXAMPLE))["roundtrip"](tmp_path)
    assert set(gaps) == set(dfsae.FAMILIES)
    for family, (code, recon) in gaps.items():
        assert code <= 1e-5 and recon <= 1e-5, (family, code, recon)


def saelens_sae(kind):
    from sae_lens import SAE, JumpReLUSAEConfig, StandardSAEConfig, TopKSAEConfig

    cfg = {"standard": StandardSAEConfig(d_in=10, d_sae=16), "topk": TopKSAEConfig(d_in=10, d_sae=16, k=4),
           "jumprelu": JumpReLUSAEConfig(d_in=10, d_sae=16)}[kind]
    sae = SAE.from_dict(cfg.to_dict())
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return sae


def agree(model, sae, x):
    with torch.no_grad():
        assert torch.allclose(model.encode(x), sae.encode(x), atol=1e-5)
        assert torch.allclose(model.decode(model.encode(x)), sae.decode(sae.encode(x)), atol=1e-5)


@pytest.mark.parametrize("kind", ["standard", "topk", "jumprelu"])
def test_saelens_checkpoints_load_into_dfsae(tmp_path, kind):
    """SAELens's own checkpoints (random weights; JumpReLU thresholds partly negative) read back."""
    sae = saelens_sae(kind)
    sae.save_model(tmp_path)
    assert "sae_lens_version" in json.loads((tmp_path / "cfg.json").read_text())["metadata"]
    model, cfg = checkpoint.load(tmp_path)
    assert cfg["architecture"] == kind and model.family == kind
    agree(model, sae, torch.randn(50, 10, generator=torch.Generator().manual_seed(1)))


OPTIONS = {"topk": {"k": 4}, "batchtopk": {"k": 4}}


@pytest.mark.parametrize("family", list(dfsae.FAMILIES))
def test_every_family_survives_saelens_saving_it_again(tmp_path, family):
    """dfsae → SAELens → (SAELens saves) → dfsae gives back the same family and the same codes."""
    from sae_lens import SAE

    model = dfsae.family(family).config.make(**OPTIONS.get(family, {})).build(10, 16, seed=3)[0]
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        model.encoder.bias.copy_(torch.randn(16, generator=g))
        if hasattr(model, "threshold"):
            model.threshold.fill_(0.2)
    checkpoint.save(model, tmp_path / "dfsae", model_name="test")
    sae = SAE.load_from_disk(tmp_path / "dfsae", device="cpu")
    sae.save_model(tmp_path / "saelens")
    back, cfg = checkpoint.load(tmp_path / "saelens")
    assert type(back) is type(model) and cfg["architecture"] == family
    x = torch.randn(40, 10, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        assert torch.allclose(back.encode(x), model.encode(x), atol=1e-6)
        assert torch.allclose(back.encode(x), sae.encode(x), atol=1e-6)


def test_gated_is_refused_by_name(tmp_path):
    from sae_lens import SAE, GatedSAEConfig

    SAE.from_dict(GatedSAEConfig(d_in=10, d_sae=16).to_dict()).save_model(tmp_path)
    readable = "dfsae loads its own checkpoints and SAELens's jumprelu, standard, topk SAEs"
    with pytest.raises(ValueError, match=f"'gated' is not supported; {readable}"):
        checkpoint.load(tmp_path)
