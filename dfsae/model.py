"""Models: the decoder-free SAE and the two decoder baselines it is compared against.

All three map an input x ∈ R^D to a code a ∈ R^K (K = ``hidden_dim``).

* :class:`DecoderFreeSAE` — an encoder only. z = W x + b, energies E = φ(z), and the
  code is the energy vector itself, a = E. Responsibilities r = softmax(−E). There is no
  decoder; Wᵀ serves as an *implicit* decoder, x̂ = Wᵀ a (paper §4.5).
* :class:`StandardSAE` — ReLU encoder, linear decoder with bias, trained on
  ‖x − x̂‖² + λ·L1 (see :mod:`dfsae.objective`).
* :class:`TopKSAE` — like the standard SAE, but the encoder keeps only the k largest
  pre-activations per input (Gao et al., 2024).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from . import validation

ACTIVATIONS = {
    "relu": F.relu,
    "softplus": F.softplus,
    "identity": lambda z: z,
}


def _init_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """Kaiming-uniform weights and uniform bias, as nn.Linear does, but from ``generator``."""
    bound = 1.0 / layer.in_features**0.5
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)


def _generator(seed: int | None) -> torch.Generator | None:
    if seed is None:
        return None
    return torch.Generator().manual_seed(validation.positive_int("seed", seed, minimum=0))


class _SAEBase(nn.Module):
    family: str = ""            # the family's one name, used by checkpoints, metrics and experiments
    has_decoder: bool = False   # a trained decoder (decode) besides the encoder

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

    def after_step(self) -> None:
        """Called by :func:`dfsae.training.train` after every optimiser step (constraints on the weights)."""


class DecoderFreeSAE(_SAEBase):
    """Encoder-only sparse autoencoder whose outputs are energies.

    E_j(x) = φ(w_j · x + b_j), with φ ∈ {"relu", "softplus", "identity"}. Lower energy means
    component j explains x better. Parameters: K·D + K (784→64: 50,240).

    Parameters
    ----------
    input_dim, hidden_dim : int
        D and K.
    activation : str
        φ, one of ``"relu"``, ``"softplus"``, ``"identity"``.
    seed : int or None
        Seeds the weight initialisation (independent of torch's global RNG).
    unit_norm_rows : bool
        Keep every row w_j at unit L2 norm: rows are renormalised after every optimiser
        step (``after_step``). −log Var(A_j) can otherwise be lowered without limit by
        growing ‖w_j‖; with unit rows only the bias and the directions are learned.
    """

    family = "decoder_free"

    def __init__(self, input_dim: int, hidden_dim: int, activation: str = "relu", seed=None,
                 unit_norm_rows: bool = False):
        super().__init__(input_dim, hidden_dim)
        self.activation = validation.choice("activation", activation, ACTIVATIONS)
        self.unit_norm_rows = bool(unit_norm_rows)
        _init_linear(self.encoder, _generator(seed))
        if self.unit_norm_rows:
            self.after_step()

    def energies(self, x: torch.Tensor) -> torch.Tensor:
        """E = φ(W x + b), shape (n, K)."""
        return ACTIVATIONS[self.activation](self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The code of the decoder-free model is its energy vector."""
        return self.energies(x)

    encode = forward

    @staticmethod
    def responsibilities(energies: torch.Tensor) -> torch.Tensor:
        """r = softmax(−E) over the K components; equals ∂L_LSE/∂E (paper Eq. 2)."""
        return torch.softmax(-energies, dim=-1)

    @staticmethod
    def similarities(energies: torch.Tensor) -> torch.Tensor:
        """§4.4 conversion: s_j = max_k E_k − E_j ≥ 0 (per input; high = good explanation)."""
        return energies.max(dim=-1, keepdim=True).values - energies

    def implicit_decode(self, codes: torch.Tensor) -> torch.Tensor:
        """§4.5 implicit decoder: x̂ = Wᵀ a, i.e. ``codes @ W`` for a batch, shape (n, D)."""
        return codes @ self.W

    @torch.no_grad()
    def after_step(self) -> None:
        """Called by :func:`dfsae.training.train` after each optimiser step: renormalises the rows."""
        if self.unit_norm_rows:
            self.W.div_(self.W.norm(dim=1, keepdim=True).clamp_min(1e-12))


class StandardSAE(_SAEBase):
    """The standard SAE: a = ReLU(W_enc (x − b_dec) + b_enc), x̂ = W_dec a + b_dec.

    Parameters: 2·K·D + K + D (784→64: 101,200). Trained with
    :class:`dfsae.objective.SAEObjective` (MSE + λ·L1).

    Initialised as is common practice for SAEs on language models (Bricken et al., 2023):
    W_dec = W_encᵀ with unit-norm columns, b_enc = b_dec = 0, and the decoder bias is
    subtracted from the input before encoding. Without this, a third to a half of the
    units die early in training on the digits, which would handicap the baseline.

    ``unit_norm_decoder=True`` keeps every decoder column (atom) at unit L2 norm: the
    columns are renormalised after every optimiser step (``after_step``), which
    stops the model from shrinking codes and growing atoms to evade the L1 penalty. The
    alternative fix, weighting the L1 term by the column norms, is an option of the
    objective.
    """

    family = "standard"
    has_decoder = True

    def __init__(self, input_dim: int, hidden_dim: int, unit_norm_decoder: bool = False, seed=None):
        super().__init__(input_dim, hidden_dim)
        self.decoder = nn.Linear(self.hidden_dim, self.input_dim)
        self.unit_norm_decoder = bool(unit_norm_decoder)
        _init_linear(self.encoder, _generator(seed))
        with torch.no_grad():
            self.encoder.bias.zero_()
            self.decoder.bias.zero_()
            self.decoder.weight.copy_(self.encoder.weight.T / self.encoder.weight.T.norm(dim=0))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """a = ReLU(W_enc (x − b_dec) + b_enc), shape (n, K)."""
        return F.relu(self.pre_activations(x))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """W_enc (x − b_dec) + b_enc, before the ReLU."""
        return self.encoder(x - self.decoder.bias)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """x̂ = W_dec a + b_dec, shape (n, D)."""
        return self.decoder(codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The code a (the decoder is applied separately, by :meth:`decode`)."""
        return self.encode(x)

    def decoder_norms(self) -> torch.Tensor:
        """‖d_j‖₂ for each decoder column (atom) d_j, shape (K,)."""
        return self.decoder.weight.norm(dim=0)

    @torch.no_grad()
    def after_step(self) -> None:
        """Called by :func:`dfsae.training.train` after each optimiser step: renormalises the atoms."""
        if self.unit_norm_decoder:
            self.decoder.weight.div_(self.decoder_norms().clamp_min(1e-12))


class TopKSAE(StandardSAE):
    """TopK SAE: a = ReLU(TopK_k(W_enc x + b_enc)); all but the k largest set to 0.

    Sparsity is fixed by construction (L0 ≤ k), so the loss is reconstruction alone.
    Decoder columns are kept at unit norm by default.
    """

    family = "topk"

    def __init__(self, input_dim: int, hidden_dim: int, k: int, unit_norm_decoder: bool = True, seed=None):
        super().__init__(input_dim, hidden_dim, unit_norm_decoder=unit_norm_decoder, seed=seed)
        self.k = validation.positive_int("k", k)
        if self.k > self.hidden_dim:
            raise ValueError(f"k={k} must be <= hidden_dim={hidden_dim}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """a = ReLU of the k largest pre-activations, zeros elsewhere."""
        z = self.pre_activations(x)
        top = torch.topk(z, self.k, dim=-1)
        return torch.zeros_like(z).scatter(-1, top.indices, F.relu(top.values))


FAMILIES = {cls.family: cls for cls in (DecoderFreeSAE, StandardSAE, TopKSAE)}
"""The model families by their one name: ``decoder_free``, ``standard``, ``topk``."""
