"""Batch statistics over the *global* batch when training with ``torch.distributed``.

L_var and L_tc are functions of the batch mean, variance and correlation of the codes (and
the batch-mean L_LSE of the batch size). With
N processes each holding B/N inputs, every process all-reduces the sufficient statistics —
the count n, Σ a, Σ a², and Σ a aᵀ (exact decorrelation) or Σ Zᵀ(Z v) (estimated) — so that
each computes the loss of the whole batch of B (Σ L_LSE is all-reduced too, so every
process reports the same loss). The all-reduce used is differentiable
(its backward all-reduces the incoming gradient), and DistributedDataParallel averages
parameter gradients over the N processes; together they give exactly the gradient of the
single-process loss on all B inputs.

Launch with, e.g.::

    torchrun --nproc_per_node 2 my_training_script.py

where the script calls ``torch.distributed.init_process_group("gloo")`` (or "nccl" on
GPUs) and then :func:`dfsae.training.train` as usual; ``train`` detects the process group.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def all_reduce(t: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over processes (identity without an active process group)."""
    if not is_active():
        return t
    import warnings

    from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return differentiable_all_reduce(t)


def global_moments(codes: torch.Tensor):
    """(n, mean, biased variance) of each unit over the global batch."""
    n = all_reduce(codes.new_tensor(float(codes.shape[0])))
    mean = all_reduce(codes.sum(dim=0)) / n
    var = all_reduce((codes * codes).sum(dim=0)) / n - mean * mean
    return n, mean, var.clamp_min(0.0)


class Shard:
    """This process's share of each global batch, and the model wrapper that goes with it.

    With one process it is the identity. With N processes each takes ``batch_size / N`` rows of
    every global batch (in rank order) and the model is wrapped in DistributedDataParallel.
    """

    def __init__(self, world: int, rank: int, share: int):
        self.world, self.rank, self.share = world, rank, share

    @classmethod
    def of(cls, batch_size: int, objective) -> Shard:
        """Check that training can be split and return the shard; raise ``ValueError`` if not."""
        world = world_size()
        if world == 1:
            return cls(1, 0, batch_size)
        if batch_size % world:
            raise ValueError(f"batch_size={batch_size} must be divisible by the {world} processes")
        if not getattr(objective, "supports_distributed", False):
            raise ValueError(f"{type(objective).__name__} does not compute its statistics across processes; "
                             "distributed training is implemented for DecoderFreeObjective")
        return cls(world, dist.get_rank(), batch_size // world)

    def local(self, batch: torch.Tensor) -> torch.Tensor:
        return batch if self.world == 1 else batch[self.rank * self.share:(self.rank + 1) * self.share]

    def wrap(self, model):
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
