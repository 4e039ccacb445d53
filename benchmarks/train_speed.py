"""Time the full decoder-free objective, 784→64, on the 4,000 embedded training digits.

    python benchmarks/train_speed.py [--epochs 100] [--batch-size 128]

Prints the wall time of the decoder-free model (full objective) and, measured side by
side in the same run, of the standard SAE with the same budget, and their ratio.
"""

import argparse
import platform

import torch

import dfsae


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    data = dfsae.load_dataset("mnist5k")
    runs = {
        "decoder-free (full objective)": (dfsae.DecoderFreeSAE(784, 64, seed=0),
                                          dfsae.DecoderFreeObjective()),
        "standard SAE (MSE + L1)": (dfsae.StandardSAE(784, 64, seed=0),
                                    dfsae.SAEObjective(l1_coefficient=1e-3)),
    }
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    seconds = {}
    for label, (model, objective) in runs.items():
        history = dfsae.train(model, objective, data.x_train, epochs=args.epochs,
                              batch_size=args.batch_size, progress=False)
        seconds[label] = history.seconds
        print(f"{label:32s} {args.epochs} epochs: {history.seconds:6.2f} s")
    a, b = seconds.values()
    print(f"ratio standard / decoder-free: {b / a:.2f}")


if __name__ == "__main__":
    main()
