"""Save and load trained models as SAELens (≥ 6) checkpoints: a folder with
``sae_weights.safetensors`` (W_enc (d_in, d_sae), b_enc (d_sae), W_dec (d_sae, d_in), b_dec (d_in))
and ``cfg.json``. ``sae_lens.SAE.load_from_disk(folder)`` loads every checkpoint :func:`save`
writes, and its ``encode``/``decode`` give the dfsae model's codes and reconstructions on *raw*
inputs.

How each family is written:

* **Standard SAE** — architecture ``"standard"``: a = ReLU((x − b_dec) W_enc + b_enc),
  x̂ = a W_dec + b_dec.
* **TopK SAE** — architecture ``"topk"`` with ``k``: the same with all but the k largest
  pre-activations set to zero.
* **Decoder-free SAE** (φ = ReLU) — architecture ``"standard"`` with ``b_dec = 0`` and
  ``apply_b_dec_to_input = false``, so SAELens's code is ReLU(x W_enc + b_enc) = E, the energy
  vector, and W_dec = c·W is the *implicit* decoder (c = ``decoder_scale``, default 1). The codes
  are **energies: low means a good match** (E_j = 0 is unit j's best case), the opposite of an SAE
  activation. To rank features for a dashboard, rank by responsibility r = softmax(−E) or by
  similarity s = max_k E_k − E_j, not by the largest code; cfg.json says so under
  ``metadata.dfsae``. Softplus and identity energies have no SAELens activation and are refused.

A model trained on scaled inputs (``input_scale`` s: the model saw s·x) is written so that it
takes raw x: W_enc ← s·W_enc and b_dec, W_dec ← b_dec / s, W_dec / s. ``metadata.dfsae`` records
the family and everything dfsae needs to rebuild the model exactly.

:func:`load` reads these checkpoints, SAELens ≥ 6 checkpoints of standard and TopK SAEs, the
SAELens layout before version 6 (``activation_fn_str``), and dfsae's own earlier layout
(``architecture: "decoder_free"``). JumpReLU and other architectures are refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import validation
from .files import publish, temporary_beside
from .model import FAMILIES, DecoderFreeSAE, StandardSAE, TopKSAE

WEIGHTS = "sae_weights.safetensors"
CONFIG = "cfg.json"
SAELENS_VERSION = "6.0.0"  # the cfg.json schema written here: SAELens 6
DTYPES = ("float32", "float64", "float16", "bfloat16")
CODES = {
    "decoder_free": ("energies E = ReLU(x W_enc + b_enc): LOW means a good match (E_j = 0 is unit j's "
                     "best case); W_dec = c W_enc^T is the implicit decoder, not a trained one"),
    "standard": "activations a = ReLU((x - b_dec) W_enc + b_enc): high means the feature is present",
    "topk": "activations of the k largest pre-activations, ReLU; high means the feature is present",
}
RANKING = {
    "decoder_free": ("rank by responsibility r = softmax(-E) or similarity s = max_k E_k - E_j (high = "
                     "good match); the largest code is the WORST match"),
    "standard": "rank by the code (largest = strongest)",
    "topk": "rank by the code (largest = strongest)",
}


def family_of(model) -> str:
    """The name of ``model``'s family (:data:`dfsae.model.FAMILIES`)."""
    family = getattr(model, "family", None)
    if FAMILIES.get(family) is not type(model):
        raise ValueError(f"cannot save a {type(model).__name__}; expected one of "
                         f"{', '.join(c.__name__ for c in FAMILIES.values())}")
    return family


def save(model, folder, *, input_scale: float = 1.0, decoder_scale: float | None = None, **metadata) -> Path:
    """Write ``model`` to ``folder`` (created if needed) as a SAELens checkpoint on raw inputs.

    ``input_scale`` s: the model was trained on s·x (folded into the weights). ``decoder_scale``
    c (decoder-free only): the scale of the implicit decoder x̂ = c·E W, e.g. fitted by
    :func:`dfsae.metrics.optimal_scale`. Other keyword arguments (``model_name``,
    ``hook_name``, ...) go to ``metadata`` in cfg.json. Both files are written to temporary names
    and renamed, so a failure leaves no partial checkpoint behind.
    """
    from safetensors.torch import save_file

    family = family_of(model)
    s = validation.positive_float("input_scale", input_scale)
    reserved = {"sae_lens_version", "dfsae"} & set(metadata)
    if reserved:
        raise ValueError(f"metadata may not override {sorted(reserved)}")
    W = model.W.detach().cpu()
    W_enc = (W.T * s).contiguous()                               # (d_in, d_sae), takes raw x
    b_enc = model.encoder.bias.detach().cpu().clone()
    dtype = str(W.dtype).replace("torch.", "")
    info = {"family": family, "input_scale": s, "codes": CODES[family], "rank_features_by": RANKING[family]}
    cfg = {"d_in": model.input_dim, "d_sae": model.hidden_dim, "dtype": dtype, "device": "cpu",
           "normalize_activations": "none", "reshape_activations": "none"}
    if family == "decoder_free":
        if model.activation != "relu":
            raise ValueError(f"a decoder-free model with activation={model.activation!r} cannot be "
                             "written as a SAELens checkpoint: SAELens's standard architecture applies ReLU. "
                             "Train with "
                             "activation='relu' to export, or keep the model with "
                             "torch.save(model.state_dict())")
        c = 1.0 if decoder_scale is None else validation.positive_float("decoder_scale", decoder_scale)
        W_dec = (c * W / s).contiguous()
        b_dec = torch.zeros(model.input_dim, dtype=W.dtype)
        cfg.update(architecture="standard", apply_b_dec_to_input=False)
        info.update(activation="relu", decoder_scale=c, unit_norm_rows=model.unit_norm_rows)
    else:
        if decoder_scale is not None:
            raise ValueError("decoder_scale applies to the decoder-free model's implicit decoder only")
        W_dec = (model.decoder.weight.detach().cpu().T / s).contiguous()
        b_dec = (model.decoder.bias.detach().cpu() / s).contiguous()
        cfg.update(architecture=family, apply_b_dec_to_input=True)
        info["unit_norm_decoder"] = model.unit_norm_decoder
        if family == "topk":
            cfg.update(k=model.k, rescale_acts_by_decoder_norm=False)
    cfg["metadata"] = {"sae_lens_version": SAELENS_VERSION, **metadata, "dfsae": info}
    text = json.dumps(cfg, indent=2)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    with temporary_beside(folder / WEIGHTS) as tmp_weights, temporary_beside(folder / CONFIG) as tmp_cfg:
        save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
        tmp_cfg.write_text(text)
        publish(tmp_weights, folder / WEIGHTS)
        publish(tmp_cfg, folder / CONFIG)
    return folder


def _require(cfg: dict, key: str, path: Path):
    if key not in cfg:
        raise ValueError(f"{path} has no {key!r}; a SAELens cfg.json gives d_in, d_sae, dtype and "
                         "architecture")
    return cfg[key]


def read_config(folder) -> dict:
    """cfg.json of ``folder``, validated and brought to one form: keys ``d_in``, ``d_sae``,
    ``dtype``, ``architecture`` (``decoder_free``, ``standard`` or ``topk``), ``k``,
    ``apply_b_dec_to_input``, ``dfsae`` (our metadata, or {}) and ``raw`` (the file as read).
    Raises ``ValueError`` naming the missing or bad key."""
    path = Path(folder) / CONFIG
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'metadata' must be an object, got {meta!r}")
    cfg = {"raw": raw, "dfsae": meta.get("dfsae") or {}}
    for key in ("d_in", "d_sae"):
        value = _require(raw, key, path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {key!r} must be a positive integer, got {value!r}")
        cfg[key] = value
    dtype = raw.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"{path}: 'dtype' must be one of {list(DTYPES)}, got {dtype!r}")
    cfg["dtype"] = dtype
    legacy = "activation_fn_str" in raw
    arch = raw.get("architecture", "standard") if legacy else _require(raw, "architecture", path)
    activation = raw.get("activation_fn_str", raw.get("activation_fn", "relu"))
    if arch == "decoder_free":                                  # dfsae's layout before SAELens 6
        if activation != "relu":
            raise ValueError(f"{path}: only ReLU energies can be loaded from this layout, got {activation!r}")
        cfg["dfsae"] = {"family": "decoder_free", "activation": activation, **cfg["dfsae"],
                        "unit_norm_rows": raw.get("unit_norm_rows", False)}
        cfg.update(architecture="decoder_free", apply_b_dec_to_input=False)
    elif arch in ("standard", "topk"):
        if activation == "topk":                                # SAELens before 6: a standard SAE with TopK
            arch = "topk"
        elif activation != "relu":
            raise ValueError(f"{path}: activation {activation!r} is not supported; dfsae loads ReLU and "
                             "TopK SAEs")
        cfg["architecture"] = cfg["dfsae"].get("family", arch) if cfg["dfsae"] else arch
        cfg["apply_b_dec_to_input"] = bool(raw.get("apply_b_dec_to_input", True))
        if arch == "topk":
            k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg["d_sae"]:
                raise ValueError(f"{path}: a TopK SAE needs 'k', an integer in [1, d_sae={cfg['d_sae']}], "
                                 f"got {k!r}")
            if raw.get("rescale_acts_by_decoder_norm"):
                raise ValueError(f"{path}: rescale_acts_by_decoder_norm=true is not supported")
            cfg["k"] = k
    else:
        raise ValueError(f"{path}: architecture {arch!r} is not supported; dfsae loads 'standard' and 'topk' "
                         "SAEs (JumpReLU, gated and other architectures are refused) and its own checkpoints")
    if raw.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"{path}: normalize_activations={raw['normalize_activations']!r} is not supported; "
                         "fold the normalisation into the weights first")
    return cfg


def load(folder):
    """The model saved in ``folder`` (see the module docstring). Returns ``(model, cfg)`` where
    ``cfg`` is the validated config of :func:`read_config`; the model takes raw inputs."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} not found; a checkpoint folder holds {WEIGHTS} and "
                                    f"{CONFIG}")
    cfg = read_config(folder)
    tensors = load_file(str(folder / WEIGHTS))
    missing = {"W_enc", "b_enc", "W_dec", "b_dec"} - set(tensors)
    if missing:
        raise ValueError(f"{folder / WEIGHTS} lacks tensors {sorted(missing)}")
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensors[name].shape)}, expected {shape} from cfg.json")
    meta, family = cfg["dfsae"], cfg["architecture"]
    dtype = getattr(torch, cfg["dtype"])
    W_enc, b_enc = tensors["W_enc"].to(dtype), tensors["b_enc"].to(dtype)
    W_dec, b_dec = tensors["W_dec"].to(dtype), tensors["b_dec"].to(dtype)
    if family == "decoder_free":
        if b_dec.abs().max() > 0:
            raise ValueError(f"{folder}: a decoder-free checkpoint has b_dec = 0")
        model = DecoderFreeSAE(d_in, d_sae, activation="relu",
                               unit_norm_rows=meta.get("unit_norm_rows", False))
    elif family == "topk":
        model = TopKSAE(d_in, d_sae, k=cfg["k"], unit_norm_decoder=meta.get("unit_norm_decoder", True))
    else:
        model = StandardSAE(d_in, d_sae, unit_norm_decoder=meta.get("unit_norm_decoder", False))
    if family != "decoder_free" and not cfg["apply_b_dec_to_input"]:
        # ReLU(x W_enc + b_enc) = ReLU((x − b_dec) W_enc + b_enc + b_dec W_enc): dfsae always subtracts b_dec.
        b_enc = b_enc + b_dec @ W_enc
    model.to(dtype)
    with torch.no_grad():
        model.encoder.weight.copy_(W_enc.T)
        model.encoder.bias.copy_(b_enc)
        if isinstance(model, StandardSAE):
            model.decoder.weight.copy_(W_dec.T)
            model.decoder.bias.copy_(b_dec)
    return model.eval(), cfg
