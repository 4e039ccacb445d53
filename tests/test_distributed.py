"""Two gloo processes with B/2 inputs each give the loss and gradients of one process with B."""

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dfsae import DecoderFreeObjective, DecoderFreeSAE

B, D, K = 32, 12, 7


def batch():
    return torch.rand(B, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def objective(method, reduction):
    obj = DecoderFreeObjective(lambda_lse=1.0, lambda_var=1.0, lambda_tc=1.0, lambda_wr=0.1,
                               lse_reduction=reduction, decorrelation=method, n_probes=5)
    obj.reset(11)
    return obj


def single_process(method, reduction):
    model = DecoderFreeSAE(D, K, seed=3).double()
    loss, _ = objective(method, reduction)(model, batch())
    loss.backward()
    return loss.item(), [p.grad.clone() for p in model.parameters()]


def worker(rank, world, init_file, out, method, reduction):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(DecoderFreeSAE(D, K, seed=3).double())
        share = B // world
        loss, _ = objective(method, reduction)(model, batch()[rank * share:(rank + 1) * share])
        loss.backward()
        if rank == 0:
            with open(out, "w") as f:
                json.dump({"loss": loss.item(), "grads": [p.grad.tolist() for p in model.parameters()]}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method,reduction", [("exact", "mean"), ("estimate", "mean"), ("exact", "sum")])
def test_two_processes_match_one(tmp_path, method, reduction):
    out = tmp_path / "rank0.json"
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(out), method, reduction), nprocs=2, join=True)
    result = json.loads(out.read_text())
    loss, grads = single_process(method, reduction)
    assert abs(result["loss"] - loss) <= 1e-6 * max(1, abs(loss))
    for got, want in zip(result["grads"], grads, strict=True):
        assert (torch.tensor(got, dtype=torch.float64) - want).abs().max().item() <= 1e-6


def train_worker(rank, world, init_file, out):
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        import dfsae

        model = DecoderFreeSAE(D, K, seed=3).double()
        x = torch.rand(128, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        dfsae.train(model, DecoderFreeObjective(), x, epochs=3, batch_size=32, seed=0, progress=False)
        if rank == 0:
            torch.save(model.state_dict(), out)
    finally:
        dist.destroy_process_group()


def test_distributed_training_follows_single_process(tmp_path):
    import dfsae

    out = tmp_path / "model.pt"
    mp.spawn(train_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    single = DecoderFreeSAE(D, K, seed=3).double()
    x = torch.rand(128, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    dfsae.train(single, DecoderFreeObjective(), x, epochs=3, batch_size=32, seed=0, progress=False)
    state = torch.load(out)
    for name, value in single.state_dict().items():
        assert (state[name] - value).abs().max().item() <= 1e-6, name
