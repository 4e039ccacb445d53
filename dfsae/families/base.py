"""What every family shares: the config base, the model bases, the objective protocol, the dead-latent
tracker of the auxiliary losses, and the pieces of the SAELens layout common to all.

A family lives in one module of :mod:`dfsae.families` and gives

* a frozen config dataclass (a :class:`FamilyConfig`) with one declarative constraint per option,
  checked once when the config is made;
* its model (an :class:`SAE`) and its training objective (an :class:`Objective`);
* how its code reads (``codes``, ``rank_by``: an activation or an energy, and how to rank features);
* its SAELens mapping (:meth:`SAE.to_saelens`, :meth:`SAE.from_saelens`, :meth:`SAE.claims`);

and registers itself with one line in :mod:`dfsae.families`. Nothing outside the family's module
branches on its name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from .. import validation


# -- Configs ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyConfig:
    """Base of a family's options: a frozen dataclass whose fields are all declared in
    ``constraints`` (name → :class:`dfsae.validation.Constraint`) and checked when it is made.

    ``model_fields`` names the fields the model's constructor takes; the others are the
    objective's. ``build(input_dim, hidden_dim, seed)`` makes a fresh (model, objective) pair."""

    family: ClassVar[str]
    constraints: ClassVar[dict[str, validation.Constraint]]
    model_fields: ClassVar[tuple[str, ...]] = ()
    model: ClassVar[type]
    objective: ClassVar[type]

    def __post_init__(self):
        values = self.checked(**dataclasses.asdict(self))
        self.check_together(values)
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def check_together(cls, values: dict) -> None:
        """Constraints between options (e.g. not every weight 0); ``values`` are already checked."""

    @classmethod
    def options(cls) -> tuple[str, ...]:
        """Every option's name, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def required(cls) -> tuple[str, ...]:
        """The options without a default."""
        return tuple(f.name for f in dataclasses.fields(cls)
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)

    @classmethod
    def checked(cls, **values) -> dict:
        """``values`` checked against ``constraints`` (each returned in its canonical type); an
        unknown name is refused with the list of valid ones."""
        unknown = sorted(set(values) - set(cls.constraints))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for the {cls.family!r} family; valid: "
                             f"{sorted(cls.constraints)}")
        return {name: cls.constraints[name].check(name, value) for name, value in values.items()}

    @classmethod
    def make(cls, **options) -> FamilyConfig:
        """The config from keyword options, refusing unknown and missing ones by name."""
        unknown = sorted(set(options) - set(cls.options()))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for the {cls.family!r} family; valid: "
                             f"{sorted(cls.options())}")
        missing = [name for name in cls.required() if name not in options]
        if missing:
            raise ValueError(f"the {cls.family!r} family needs {', '.join(missing)}: "
                             f"{'; '.join(cls.constraints[m].describe() for m in missing)}")
        return cls(**options)

    def check_width(self, hidden_dim: int) -> None:
        """Refuse options that do not fit a dictionary of ``hidden_dim`` units (e.g. k > K)."""

    def model_options(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields}

    def objective_options(self) -> dict:
        return {name: getattr(self, name) for name in self.options() if name not in self.model_fields}

    def build(self, input_dim: int, hidden_dim: int, seed: int | None = None):
        """A freshly initialised ``(model, objective)`` pair of this family."""
        self.check_width(hidden_dim)
        model = self.model(input_dim, hidden_dim, seed=seed, **self.model_options())
        return model, self.objective(**self.objective_options())

    def as_dict(self) -> dict:
        return {"family": self.family, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Family:
    """A registered family: its one ``name``, the reader's ``title``, its ``config`` class (which
    names the model and objective classes) and ``knob``, the option a sparsity sweep varies."""

    name: str
    title: str
    config: type[FamilyConfig]
    knob: str

    @property
    def model(self) -> type:
        return self.config.model

    @property
    def objective(self) -> type:
        return self.config.objective


# -- Objectives -------------------------------------------------------------------------------------
class Objective(Protocol):
    """What :func:`dfsae.training.train` needs from an objective.

    * ``model_type`` — the model class it trains (``train`` refuses any other).
    * ``needs_batch_statistics`` — True if the loss uses statistics of the whole batch (then a
      batch of one input is skipped, and distributed training must share those statistics).
    * ``supports_distributed`` — True if it computes its batch statistics over the global batch
      inside a ``torch.distributed`` process group.
    * ``reset(seed)`` — called once before training; seeds any randomness and clears any state.
    * ``__call__(model, x)`` — ``(loss, terms)``: the scalar to minimise and a dict of its
      unweighted terms, recorded per epoch in :class:`dfsae.training.History`.
    """

    model_type: ClassVar[type]
    needs_batch_statistics: bool
    supports_distributed: ClassVar[bool]

    def reset(self, seed: int) -> None: ...

    def __call__(self, model, x: torch.Tensor) -> tuple[torch.Tensor, dict]: ...


class ConfiguredObjective:
    """An objective whose options are the non-model fields of ``config_type``, checked by its
    constraints and kept as attributes of the same names."""

    config_type: ClassVar[type[FamilyConfig]]
    needs_batch_statistics = False
    supports_distributed = False

    def __init__(self, **options):
        names = [n for n in self.config_type.options() if n not in self.config_type.model_fields]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for {type(self).__name__}; valid: {sorted(names)}")
        defaults = {f.name: f.default for f in dataclasses.fields(self.config_type) if f.name in names}
        values = self.config_type.checked(**{**defaults, **options})
        self.config_type.check_together(values)
        for name, value in values.items():
            setattr(self, name, value)
        self._names = names

    @property
    def model_type(self) -> type:
        return self.config_type.model

    def reset(self, seed: int) -> None:
        """Nothing random to seed."""

    def __repr__(self) -> str:
        args = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names)
        return f"{type(self).__name__}({args})"


class DeadLatents:
    """Which latents have not fired in the last ``window`` training inputs (Gao et al., 2024,
    count a latent dead after 10M tokens without firing; here the window is an option).

    ``observe(codes)`` adds the batch to every latent's count of inputs since it last fired and
    resets the count of each latent that fired; ``mask()`` is True where the count reached
    ``window``. The state is cleared by ``reset()``."""

    def __init__(self, window: int):
        self.window = window
        self.since_fired = None

    def reset(self) -> None:
        self.since_fired = None

    @torch.no_grad()
    def observe(self, codes: torch.Tensor) -> None:
        if self.since_fired is None or self.since_fired.shape[0] != codes.shape[1]:
            self.since_fired = torch.zeros(codes.shape[1], dtype=torch.long, device=codes.device)
        fired = (codes != 0).any(dim=0)
        self.since_fired += codes.shape[0]
        self.since_fired[fired] = 0

    def mask(self) -> torch.Tensor | None:
        return None if self.since_fired is None else self.since_fired >= self.window


# -- Models -----------------------------------------------------------------------------------------
def init_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """Kaiming-uniform weights and uniform bias, as nn.Linear does, but from ``generator``."""
    bound = 1.0 / layer.in_features**0.5
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


def make_generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator().manual_seed(validation.positive_int("seed", seed, minimum=0))


class SAE(nn.Module):
    """Base of every family's model: an encoder ``nn.Linear(input_dim, hidden_dim)`` whose
    weight (K, D) is the paper's W, plus the family's reading of its code.

    Class attributes a family sets: ``family`` (its name), ``config_type``, ``has_decoder``
    (a trained decoder, ``decode``), ``codes_are_energies`` (low code = good match, read
    by responsibility and similarity), ``codes`` and ``rank_by`` (how a reader should read the
    code, written into SAELens checkpoints)."""

    family: ClassVar[str] = ""
    config_type: ClassVar[type[FamilyConfig]]
    has_decoder: ClassVar[bool] = False
    codes_are_energies: ClassVar[bool] = False
    codes: ClassVar[str] = "activations: high means the feature is present"
    rank_by: ClassVar[str] = "rank by the code (largest = strongest)"

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.input_dim = validation.positive_int("input_dim", input_dim)
        self.hidden_dim = validation.positive_int("hidden_dim", hidden_dim)
        self.encoder = nn.Linear(self.input_dim, self.hidden_dim)

    @property
    def W(self) -> torch.Tensor:  # noqa: N802 (the paper's name)
        """Encoder weights, shape (K, D); row j is unit j's weight vector w_j."""
        return self.encoder.weight

    def check_input(self, x) -> torch.Tensor:
        """Validate ``x`` (2-D, finite, width ``input_dim``) and move it to the model's device."""
        p = self.encoder.weight
        return validation.as_matrix("x", x, width=self.input_dim, dtype=p.dtype).to(p.device)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every family overrides
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The code (a decoder, where there is one, is applied separately by ``decode``)."""
        return self.encode(x)

    def after_step(self) -> None:
        """Called by :func:`dfsae.training.train` after every optimiser step (constraints on the weights)."""

    # The SAELens mapping (see dfsae.checkpoint): each family overrides these three.
    def to_saelens(self, input_scale: float, **options) -> tuple[dict, dict, dict]:  # pragma: no cover
        """``(cfg fields, tensors, dfsae metadata)`` of this model as a SAELens checkpoint on raw
        inputs, for a model trained on ``input_scale``·x."""
        raise NotImplementedError

    @classmethod
    def from_saelens(cls, cfg: dict, tensors: dict, info: dict, path) -> SAE:  # pragma: no cover
        """The model of a checkpoint ``cfg`` (the checked common keys of
        :func:`dfsae.checkpoint.read_config`, with ``raw``, the file) and its ``tensors``."""
        raise NotImplementedError

    @classmethod
    def blank(cls, cfg: dict, **options) -> SAE:
        """A model of the checkpoint's shape and dtype (``cfg`` of :func:`dfsae.checkpoint.read_config`),
        for ``from_saelens`` to copy the weights into."""
        return cls(cfg["d_in"], cfg["d_sae"], **options).to(getattr(torch, cfg["dtype"]))

    @classmethod
    def claims(cls, raw: dict) -> bool:
        """Whether a checkpoint without dfsae metadata (``raw``, its cfg.json) is of this family."""
        return False

    saelens_architecture: ClassVar[str] = ""


class DecoderSAE(SAE):
    """Base of the families with a trained linear decoder: pre-activations
    z = W_enc (x − b_dec) + b_enc, a family-specific activation a = f(z), and x̂ = W_dec a + b_dec.

    Initialised as is common practice for SAEs on language models (Bricken et al., 2023):
    W_dec = W_encᵀ with unit-norm columns, b_enc = b_dec = 0. ``unit_norm_decoder=True`` keeps
    every decoder column at unit L2 norm (renormalised after every optimiser step)."""

    has_decoder = True

    def __init__(self, input_dim: int, hidden_dim: int, unit_norm_decoder: bool = False, seed=None):
        super().__init__(input_dim, hidden_dim)
        self.decoder = nn.Linear(self.hidden_dim, self.input_dim)
        self.unit_norm_decoder = validation.Boolean().check("unit_norm_decoder", unit_norm_decoder)
        init_linear(self.encoder, make_generator(seed))
        with torch.no_grad():
            self.encoder.bias.zero_()
            self.decoder.bias.zero_()
            self.decoder.weight.copy_(self.encoder.weight.T / self.encoder.weight.T.norm(dim=0))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """z = W_enc (x − b_dec) + b_enc, before the activation, shape (n, K)."""
        return self.encoder(x - self.decoder.bias)

    def activate(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - every family overrides
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """a = f(z), shape (n, K)."""
        return self.activate(self.pre_activations(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """x̂ = W_dec a + b_dec, shape (n, D)."""
        return self.decoder(codes)

    def decoder_norms(self) -> torch.Tensor:
        """‖d_j‖₂ for each decoder column (atom) d_j, shape (K,)."""
        return self.decoder.weight.norm(dim=0)

    @torch.no_grad()
    def after_step(self) -> None:
        """Renormalise the atoms when ``unit_norm_decoder``."""
        if self.unit_norm_decoder:
            self.decoder.weight.div_(self.decoder_norms().clamp_min(1e-12))

    # -- SAELens: the layout every decoder family shares ---------------------------------------------
    def saelens_tensors(self, s: float) -> dict:
        """W_enc (d_in, d_sae), b_enc, W_dec (d_sae, d_in), b_dec of a model that takes raw x when
        this one saw s·x: W_enc ← s·W_enc, W_dec ← W_dec / s, b_dec ← b_dec / s."""
        return {"W_enc": (self.W.detach().cpu().T * s).contiguous(),
                "b_enc": self.encoder.bias.detach().cpu().clone(),
                "W_dec": (self.decoder.weight.detach().cpu().T / s).contiguous(),
                "b_dec": (self.decoder.bias.detach().cpu() / s).contiguous()}

    def to_saelens(self, input_scale: float, **options) -> tuple[dict, dict, dict]:
        refuse_options(self, options)
        return ({"architecture": self.saelens_architecture, "apply_b_dec_to_input": True},
                self.saelens_tensors(input_scale), {"unit_norm_decoder": self.unit_norm_decoder})

    def load_saelens_tensors(self, cfg: dict, tensors: dict) -> DecoderSAE:
        """Copy W_enc, b_enc, W_dec, b_dec in; a checkpoint that does not subtract b_dec from the
        input has it folded into b_enc: x W_enc + b_enc = (x − b_dec) W_enc + (b_enc + b_dec W_enc)."""
        b_enc = tensors["b_enc"]
        if not cfg["apply_b_dec_to_input"]:
            b_enc = b_enc + tensors["b_dec"] @ tensors["W_enc"]
        with torch.no_grad():
            self.encoder.weight.copy_(tensors["W_enc"].T)
            self.encoder.bias.copy_(b_enc)
            self.decoder.weight.copy_(tensors["W_dec"].T)
            self.decoder.bias.copy_(tensors["b_dec"])
        return self


def refuse_options(model: SAE, options: dict[str, Any]) -> None:
    """Refuse export options (e.g. ``decoder_scale``) a family does not take, by name."""
    if options:
        raise ValueError(f"{sorted(options)} do not apply to a {type(model).__name__} checkpoint")


def saelens_bool(raw: dict, key: str, default: bool, path) -> bool:
    """A boolean key of a cfg.json, refused by name when it is not one."""
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: {key!r} must be true or false, got {value!r}")
    return value
