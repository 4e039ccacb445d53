"""Save and load trained models in the layout SAELens uses: a folder with
``sae_weights.safetensors`` (W_enc (d_in, d_sae), b_enc (d_sae), W_dec (d_sae, d_in),
b_dec (d_in)) and ``cfg.json``.

The decoder-free model has no decoder. Its checkpoint stores the implicit decoder
W_dec = W_encᵀ and b_dec = 0 so that tools expecting the four tensors can read it; the config
says so (``"decoder": "implicit: W_dec = W_enc^T"``) and records the energy function φ, whose
output is the code: a = φ(x W_enc + b_enc). ``decoder_scale`` (optional) is the scalar c of the
scaled implicit decoder x̂ = c·a W_dec, when the caller fitted one.

For the standard and TopK SAEs, ``apply_b_dec_to_input`` is true: the encoder sees x − b_dec.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from .model import DecoderFreeSAE, StandardSAE, TopKSAE

WEIGHTS = "sae_weights.safetensors"
CONFIG = "cfg.json"


def save(model, folder, **metadata) -> Path:
    """Write ``model`` to ``folder`` (created if needed). Extra keyword arguments (e.g.
    ``model_name``, ``hook_name``, ``hook_layer``, ``decoder_scale``) are stored in cfg.json.
    Both files are written to temporary names first and renamed, so a failure leaves no
    partial checkpoint behind."""
    from safetensors.torch import save_file

    if not isinstance(model, (DecoderFreeSAE, StandardSAE)):
        raise ValueError(f"cannot save a {type(model).__name__}; expected a dfsae model")
    W_enc = model.W.detach().cpu().T.contiguous()  # (d_in, d_sae)
    b_enc = model.encoder.bias.detach().cpu().contiguous()
    dtype = str(W_enc.dtype).replace("torch.", "")
    cfg = {"d_in": model.input_dim, "d_sae": model.hidden_dim, "dtype": dtype}
    if isinstance(model, DecoderFreeSAE):
        W_dec, b_dec = W_enc.T.contiguous(), torch.zeros(model.input_dim, dtype=W_enc.dtype)
        cfg.update(architecture="decoder_free", activation_fn_str=model.activation, activation_fn_kwargs={},
                   apply_b_dec_to_input=False, decoder="implicit: W_dec = W_enc^T",
                   unit_norm_rows=model.unit_norm_rows)
    else:
        W_dec = model.decoder.weight.detach().cpu().T.contiguous()  # (d_sae, d_in)
        b_dec = model.decoder.bias.detach().cpu().contiguous()
        topk = isinstance(model, TopKSAE)
        cfg.update(architecture="topk" if topk else "standard",
                   activation_fn_str="topk" if topk else "relu",
                   activation_fn_kwargs={"k": model.k} if topk else {},
                   apply_b_dec_to_input=True, decoder="trained", unit_norm_decoder=model.unit_norm_decoder)
    reserved = set(cfg) & set(metadata)
    if reserved:
        raise ValueError(f"metadata may not override {sorted(reserved)}")
    cfg.update(metadata)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    tmp_weights = _temporary(folder, WEIGHTS)
    tmp_cfg = _temporary(folder, CONFIG)
    try:
        save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
        tmp_cfg.write_text(json.dumps(cfg, indent=2))
        os.replace(tmp_weights, folder / WEIGHTS)
        os.replace(tmp_cfg, folder / CONFIG)
    finally:
        tmp_weights.unlink(missing_ok=True)
        tmp_cfg.unlink(missing_ok=True)
    return folder


def load(folder):
    """The model saved in ``folder`` by :func:`save` (or a SAELens folder of a standard or
    TopK ReLU SAE). Returns ``(model, cfg)``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} not found; a checkpoint folder holds "
                                    f"{WEIGHTS} and {CONFIG}")
    cfg = json.loads((folder / CONFIG).read_text())
    tensors = load_file(str(folder / WEIGHTS))
    missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(tensors)
    if missing:
        raise ValueError(f"{folder / WEIGHTS} lacks tensors {sorted(missing)}")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensors[name].shape)}, expected {shape} from cfg.json")
    arch = cfg.get("architecture", "standard")
    if arch == "decoder_free":
        model = DecoderFreeSAE(d_in, d_sae, activation=cfg["activation_fn_str"],
                               unit_norm_rows=cfg.get("unit_norm_rows", False))
    elif arch == "topk" or cfg.get("activation_fn_str") == "topk":
        model = TopKSAE(d_in, d_sae, k=int(cfg["activation_fn_kwargs"]["k"]),
                        unit_norm_decoder=cfg.get("unit_norm_decoder", True))
    elif arch == "standard" and cfg.get("activation_fn_str", "relu") == "relu":
        if not cfg.get("apply_b_dec_to_input", True):
            raise ValueError("this StandardSAE subtracts b_dec from the input; "
                             "cfg.json has apply_b_dec_to_input=false")
        model = StandardSAE(d_in, d_sae, unit_norm_decoder=cfg.get("unit_norm_decoder", False))
    else:
        raise ValueError(f"unknown architecture {arch!r} with activation {cfg.get('activation_fn_str')!r}; "
                         "expected decoder_free, standard (relu) or topk")
    dtype = getattr(torch, cfg.get("dtype", "float32"))
    model.to(dtype)
    with torch.no_grad():
        model.encoder.weight.copy_(tensors["W_enc"].T)
        model.encoder.bias.copy_(tensors["b_enc"])
        if isinstance(model, StandardSAE):
            model.decoder.weight.copy_(tensors["W_dec"].T)
            model.decoder.bias.copy_(tensors["b_dec"])
    return model.eval(), cfg


def _temporary(folder: Path, name: str) -> Path:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    return Path(tmp)
