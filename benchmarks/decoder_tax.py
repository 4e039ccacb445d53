"""The decoder tax, measured: one training step of each model, side by side in one run.

    python benchmarks/decoder_tax.py                       # K = 1024 … 65536; B = 1024; eager and compiled
    python benchmarks/decoder_tax.py --widths 1024 --repeats 3 --modes eager --out /tmp/tax.json
    python benchmarks/decoder_tax.py --device cuda         # the same on a GPU (its name is recorded)

For each width K and variant it times one full training step (forward, backward, Adam step;
median over ``--repeats`` after two warm-up steps) and records peak memory, each variant in
its own subprocess so that peak memory is its own. Each step is timed in two execution modes,
``eager`` and ``compiled`` (the loss, model forward and objective, through ``torch.compile``;
the first step's extra time is recorded as the compile cost), the same mode on both sides of
every ratio. It prints the ratios against the standard SAE and against the encoder-only floor,
and writes everything, with machine information, to ``--out`` (default
``benchmarks/decoder_tax.json``, which the book's appendix reads).

Variants: ``sae`` (encoder + decoder, MSE + L1); ``df-exact``, ``df-gram``, ``df-estimate``
(decoder-free, full objective, L_tc computed each way; ``df-estimate`` is the fused InfoMax
path); ``encoder-only`` (decoder-free with L_LSE alone, no batch statistics: the floor any
decoder-free variant can reach). ``df-exact`` is skipped where its K×K matrix exceeds
``--max-matrix-gb``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ["sae", "df-exact", "df-gram", "df-estimate", "encoder-only"]
INPUT_DIM = 784
N_PROBES = 16


def flops(variant: str, b: int, k: int, d: int = INPUT_DIM, m: int = N_PROBES) -> int:
    """Matrix-multiply FLOPs of one step (forward + backward ≈ 3 × forward)."""
    linear = 6 * b * k * d
    extra = {"sae": 6 * b * k * d, "df-exact": 6 * b * k * k, "df-gram": 6 * b * b * k,
             "df-estimate": 12 * b * k * m, "encoder-only": 0}[variant]
    return linear + extra


def child(variant: str, k: int, b: int, repeats: int, device: str, mode: str) -> dict:
    import torch

    import dfsae

    torch.manual_seed(0)
    x = torch.rand(b, INPUT_DIM, device=device)
    if variant == "sae":
        model, objective = dfsae.StandardSAE(INPUT_DIM, k, seed=0), dfsae.SAEObjective(1e-3)
    elif variant == "encoder-only":
        model, objective = dfsae.DecoderFreeSAE(INPUT_DIM, k, seed=0), dfsae.DecoderFreeObjective(1, 0, 0)
    else:
        model = dfsae.DecoderFreeSAE(INPUT_DIM, k, seed=0)
        objective = dfsae.DecoderFreeObjective(decorrelation=variant[3:], n_probes=N_PROBES)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_of = torch.compile(objective.__call__) if mode == "compiled" else objective
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        loss, _ = loss_of(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()

    times, first = [], None
    for i in range(repeats + 2):
        start = time.perf_counter()
        step()
        if i == 0:
            first = time.perf_counter() - start
        if i >= 2:
            times.append(time.perf_counter() - start)
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    median = statistics.median(times)
    return {"variant": variant, "mode": mode, "K": k, "B": b, "step_s": median, "first_step_s": first,
            "compile_s": max(0.0, first - median) if mode == "compiled" else 0.0, "peak_mb": peak_mb,
            "params": model.num_parameters(), "flops": flops(variant, b, k)}


def machine(device: str) -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "device": device,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "cores": os.cpu_count()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    parser.add_argument("--max-matrix-gb", type=float, default=2.0,
                        help="skip df-exact where its K×K matrix is larger (default 2 GB)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "decoder_tax.json"))
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "K", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.widths) or args.batch < 2 or args.repeats < 1:
        parser.error("widths must be >= 1, batch >= 2 and repeats >= 1")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda but no CUDA device is available")
    if args.child:
        variant, k, mode = args.child
        print(json.dumps(child(variant, int(k), args.batch, args.repeats, args.device, mode)))
        return 0

    rows = []
    for k in args.widths:
        for mode in args.modes:
            for variant in VARIANTS:
                if variant == "df-exact" and 4 * k * k / 2**30 > args.max_matrix_gb:
                    continue
                cmd = [sys.executable, __file__, "--child", variant, str(k), mode, "--batch",
                       str(args.batch), "--repeats", str(args.repeats), "--device", args.device]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                row = json.loads(out.strip().splitlines()[-1])
                rows.append(row)
                print(f"K={k:6d} {mode:8s} {variant:13s} {row['step_s'] * 1e3:9.1f} ms/step  "
                      f"peak {row['peak_mb']:8.0f} MB  compile {row['compile_s']:5.1f} s", flush=True)
    by = {(r["K"], r["mode"], r["variant"]): r for r in rows}
    print("\nratios, same mode on both sides (standard SAE step / variant step; variant / the floor):")
    for k in args.widths:
        for mode in args.modes:
            sae, floor = by[(k, mode, "sae")]["step_s"], by[(k, mode, "encoder-only")]["step_s"]
            for variant in VARIANTS[1:]:
                if (k, mode, variant) not in by:
                    continue
                t = by[(k, mode, variant)]["step_s"]
                by[(k, mode, variant)]["speedup_vs_sae"] = sae / t
                by[(k, mode, variant)]["vs_floor"] = t / floor
                print(f"K={k:6d} {mode:8s} {variant:13s} {sae / t:5.2f}x faster than SAE   "
                      f"{t / floor:5.2f}x the floor")
    result = {"machine": machine(args.device), "input_dim": INPUT_DIM, "batch": args.batch,
              "repeats": args.repeats, "n_probes": N_PROBES, "modes": args.modes, "rows": rows}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"\nwritten to {args.out}")
    print(json.dumps(result["machine"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
