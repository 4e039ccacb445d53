"""One training function for every model and objective in the project."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from . import distributed as dist_stats
from . import validation

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


@dataclass
class History:
    """Per-epoch means of every loss term (unweighted) and of the total loss, and the
    Frobenius norm ‖W‖ of the encoder weights at the end of each epoch."""

    terms: dict = field(default_factory=dict)
    weight_norm: list = field(default_factory=list)
    seconds: float = 0.0
    compiled: bool = False
    compile_seconds: float = 0.0  # the first step's time beyond a typical step's, when compiled
    snapshot: dict | None = None  # the model's state after ``snapshot_step`` of ``steps`` steps, if asked
    snapshot_step: int = 0
    steps: int = 0

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


COMPILE_MIN_UNITS = 4096   # below this the step is too cheap for compilation to pay off
COMPILE_MIN_STEPS = 500    # ... and the ~30 s of compilation needs this many steps to pay back


def should_compile(compile, hidden_dim: int, steps: int) -> bool:
    """``compile`` as a bool: ``"auto"`` means a dictionary of at least ``COMPILE_MIN_UNITS``
    units trained for at least ``COMPILE_MIN_STEPS`` steps."""
    if compile == "auto":
        return hidden_dim >= COMPILE_MIN_UNITS and steps >= COMPILE_MIN_STEPS
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True, False or 'auto', got {compile!r}")
    return compile


@dataclass(frozen=True)
class Plan:
    """What a training run will do, fixed before the first step: the checked budget and data."""

    x: torch.Tensor
    epochs: int
    batch_size: int
    n_batches: int
    lr: float
    optimizer: str
    seed: int
    device: torch.device
    compiled: bool
    shard: dist_stats.Shard
    snapshot_step: int = 0  # keep a copy of the model after this many steps (0: none)
    monitor: object = None  # monitor(model, step) at step 0, every monitor.every steps, and at the end


def plan(model, objective, x, *, epochs, batch_size, lr, optimizer, seed, device, drop_last, compile,
         snapshot_at=None, monitor=None) -> Plan:
    """Check every argument of :func:`train` (raising ``ValueError`` naming the bad one) before any work."""
    if isinstance(objective, type):
        raise ValueError(f"objective must be an instance, got the class {objective.__name__}; "
                         f"pass {objective.__name__}()")
    expected = getattr(objective, "model_type", None)
    if expected is None or not isinstance(model, expected):
        name = expected.__name__ if expected else "a dfsae objective (see dfsae.families.Objective)"
        raise ValueError(f"objective {objective!r} cannot train a {type(model).__name__}; it expects {name}")
    epochs = validation.positive_int("epochs", epochs)
    batch_size = validation.positive_int("batch_size", batch_size, minimum=2)
    lr = validation.positive_float("lr", lr)
    validation.choice("optimizer", optimizer, OPTIMIZERS)
    seed = validation.positive_int("seed", seed, minimum=0)
    drop_last = validation.Boolean().check("drop_last", drop_last)
    dev = validation.device("device", device)
    x = model.check_input(x)
    n = x.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the {n} training inputs")
    shard = dist_stats.Shard.of(batch_size, objective)
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    compiled = should_compile(compile, model.hidden_dim, epochs * n_batches)
    snapshot_step = 0
    if snapshot_at is not None:
        fraction = not isinstance(snapshot_at, bool) and isinstance(snapshot_at, (int, float))
        if not (fraction and 0 < snapshot_at < 1):
            raise ValueError("snapshot_at must be a fraction of training strictly between 0 and 1 "
                             f"(e.g. 0.9), got {snapshot_at!r}")
        snapshot_step = max(1, round(snapshot_at * epochs * n_batches))
    if monitor is not None:
        every = getattr(monitor, "every", None)
        if not callable(monitor) or isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError("monitor must be called as monitor(model, step) and have an integer attribute "
                             "every >= 1 (e.g. dfsae.evals.DensityMonitor(x_test, every=50)); "
                             f"got {monitor!r}")
        width = getattr(getattr(monitor, "x", None), "shape", (None, None))[1]
        if width is not None and width != model.input_dim:
            raise ValueError(f"monitor.x has {width} features per row but the model expects "
                             f"input_dim={model.input_dim}")
    return Plan(x, epochs, batch_size, n_batches, lr, optimizer, seed, dev, compiled, shard, snapshot_step,
                monitor)


def _diverged(loss, epoch: int, batch: int, run: Plan) -> FloatingPointError:
    value = loss.detach().item()
    fix = "lower lr or rescale the inputs" if run.optimizer == "adam" else \
        "lower lr, rescale the inputs, or use optimizer='adam'"
    return FloatingPointError(
        f"the loss became {value} in epoch {epoch} (batch {batch + 1} of {run.n_batches}): training "
        "diverged. "
        f"The usual cause is a learning rate too large for {run.optimizer!r} (lr={run.lr:g}), or inputs on a "
        f"very large scale; {fix}.")


def _step(model, loss_of, trained, batch, opt, epoch: int, b: int, run: Plan) -> dict:
    """One optimiser step on ``batch``; returns the terms (with ``"total"``) for the epoch means."""
    loss, terms = loss_of(trained, batch)
    if not torch.isfinite(loss):
        raise _diverged(loss, epoch, b, run)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    model.after_step()
    terms["total"] = loss
    return terms


def _epoch(model, objective, loss_of, trained, opt, generator, epoch: int, run: Plan,
           step_seconds: list, history: History) -> tuple:
    """One pass over the data in a fresh order; returns (sum of each term, steps taken)."""
    n = run.x.shape[0]
    order = torch.randperm(n, generator=generator).to(run.device)
    sums, used = {}, 0
    for b in range(run.n_batches):
        batch = run.shard.local(run.x[order[b * run.batch_size:(b + 1) * run.batch_size]])
        if batch.shape[0] < 2 and objective.needs_batch_statistics and run.shard.world == 1:
            continue  # a last batch of one input has no batch statistics; it is not averaged in
        tic = time.perf_counter()
        terms = _step(model, loss_of, trained, batch, opt, epoch, b, run)
        used += 1
        history.steps += 1
        if run.monitor is not None and history.steps % run.monitor.every == 0:
            run.monitor(model, history.steps)
        if history.steps == run.snapshot_step:
            history.snapshot = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
            history.snapshot_step = history.steps
        if run.compiled and len(step_seconds) < 3:
            step_seconds.append(time.perf_counter() - tic)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach()
    return sums, used


def train(model, objective, x, *, epochs=100, batch_size=128, lr=1e-3, optimizer="adam",
          seed=0, device="cpu", progress=True, drop_last=True, compile=False, snapshot_at=None,
          monitor=None) -> History:
    """Train ``model`` on the rows of ``x`` by minimising ``objective(model, batch)``.

    Mini-batches are drawn without replacement from a permutation made by a generator
    seeded with ``seed``, so the same seed, model initialisation and machine give the same
    result. With ``drop_last=True`` the last incomplete batch of each epoch is skipped,
    so batch statistics (variance, correlation) always use ``batch_size`` inputs.

    Parameters
    ----------
    model : a family's model (:data:`dfsae.families.FAMILIES`)
    objective : an :class:`dfsae.families.Objective` for this model's family (e.g. DecoderFreeObjective,
        SAEObjective, TopKObjective)
    x : (n, input_dim) tensor or array, finite
    epochs, batch_size : int, ≥ 1 and ≥ 2 respectively
    lr : float > 0
    optimizer : "adam" or "sgd"
    seed : int ≥ 0, seeds the batch order
    device : "cpu" or "cuda"
    progress : bool, show a tqdm bar over epochs
    drop_last : bool
    compile : bool or "auto"
        Compile the loss (model forward and objective) with ``torch.compile`` before the first
        step; the compilation time is reported as ``History.compile_seconds``. ``"auto"``
        compiles only where it pays off (:func:`should_compile`).
    snapshot_at : float in (0, 1) or None
        Keep a copy of the model's state (``History.snapshot``, a state dict on the CPU) after this
        fraction of the training steps, e.g. 0.9 to measure how much the metrics still change over
        the last 10 % of training (:func:`dfsae.paper.judgement.convergence`).
    monitor : callable or None
        Called as ``monitor(model, step)`` before the first step (step 0), after every
        ``monitor.every`` steps, and after the last step, e.g. a
        :class:`dfsae.evals.DensityMonitor` recording dead and dense latents over training. It
        must not change the model.

    Returns
    -------
    History
        One value per epoch for each loss term (``history["lse"]``, ...) and ``history["total"]``.

    Inside an initialised ``torch.distributed`` process group (e.g. launched by ``torchrun``)
    every process passes the same ``x`` and ``seed``; each global batch of ``batch_size``
    inputs is split evenly between the processes, the model is wrapped in
    DistributedDataParallel, and the objective's batch statistics are computed over the
    global batch, so N processes follow the same trajectory as one process would.
    """
    run = plan(model, objective, x, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
               seed=seed, device=device, drop_last=drop_last, compile=compile, snapshot_at=snapshot_at,
               monitor=monitor)
    model.to(run.device)
    run = dataclasses.replace(run, x=run.x.to(run.device))
    opt = OPTIMIZERS[run.optimizer](model.parameters(), lr=run.lr)
    generator = torch.Generator().manual_seed(run.seed)
    objective.reset(run.seed + 1)  # e.g. the probes of the estimated decorrelation, the same on every process
    trained = run.shard.wrap(model)
    loss_of = torch.compile(objective.__call__) if run.compiled else objective
    history = History(compiled=run.compiled)
    step_seconds = []
    start = time.perf_counter()
    model.train()
    if run.monitor is not None:
        run.monitor(model, 0)
    for epoch in tqdm(range(1, run.epochs + 1), desc=type(model).__name__, disable=not progress, leave=False):
        sums, used = _epoch(model, objective, loss_of, trained, opt, generator, epoch, run, step_seconds,
                            history)
        history.append({k: float(v) for k, v in sums.items()}, used)
        history.weight_norm.append(float(model.W.detach().norm()))
    if run.monitor is not None and history.steps % run.monitor.every != 0:
        run.monitor(model, history.steps)
    model.eval()
    history.seconds = time.perf_counter() - start
    if run.compiled and step_seconds:
        history.compile_seconds = max(0.0, step_seconds[0] - min(step_seconds))
    return history
