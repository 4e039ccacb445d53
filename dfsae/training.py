"""One training function for every model and objective in the project."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from . import _checks
from . import distributed as dist_stats

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class History:
    """Per-epoch means of every loss term (unweighted) and of the total loss, and the
    Frobenius norm ‖W‖ of the encoder weights at the end of each epoch."""

    terms: dict = field(default_factory=dict)
    weight_norm: list = field(default_factory=list)
    seconds: float = 0.0

    def append(self, sums: dict, n_batches: int) -> None:
        for name, value in sums.items():
            self.terms.setdefault(name, []).append(value / n_batches)

    def __getitem__(self, name):
        return self.terms[name]

    def to_frame(self):
        import pandas as pd

        frame = pd.DataFrame(self.terms)
        if len(self.weight_norm) == len(frame):
            frame["weight_norm"] = self.weight_norm
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
        return frame


def train(model, objective, x, *, epochs=100, batch_size=128, lr=1e-3, optimizer="adam",
          seed=0, device="cpu", progress=True, drop_last=True) -> History:
    """Train ``model`` on the rows of ``x`` by minimising ``objective(model, batch)``.

    Mini-batches are drawn without replacement from a permutation made by a generator
    seeded with ``seed``, so the same seed, model initialisation and machine give the same
    result. With ``drop_last=True`` the last incomplete batch of each epoch is skipped,
    so batch statistics (variance, correlation) always use ``batch_size`` inputs.

    Parameters
    ----------
    model : DecoderFreeSAE, StandardSAE or TopKSAE
    objective : DecoderFreeObjective, SAEObjective or TopKObjective (matching the model)
    x : (n, input_dim) tensor or array, finite
    epochs, batch_size : int, ≥ 1 and ≥ 2 respectively
    lr : float > 0
    optimizer : "adam" or "sgd"
    seed : int ≥ 0, seeds the batch order
    device : "cpu" or "cuda"
    progress : bool, show a tqdm bar over epochs

    Returns
    -------
    History with a list per loss term (``history["lse"]``, ...), plus ``"total"``.

    Inside an initialised ``torch.distributed`` process group (e.g. launched by ``torchrun``)
    every process passes the same ``x`` and ``seed``; each global batch of ``batch_size``
    inputs is split evenly between the processes, the model is wrapped in
    DistributedDataParallel, and the objective's batch statistics are computed over the
    global batch, so N processes follow the same trajectory as one process would.
    """
    # Validate everything before doing any work.
    types = getattr(objective, "model_types", None)
    if types is None or not isinstance(model, types):
        expected = [t.__name__ for t in types] if types else "a dfsae objective"
        raise ValueError(f"objective {objective!r} cannot train a {type(model).__name__}; "
                         f"it expects {expected}")
    epochs = _checks.positive_int("epochs", epochs)
    batch_size = _checks.positive_int("batch_size", batch_size, minimum=2)
    lr = _checks.positive_float("lr", lr)
    _checks.choice("optimizer", optimizer, OPTIMIZERS)
    seed = _checks.positive_int("seed", seed, minimum=0)
    dev = _checks.device("device", device)
    x = model.check_input(x)
    n = x.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} training inputs")
    world = dist_stats.world_size()
    if world > 1:
        if batch_size % world or batch_size // world < 1:
            raise ValueError(f"batch_size={batch_size} must be divisible by the {world} processes")
        from .objective import DecoderFreeObjective

        if not isinstance(objective, DecoderFreeObjective):
            raise ValueError("distributed training is implemented for DecoderFreeObjective only")

    model.to(dev)
    x = x.to(dev)
    opt = OPTIMIZERS[optimizer](model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    if hasattr(objective, "generator"):  # probes of the estimated decorrelation, same on every process
        objective.generator = torch.Generator().manual_seed(seed + 1)
    trained = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        trained = DistributedDataParallel(model)
    share = batch_size // world
    rank = torch.distributed.get_rank() if world > 1 else 0
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    history = History()
    start = time.perf_counter()
    model.train()
    for _ in tqdm(range(epochs), desc=type(model).__name__, disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator).to(dev)
        sums = {}
        for b in range(n_batches):
            batch = x[order[b * batch_size:(b + 1) * batch_size]]
            if world > 1:
                batch = batch[rank * share:(rank + 1) * share]
            if batch.shape[0] < 2 and getattr(objective, "needs_batch_statistics", False) and world == 1:
                continue
            loss, terms = objective(trained, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if hasattr(model, "after_step"):
                model.after_step()
            terms["total"] = loss
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value.detach()
        history.append({k: float(v) for k, v in sums.items()}, n_batches)
        history.weight_norm.append(float(model.W.detach().norm()))
    model.eval()
    history.seconds = time.perf_counter() - start
    return history
