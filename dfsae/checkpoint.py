"""Save and load trained models as SAELens (≥ 6) checkpoints: a folder with
``sae_weights.safetensors`` (W_enc (d_in, d_sae), b_enc (d_sae), W_dec (d_sae, d_in), b_dec (d_in),
and any extra tensors of the family, such as a threshold) and ``cfg.json``.
``sae_lens.SAE.load_from_disk(folder)`` loads every checkpoint :func:`save` writes, and its
``encode``/``decode`` give the dfsae model's codes and reconstructions on *raw* inputs.

Each family says how it is written and read: its model's ``to_saelens`` (the SAELens
architecture, its fields and tensors), ``from_saelens`` and ``claims`` (which checkpoints without
dfsae metadata are its own); the API page lists the mapping of every family. A decoder-free
model is written as SAELens's ``standard`` architecture with ``b_dec = 0`` and no input centring,
so SAELens's code is E, the energy vector, and W_dec = c·W the *implicit* decoder. Its codes are
**energies: low means a good match**, the opposite of an SAE activation; rank its features by
responsibility r = softmax(−E) or similarity s = max_k E_k − E_j. cfg.json says how to read each
family's code under ``metadata.dfsae``.

A model trained on scaled inputs (``input_scale`` s: the model saw s·x) is written so that it
takes raw x. ``metadata.dfsae`` records the family and everything dfsae needs to rebuild the
model exactly; :func:`load` checks that this family agrees with the architecture. A checkpoint
without it (one SAELens wrote) is read as the family that claims it (:func:`readable_architectures`),
including the layout before SAELens 6 (``activation_fn_str``); other architectures, such as gated
SAEs, are refused by name. Weights that are not finite are refused on save and on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from . import validation
from .families import FAMILIES, family_of
from .families.base import saelens_bool
from .files import publish, temporary_beside

WEIGHTS = "sae_weights.safetensors"
CONFIG = "cfg.json"
SAELENS_VERSION = "6.0.0"  # the cfg.json schema written here: SAELens 6
DTYPES = ("float32", "float64", "float16", "bfloat16")
TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


def _check_finite(tensors: dict, where: str) -> None:
    bad = sorted(name for name, t in tensors.items() if not torch.isfinite(t).all())
    if bad:
        raise ValueError(f"{where}: {', '.join(bad)} contain NaN or inf; the model diverged or the file is "
                         "damaged, and such weights are neither saved nor loaded")


def save(model, folder, *, input_scale: float = 1.0, decoder_scale: float | None = None, **metadata) -> Path:
    """Write ``model`` to ``folder`` (created if needed) as a SAELens checkpoint on raw inputs.

    ``input_scale`` s: the model was trained on s·x (folded into the weights). ``decoder_scale``
    c (decoder-free only): the scale of the implicit decoder x̂ = c·E W, e.g. fitted by
    :func:`dfsae.metrics.optimal_scale`. Other keyword arguments (``model_name``,
    ``hook_name``, ...) go to ``metadata`` in cfg.json. Both files are written to temporary names
    and renamed, so a failure leaves no partial checkpoint behind.
    """
    from safetensors.torch import save_file

    spec = family_of(model)
    s = validation.positive_float("input_scale", input_scale)
    reserved = {"sae_lens_version", "dfsae"} & set(metadata)
    if reserved:
        raise ValueError(f"metadata may not override {sorted(reserved)}")
    options = {} if decoder_scale is None else {"decoder_scale": decoder_scale}
    fields, tensors, info = model.to_saelens(s, **options)
    _check_finite(tensors, f"cannot save the {spec.title}")
    cfg = {"d_in": model.input_dim, "d_sae": model.hidden_dim,
           "dtype": str(tensors["W_enc"].dtype).replace("torch.", ""), "device": "cpu",
           "normalize_activations": "none", "reshape_activations": "none", **fields}
    cfg["metadata"] = {"sae_lens_version": SAELENS_VERSION, **metadata,
                       "dfsae": {"family": spec.name, "input_scale": s, "codes": model.codes,
                                 "rank_features_by": model.rank_by, **info}}
    text = json.dumps(cfg, indent=2)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with temporary_beside(folder / WEIGHTS) as tmp_weights, temporary_beside(folder / CONFIG) as tmp_cfg:
        save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
        tmp_cfg.write_text(text)
        publish(tmp_weights, folder / WEIGHTS)
        publish(tmp_cfg, folder / CONFIG)
    return folder


def readable_architectures() -> list[str]:
    """The SAELens architectures some registered family reads without dfsae metadata."""
    return sorted({f.model.saelens_architecture for f in FAMILIES.values()
                   if f.model.claims({"architecture": f.model.saelens_architecture})})


def _require(cfg: dict, key: str, path: Path):
    if key not in cfg:
        raise ValueError(f"{path} has no {key!r}; a SAELens cfg.json gives d_in, d_sae, dtype and "
                         "architecture")
    return cfg[key]


def read_config(folder) -> dict:
    """cfg.json of ``folder``, validated and brought to one form: keys ``d_in``, ``d_sae``,
    ``dtype``, ``architecture`` (the dfsae family's name), ``apply_b_dec_to_input``, ``dfsae``
    (our metadata, or {}) and ``raw`` (the file as read). Raises ``ValueError`` naming the
    missing or bad key."""
    path = Path(folder) / CONFIG
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON text ({err})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(raw).__name__}")
    meta = raw.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'metadata' must be an object, got {meta!r}")
    info = meta.get("dfsae") or {}
    if not isinstance(info, dict):
        raise ValueError(f"{path}: 'metadata.dfsae' must be an object, got {info!r}")
    cfg = {"raw": raw, "dfsae": info}
    for key in ("d_in", "d_sae"):
        value = _require(raw, key, path)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{path}: {key!r} must be a positive integer, got {value!r}")
        cfg[key] = value
    dtype = raw.get("dtype", "float32")
    if dtype not in DTYPES:
        raise ValueError(f"{path}: 'dtype' must be one of {list(DTYPES)}, got {dtype!r}")
    cfg["dtype"] = dtype
    if "activation_fn_str" not in raw:
        _require(raw, "architecture", path)
    arch = raw.get("architecture")
    if info:
        name = info.get("family")
        if name not in FAMILIES:
            raise ValueError(f"{path}: metadata.dfsae.family must be one of {sorted(FAMILIES)}, got {name!r}")
        model = FAMILIES[name].model
        if arch != model.saelens_architecture and not model.claims(raw):
            raise ValueError(f"{path}: metadata.dfsae.family {name!r} is written as architecture "
                             f"{model.saelens_architecture!r}, but cfg.json says {arch!r}; the file was "
                             "edited or mixed up")
    else:
        claiming = [f.name for f in FAMILIES.values() if f.model.claims(raw)]
        if len(claiming) != 1:
            activation = raw.get("activation_fn_str")
            shown = f"architecture {arch!r}" + (f" with activation {activation!r}" if activation else "")
            raise ValueError(f"{path}: {shown} is not supported; dfsae loads its own checkpoints and "
                             f"SAELens's {', '.join(readable_architectures())} SAEs")
        name = claiming[0]
    cfg["architecture"] = name
    cfg["apply_b_dec_to_input"] = saelens_bool(raw, "apply_b_dec_to_input", True, path)
    if raw.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"{path}: normalize_activations={raw['normalize_activations']!r} is not supported; "
                         "fold the normalisation into the weights first")
    return cfg


def load(folder):
    """The model saved in ``folder`` (see the module docstring). Returns ``(model, cfg)`` where
    ``cfg`` is the validated config of :func:`read_config`; the model takes raw inputs."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (WEIGHTS, CONFIG):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} not found; a checkpoint folder holds {WEIGHTS} and "
                                    f"{CONFIG}")
    cfg = read_config(folder)
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{folder / WEIGHTS} cannot be read as safetensors ({err}); the file is truncated "
                         "or not a checkpoint") from None
    missing = set(TENSORS) - set(tensors)
    if missing:
        raise ValueError(f"{folder / WEIGHTS} lacks tensors {sorted(missing)}")
    d_in, d_sae = cfg["d_in"], cfg["d_sae"]
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    for name, shape in shapes.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name} has shape {tuple(tensors[name].shape)}, expected {shape} from cfg.json")
    dtype = getattr(torch, cfg["dtype"])
    tensors = {name: t.to(dtype) for name, t in tensors.items()}
    _check_finite(tensors, str(folder / WEIGHTS))
    model = FAMILIES[cfg["architecture"]].model.from_saelens(cfg, tensors, cfg["dfsae"], folder)
    return model.to(dtype).eval(), cfg
