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
