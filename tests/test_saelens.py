"""Checkpoints against the real SAELens package, in both directions (``pip install -e ".[saelens]"``)."""

import importlib.util
import json
import runpy
from pathlib import Path

import pytest
import torch

from dfsae import checkpoint

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sae_lens") is None,
                                reason="sae-lens is not installed here; pip install -e '.[saelens]' to run")
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "saelens_roundtrip.py"


def test_every_family_loads_in_saelens_and_encodes_and_decodes_identically(tmp_path):
    gaps = runpy.run_path(str(EXAMPLE))["roundtrip"](tmp_path)
    assert set(gaps) == {"decoder_free", "standard", "topk"}
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


@pytest.mark.parametrize("kind", ["standard", "topk"])
def test_saelens_checkpoints_load_into_dfsae(tmp_path, kind):
    sae = saelens_sae(kind)
    sae.save_model(tmp_path)
    assert "sae_lens_version" in json.loads((tmp_path / "cfg.json").read_text())["metadata"]
    model, cfg = checkpoint.load(tmp_path)
    assert cfg["architecture"] == kind
    x = torch.randn(50, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model.encode(x), sae.encode(x), atol=1e-5)
        assert torch.allclose(model.decode(model.encode(x)), sae.decode(sae.encode(x)), atol=1e-5)


def test_jumprelu_is_refused_by_name(tmp_path):
    saelens_sae("jumprelu").save_model(tmp_path)
    with pytest.raises(ValueError, match="'jumprelu' is not supported"):
        checkpoint.load(tmp_path)
