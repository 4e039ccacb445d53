"""Parameter and input validation shared by every public entry point.

Each check raises a ``ValueError`` that names the parameter and says how to fix it, so
that bad input is rejected at the boundary, before any work is done.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_float(name: str, value, allow_zero: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return v


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose one of {sorted(options)}")
    return value


def as_matrix(name: str, x, width: int | None = None, dtype=None) -> torch.Tensor:
    """Return ``x`` as a finite 2-D floating tensor of shape (n, width)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(x.shape)}")
    if width is not None and x.shape[1] != width:
        raise ValueError(
            f"{name} has {x.shape[1]} features per row but the model expects input_dim={width}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one row")
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype() if dtype is None else dtype)
    elif dtype is not None:
        x = x.to(dtype)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; clean or impute the input first")
    return x


def device(name: str, value) -> torch.device:
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be 'cpu' or 'cuda', got {value!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be 'cpu' or 'cuda', got {value!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} but no CUDA device is available; use device='cpu'")
    return dev
