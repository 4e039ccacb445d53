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
    """Return ``x`` as a finite, non-empty 2-D real floating tensor of shape (n, width).

    Refused with a ``ValueError`` naming ``name``: arrays of strings or objects, complex
    values (their imaginary part would be lost), a shape that is not 2-D or has no rows or no
    columns, NaN or inf, and values too large for ``dtype`` (e.g. 1e300 in float32).
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            kind = "complex" if x.dtype.kind == "c" else f"{x.dtype} (not numbers)"
            raise ValueError(f"{name} must hold real numbers, got an array of {kind}; convert it first")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{name} is complex; pass real activations (e.g. x.real or x.abs()) explicitly")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {tuple(x.shape)}")
    if width is not None and x.shape[1] != width:
        raise ValueError(
            f"{name} has {x.shape[1]} features per row but the model expects input_dim={width}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one row")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has shape {tuple(x.shape)}: rows with no features; "
                         "pass at least one column")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; clean or impute the input first")
    default = x.dtype if torch.is_floating_point(x) else torch.get_default_dtype()
    target = dtype if dtype is not None else default
    if x.dtype != target:
        converted = x.to(target)
        if not torch.isfinite(converted).all():
            raise ValueError(f"{name} has values up to {float(x.abs().max()):.3g}, beyond the range of "
                             f"{str(target).replace('torch.', '')}; rescale the input first")
        x = converted
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


def boolean(name: str, value) -> bool:
    """``value`` if it is a bool; strings such as "no" are refused, not read as truthy."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}; with papermill pass "
                     f"`-p {name} False` or `-y '{name}: false'`; with python -m dfsae.paper.reproduce, "
                     f"`-p {name} False`")


def integer_list(name: str, value, minimum: int = 0) -> list[int]:
    """A non-empty list of integers ≥ ``minimum`` (a string such as "[0, 1]" is refused with a hint)."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a list of integers, got the string {value!r}; papermill's -p "
                         f"passes text, so give lists with -y, e.g. `-y '{name}: [0, 1, 2]'`; python -m "
                         f"dfsae.paper.reproduce takes a Python literal, `-p {name} '[0, 1, 2]'`")
    if not hasattr(value, "__iter__") or len(list(value)) == 0:
        raise ValueError(f"{name} must be a non-empty list of integers, e.g. [0, 1, 2]; got {value!r}")
    return [positive_int(name, v, minimum=minimum) for v in value]


def writable_folder(name: str, value) -> str:
    """A folder that exists or can be created, and can be written to (checked before any work)."""
    import os
    from pathlib import Path

    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name} must be a folder path (a string), got {value!r}")
    if str(value) == "":
        raise ValueError(f"{name} is '', which would write into the working directory; pass a folder path")
    path = Path(value)
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name}={str(value)!r} cannot be created or written ({existing} is not a "
                         "writable folder); pass a writable folder, or '' to write no results")
    return str(value)


# -- Declarative constraints ---------------------------------------------------------------------
# A family's config states each option's constraint once (``constraints = {"k": Integer(1), ...}``);
# :class:`dfsae.families.base.FamilyConfig` applies them when the config is made. Each ``check``
# returns the value in its canonical type or raises a ``ValueError`` naming the option.

class Constraint:
    """What a value must be; ``check(name, value)`` returns it normalised or raises ValueError."""

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def check(self, name: str, value):  # pragma: no cover - overridden
        raise NotImplementedError

    def _refuse(self, name, value, hint: str = ""):
        raise ValueError(f"{name} must be {self.describe()}, got {value!r}" + (f"; {hint}" if hint else ""))


class Real(Constraint):
    """A finite real number in [low, high]; ``low_open`` excludes ``low`` itself (e.g. > 0)."""

    def __init__(self, low: float | None = None, high: float | None = None, low_open: bool = False):
        self.low, self.high, self.low_open = low, high, low_open

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"
        if self.low is not None:
            return f"a finite number {'>' if self.low_open else '>='} {self.low:g}"
        return "a finite number"

    def check(self, name, value):
        if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, (int, float, np.number)):
            self._refuse(name, value)
        v = float(value)
        if not math.isfinite(v) or (self.high is not None and v > self.high) or (
                self.low is not None and (v < self.low or (self.low_open and v == self.low))):
            self._refuse(name, value)
        return v


class Integer(Constraint):
    """An integer ≥ ``low`` (and ≤ ``high`` if given); bools and floats are refused."""

    def __init__(self, low: int | None = None, high: int | None = None):
        self.low, self.high = low, high

    def describe(self) -> str:
        if self.high is not None:
            return f"an integer in [{self.low}, {self.high}]"
        return f"an integer >= {self.low}" if self.low is not None else "an integer"

    def check(self, name, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            self._refuse(name, value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            self._refuse(name, value)
        return int(value)


class Options(Constraint):
    """One of a fixed set of values."""

    def __init__(self, *values):
        self.values = values

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, name, value):
        if isinstance(value, (bool, np.bool_)) or value not in self.values:
            self._refuse(name, value)
        return value


class Boolean(Constraint):
    """True or False; strings such as "no" are refused rather than read as truthy."""

    def describe(self) -> str:
        return "True or False"

    def check(self, name, value):
        if not isinstance(value, (bool, np.bool_)):
            self._refuse(name, value, f"pass {name}=False or {name}=True")
        return bool(value)


class OrNone(Constraint):
    """None, or a value that satisfies ``inner``."""

    def __init__(self, inner: Constraint):
        self.inner = inner

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def check(self, name, value):
        if value is None:
            return None
        try:
            return self.inner.check(name, value)
        except ValueError:
            self._refuse(name, value)
