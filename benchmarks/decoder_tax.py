"""The decoder tax, measured: one training step of each model, side by side in one run.

    python benchmarks/decoder_tax.py                       # K = 1024 … 65536; B = 1024; eager and compiled
    python benchmarks/decoder_tax.py --widths 1024 --repeats 3 --modes eager --out /tmp/tax.json
    python benchmarks/decoder_tax.py --device cuda         # the same on a GPU (its name is recorded)
    python benchmarks/decoder_tax.py --input-dim 384 --batch 512 --widths 3072 \
        --variants sae standard tied topk batchtopk jumprelu df-gram encoder-only \
        --out benchmarks/scale_steps.json             # every family at the transformer section's shape

For each width K it times one full training step (forward, backward, Adam step) of every
variant in two execution modes, ``eager`` and ``compiled`` (the loss — model forward and
objective — through ``torch.compile``; the first step's extra time is recorded as the compile
cost). Each (variant, mode) lives in its own subprocess, so that its peak memory is its own, and
all of a width's subprocesses step in interleaved rounds (one step each per round, in rotating
order, after two warm-up steps), so that a slow spell of a shared machine falls on every variant
alike. A ratio is the median over rounds of the ratio within a round, always in the same mode
on both sides. It prints the ratios against the standard SAE and against the encoder-only floor,
and writes everything, with machine information and every round's times, to ``--out`` (default
``benchmarks/decoder_tax.json``, which the book's appendix reads).

Variants: ``sae`` (encoder + decoder, MSE + L1); ``df-exact``, ``df-gram``, ``df-gram-bf16``,
``df-estimate`` (decoder-free, full objective, L_tc computed each way; ``df-estimate`` is the fused
path of ``decorrelation="estimate"``); ``encoder-only`` (decoder-free with L_LSE alone, through the same
fused path, so no batch statistics: the floor any decoder-free variant can reach).
``df-exact`` is skipped where its K×K matrix exceeds ``--max-matrix-gb``. On request
(``--variants``) each family with a decoder as the training loop runs it, with the step's
``after_step`` (e.g. the decoder's unit norm): ``standard``, ``tied``, ``topk``, ``batchtopk``,
``jumprelu``, at the knob values in ``FAMILY_OPTIONS``. Where both modes are measured it also
prints each variant's compiled step against its eager step.
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

VARIANTS = ["sae", "df-exact", "df-gram", "df-gram-bf16", "df-estimate", "encoder-only"]
# Each family with a decoder, as the training loop runs it, at a mid value of its knob in the
# transformer section's sweep.
FAMILY_OPTIONS = {"standard": {"l1_coefficient": 1.0}, "tied": {"l1_coefficient": 1.5},
                  "topk": {"k": 48}, "batchtopk": {"k": 48}, "jumprelu": {"l0_coefficient": 0.3}}
INPUT_DIM = 784
N_PROBES = 16


def flops(variant: str, b: int, k: int, d: int = INPUT_DIM, m: int = N_PROBES) -> int:
    """Matrix-multiply FLOPs of one step (forward + backward ≈ 3 × forward)."""
    linear = 6 * b * k * d
    if variant in FAMILY_OPTIONS:
        return 2 * linear
    extra = {"sae": 6 * b * k * d, "df-exact": 6 * b * k * k, "df-gram": 6 * b * b * k,
             "df-gram-bf16": 6 * b * b * k, "df-estimate": 12 * b * k * m, "encoder-only": 0}[variant]
    return linear + extra


def child(variant: str, k: int, b: int, d: int, device: str, mode: str) -> None:
    """Serve steps on request: each line "step" on stdin runs one step and prints its seconds;
    "done" prints the variant's record (peak memory, parameters, FLOPs) as JSON and exits."""
    import torch

    import dfsae
    from dfsae import families

    torch.manual_seed(0)
    x = torch.rand(b, d, device=device)
    after_step = False
    if variant in FAMILY_OPTIONS:
        model, objective = families.family(variant).config.make(**FAMILY_OPTIONS[variant]).build(d, k, seed=0)
        after_step = True
    elif variant == "sae":
        # plain L1, as in the stored timings (the decoder-norm weighting adds one K-vector of norms)
        model = dfsae.StandardSAE(d, k, seed=0)
        objective = dfsae.SAEObjective(l1_coefficient=1e-3, l1_weighting="plain")
    elif variant == "encoder-only":  # the floor: the fused L_LSE alone
        model = dfsae.DecoderFreeSAE(d, k, seed=0)
        objective = dfsae.DecoderFreeObjective(lambda_lse=1, lambda_var=0, lambda_tc=0, fused=True)
    else:
        model = dfsae.DecoderFreeSAE(d, k, seed=0)
        objective = dfsae.DecoderFreeObjective(decorrelation=variant[3:], n_probes=N_PROBES,
                                               fused=variant == "df-estimate")
    objective.reset(0)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_of = torch.compile(objective.__call__) if mode == "compiled" else objective
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        start = time.perf_counter()
        loss, _ = loss_of(model, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step:
            model.after_step()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for line in sys.stdin:
        if line.strip() == "step":
            print(step(), flush=True)
            continue
        if device == "cuda":
            peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
        print(json.dumps({"variant": variant, "mode": mode, "K": k, "B": b, "peak_mb": peak_mb,
                          "params": model.num_parameters(), "flops": flops(variant, b, k, d)}), flush=True)
        return


class Runner:
    """One child process serving steps of one (variant, mode)."""

    def __init__(self, variant, k, mode, args):
        cmd = [sys.executable, __file__, "--child", variant, str(k), mode, "--batch", str(args.batch),
               "--input-dim", str(args.input_dim), "--device", args.device]
        # No compile cache: the first step then pays the full compilation, as on a fresh machine.
        env = {**os.environ, "TORCHINDUCTOR_FORCE_DISABLE_CACHES": "1"}
        self.process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env)
        self.key = (k, mode, variant)

    def step(self) -> float:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the benchmark process for {self.key} stopped; run it alone with "
                               f"--widths {self.key[0]} --modes {self.key[1]} to see its error")
        return float(line)

    def finish(self) -> dict:
        self.process.stdin.write("done\n")
        self.process.stdin.flush()
        record = json.loads(self.process.stdout.readline())
        self.process.wait()
        return record


def measure_width(k: int, args) -> list[dict]:
    """Every variant and mode at width ``k``, stepped in interleaved rounds."""
    runners = [Runner(variant, k, mode, args) for mode in args.modes for variant in args.variants
               if not (variant == "df-exact" and 4 * k * k / 2**30 > args.max_matrix_gb)]
    try:
        first = [r.step() for r in runners]
        for r in runners:
            r.step()
        times = {r.key: [] for r in runners}
        for i in range(args.repeats):
            order = runners[i % len(runners):] + runners[:i % len(runners)]
            for r in order:
                times[r.key].append(r.step())
        rows = []
        for r, first_s in zip(runners, first, strict=True):
            row = r.finish()
            median = statistics.median(times[r.key])
            row.update(step_s=median, rounds_s=times[r.key], first_step_s=first_s,
                       compile_s=max(0.0, first_s - median) if r.key[1] == "compiled" else 0.0)
            rows.append(row)
    finally:
        for r in runners:
            if r.process.poll() is None:
                r.process.kill()
    return rows


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of numerator / denominator within each round."""
    return statistics.median(a / b for a, b in zip(numerator, denominator, strict=True))


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
    parser.add_argument("--max-matrix-gb", type=float, default=0.5,
                        help="skip df-exact where its K×K matrix is larger (default 0.5 GB: K ≤ 11,585)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--input-dim", type=int, default=INPUT_DIM,
                        help="width d of the inputs (default 784)")
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS + list(FAMILY_OPTIONS),
                        help="what to time; the ratios need sae and encoder-only among them")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds after two warm-up steps")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "decoder_tax.json"))
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "K", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(k < 1 for k in args.widths) or args.batch < 2 or args.repeats < 1 or args.input_dim < 1:
        parser.error("widths must be >= 1, batch >= 2, repeats >= 1 and input-dim >= 1")
    if not args.child and not {"sae", "encoder-only"} <= set(args.variants):
        parser.error("--variants must include sae and encoder-only (the ratios' references), e.g. "
                     "--variants sae topk encoder-only")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda but no CUDA device is available")
    if args.child:
        variant, k, mode = args.child
        child(variant, int(k), args.batch, args.input_dim, args.device, mode)
        return 0

    rows = []
    for k in args.widths:
        for row in measure_width(k, args):
            rows.append(row)
            print(f"K={k:6d} {row['mode']:8s} {row['variant']:13s} {row['step_s'] * 1e3:9.1f} ms/step  "
                  f"peak {row['peak_mb']:8.0f} MB  compile {row['compile_s']:5.1f} s", flush=True)
    by = {(r["K"], r["mode"], r["variant"]): r for r in rows}
    print("\nratios, same mode on both sides, median over rounds of the ratio within a round "
          "(standard SAE step / variant step; variant / the floor):")
    for k in args.widths:
        for mode in args.modes:
            sae, floor = by[(k, mode, "sae")]["rounds_s"], by[(k, mode, "encoder-only")]["rounds_s"]
            for variant in args.variants:
                if variant == "sae" or (k, mode, variant) not in by:
                    continue
                row = by[(k, mode, variant)]
                row["speedup_vs_sae"] = paired_ratio(sae, row["rounds_s"])
                row["vs_floor"] = paired_ratio(row["rounds_s"], floor)
                print(f"K={k:6d} {mode:8s} {variant:13s} {row['speedup_vs_sae']:5.2f}x faster than SAE   "
                      f"{row['vs_floor']:5.2f}x the floor")
    if set(args.modes) == {"eager", "compiled"}:
        print("\ncompiled against eager, the same variant (eager step / compiled step, median over rounds):")
        for k in args.widths:
            for variant in args.variants:
                if (k, "eager", variant) in by and (k, "compiled", variant) in by:
                    row = by[(k, "compiled", variant)]
                    eager = by[(k, "eager", variant)]["rounds_s"]
                    row["speedup_vs_eager"] = paired_ratio(eager, row["rounds_s"])
                    print(f"K={k:6d} {variant:13s} {row['speedup_vs_eager']:5.2f}x faster compiled, "
                          f"compilation {row['compile_s']:5.1f} s")
    result = {"machine": machine(args.device), "input_dim": args.input_dim, "batch": args.batch,
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
