"""Train the decoder-free SAE on several processes, with batch statistics over the global batch.

    torchrun --nproc_per_node 2 examples/train_distributed.py --epochs 20 --batch-size 256

Every process loads the same data and passes the same seed; ``dfsae.train`` splits each global
batch between the processes and all-reduces the statistics of L_LSE, L_var and L_tc, so the
result equals single-process training with the same global batch size.
"""

import argparse

import torch
import torch.distributed as dist

import dfsae


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    args = parser.parse_args()
    dist.init_process_group(args.backend)
    try:
        device = f"cuda:{dist.get_rank() % torch.cuda.device_count()}" if args.backend == "nccl" else "cpu"
        data = dfsae.load_dataset("mnist5k")
        model = dfsae.DecoderFreeSAE(784, args.hidden_dim, seed=0)
        history = dfsae.train(model, dfsae.DecoderFreeObjective(), data.x_train, epochs=args.epochs,
                              batch_size=args.batch_size, seed=0, device=device,
                              progress=dist.get_rank() == 0)
        if dist.get_rank() == 0:
            metrics = dfsae.evaluate(model.cpu(), data)
            print(f"{dist.get_world_size()} processes, final loss {history['total'][-1]:.4f}, "
                  f"dead {metrics['dead']}, L0 {metrics['l0']:.1f}, probe {metrics['probe_acc']:.3f}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
