"""How far each cheap decorrelation gradient is from the exact one, before any training.

    python benchmarks/decorrelation_gradients.py                        # digits and MiniLM, K = 1024 … 16384
    python benchmarks/decorrelation_gradients.py --data digits --widths 1024 --draws 8 --out /tmp/g.json
    python benchmarks/decorrelation_gradients.py --device cuda          # the same on a GPU (untested here)

L_tc = Σ_{i≠j} Corr_ij² is the only term of the decoder-free objective that costs more than the
encoder. The exact forms cost B·K² ("exact") or B²·K ("gram"); the stochastic candidates cost
about B·K·m. A candidate can only train the same model as the exact form if its gradient is close
to the exact gradient, so this measures that first, on real codes:

1. For each data set and width K, a decoder-free encoder (d → K, the book's full objective) is
   trained for ``--steps`` steps with the exact loss, so that the codes have the structure of a
   trained model, not of an initialisation.
2. On one held-out batch of B inputs, the exact gradient of L_tc with respect to the encoder
   weights W is computed in float64 (the reference), and each candidate's gradient ``--draws``
   times, each draw with fresh randomness.
3. For each candidate: the relative bias ‖mean ĝ − g‖ / ‖g‖ (which includes the Monte Carlo
   error of the mean, about the relative sd / √draws), the relative sd of one draw
   √(mean ‖ĝ − mean ĝ‖²) / ‖g‖, the mean cosine between one draw and g, and the median time of
   one loss-and-gradient evaluation (forward through the encoder, L_tc, backward).

Candidates:

* ``exact-f32`` and ``gram-f32`` — the library's exact forms in float32 (the floor: rounding only);
* ``gram-bf16`` — the library's Gram form with its B×B product in bfloat16;
* ``hutchinson-identity`` — the estimate's code path with the K scaled unit vectors √K·e_i as probes
  (their mean outer product is I, as a random sign vector's is in expectation), which must
  give the exact gradient: a control that separates the estimator's noise from its code;
* ``hutchinson-m`` — the library's unbiased estimate with m Rademacher probes;
* ``hutch++-m`` — Hutch++ with m probe vectors: a third sketch the range of the correlations,
  which is then taken exactly, and Hutchinson estimates the rest; unbiased, cost about B·K·m;
* ``ema-a`` — correlations accumulated across batches: the batch's correlation mixed, with weight
  a, into a moving average of the last ``--ema-batches`` training batches' (another statistic by
  design, which lifts the batch's rank limit; cost B·K² and K² memory, so only up to
  ``--max-exact``);
* ``blocks-S`` — exact correlations within the blocks of a fresh random partition of the units
  into blocks of S, scaled by (K − 1)/(S − 1), the inverse probability that a pair shares a
  block: unbiased, cost B·S·K.

A candidate whose relative sd is large trains with noisier steps than the exact form, and one with
a bias trains towards another optimum; either can change the trained model, which only training
itself (A1's agreement table) decides. Results go to ``--out`` (default
``benchmarks/gradients.json``, which the book's appendix reads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

DEFAULT_WIDTHS = [1024, 4096, 16384]


def block_decorrelation(codes, block: int, generator, eps: float):
    """Unbiased L_tc from exact correlations inside the blocks of one random partition of the units.

    A pair (i, j), i ≠ j, shares a block with probability (S − 1)/(K − 1) when the K units are
    split at random into blocks of S (K a multiple of S), so the sum over blocks of each block's
    exact L_tc, times (K − 1)/(S − 1), has expectation L_tc. Cost B·S·K, memory S² per block."""
    import torch

    from dfsae.losses import decorrelation_loss

    k = codes.shape[1]
    if k % block:
        raise ValueError(f"the width {k} is not a multiple of the block size {block}")
    order = torch.randperm(k, generator=generator).to(codes.device)
    total = 0.0
    for start in range(0, k, block):
        total = total + decorrelation_loss(codes[:, order[start:start + block]], eps, "exact")
    return total * (k - 1) / (block - 1)


def hutchplusplus_decorrelation(codes, m: int, generator, eps: float):
    """Hutch++ (Meyer, Musco, Musco and Woodruff 2021) for L_tc = tr(M²), M = Corr − diag Corr.

    Of the m probe vectors, q = m // 3 sketch the range of M: Q = orth(M S) for random signs S,
    computed without gradient. The part of tr(M²) inside that range is taken exactly,
    tr(Qᵀ M² Q) = ‖M Q‖²_F, and the rest by Hutchinson with the other m − 2q sign vectors G
    projected off it, ‖M (I − QQᵀ) G‖²_F / (m − 2q). For any Q the second term's expectation over G
    is tr(M²) − ‖MQ‖²_F, so the estimate and its gradient are unbiased; its variance is that of
    Hutchinson on what the sketch missed. Every product with M is Zᵀ(Z v) − diag(Corr) v, cost
    2·B·K per vector, so the cost is about 2·B·K·m, as for Hutchinson with m probes."""
    import torch

    from dfsae.losses import _standardise, rademacher

    q = m // 3
    if q < 1 or m - 2 * q < 1:
        raise ValueError(f"Hutch++ needs at least 3 probe vectors, got m = {m}")
    z, diag = _standardise(codes, eps)
    k = codes.shape[1]

    def times_m(v):
        return z.T @ (z @ v) - diag[:, None] * v

    with torch.no_grad():
        basis, _ = torch.linalg.qr(times_m(rademacher(k, q, generator, codes)))
    g = rademacher(k, m - 2 * q, generator, codes)
    rest = g - basis @ (basis.T @ g)
    return (times_m(basis) ** 2).sum() + (times_m(rest) ** 2).sum() / g.shape[1]


def ema_decorrelation(codes, history, alpha: float, eps: float):
    """L_tc of correlations accumulated across batches: the batch's Corr mixed with weight alpha
    into ``history`` (the moving average of earlier batches' Corr, a constant here), divided by
    alpha so that with history equal to the batch's own Corr the gradient is the exact one.

    What it computes is another statistic than the batch's correlation (that of a longer window,
    which also lifts the batch's rank limit), so its gradient differs from the batch form's by
    design; this measures by how much. Cost B·K² and K² memory, as the exact K×K form."""
    import torch

    from dfsae.losses import batch_correlation

    mixed = alpha * batch_correlation(codes, eps) + (1 - alpha) * history
    off = mixed - torch.diag_embed(torch.diagonal(mixed))
    return (off * off).sum() / alpha


def correlation_history(codes_of_batches, alpha: float, eps: float):
    """The moving average of the correlations of ``codes_of_batches`` (in order), starting from
    the first: H ← alpha·Corr_t + (1 − alpha)·H."""
    from dfsae.losses import batch_correlation

    history = None
    for codes in codes_of_batches:
        corr = batch_correlation(codes, eps)
        history = corr if history is None else alpha * corr + (1 - alpha) * history
    return history


def candidates(widths_ok, hutchinson, blocks, hutchplusplus=(), ema=()):
    names = ["exact-f32", "gram-f32", "gram-bf16", "hutchinson-identity"]
    names += [f"hutchinson-{m}" for m in hutchinson]
    names += [f"hutch++-{m}" for m in hutchplusplus]
    names += [f"blocks-{s}" for s in blocks]
    names += [f"ema-{a:g}" for a in ema]
    return names


def loss_of(name: str, codes, generator, eps: float, histories=None):
    from dfsae.losses import decorrelation_loss

    if name == "exact-f32":
        return decorrelation_loss(codes, eps, "exact")
    if name == "gram-f32":
        return decorrelation_loss(codes, eps, "gram")
    if name == "gram-bf16":
        return decorrelation_loss(codes, eps, "gram-bf16")
    if name == "hutchinson-identity":
        import torch

        k = codes.shape[1]  # probes √K·e_i: (1/m) Σ v vᵀ = I exactly, as E[v vᵀ] = I for random signs
        return decorrelation_loss(codes, eps, "estimate",
                                  probes=torch.eye(k, dtype=codes.dtype, device=codes.device) * k ** 0.5)
    if name.startswith("hutchinson-"):
        return decorrelation_loss(codes, eps, "estimate", n_probes=int(name.split("-")[1]), generator=generator)  # noqa: E501
    if name.startswith("hutch++-"):
        return hutchplusplus_decorrelation(codes, int(name.split("-")[1]), generator, eps)
    if name.startswith("blocks-"):
        return block_decorrelation(codes, int(name.split("-")[1]), generator, eps)
    if name.startswith("ema-"):
        alpha = float(name.split("-")[1])
        return ema_decorrelation(codes, histories[alpha].to(codes.dtype), alpha, eps)
    raise ValueError(f"unknown candidate {name!r}")


def load(data: str, n: int):
    """(train, held-out) inputs of one data set: the 5,000 digits, or MiniLM-L6 layer-3 hidden states
    of the Python documentation (scaled to unit mean squared norm per dimension)."""
    import torch

    if data == "digits":
        import dfsae

        d = dfsae.load_dataset("mnist5k")
        return d.x_train, d.x_test
    from dfsae import activations

    docs = activations.python_docs()
    train_pages, test_pages = activations.split_documents(list(docs))
    tokenizer, lm = activations.load_minilm()
    act = activations.extract([docs[p] for p in activations.hash_order(train_pages)], layer=3, n_tokens=n,
                              model=lm, tokenizer=tokenizer, progress=False)
    held = activations.extract([docs[p] for p in activations.hash_order(test_pages)], layer=3, n_tokens=4096,
                               model=lm, tokenizer=tokenizer, progress=False)
    scale = float((act.x.shape[1] / act.x.pow(2).sum(1).mean()).sqrt())
    return act.x * scale, (held.x * scale).to(torch.float32)


def measure(data: str, k: int, args) -> list[dict]:
    import torch

    import dfsae
    from dfsae.losses import EPS

    x_train, x_test = load(data, args.tokens)
    model = dfsae.DecoderFreeSAE(x_train.shape[1], k, seed=0)
    objective = dfsae.DecoderFreeObjective(decorrelation="auto")
    steps_per_epoch = len(x_train) // args.batch
    epochs = max(1, -(-args.steps // steps_per_epoch))
    dfsae.train(model, objective, x_train, epochs=epochs, batch_size=args.batch, seed=0, progress=False,
                device=args.device)
    model.to(args.device)
    batch = x_test[:args.batch].to(args.device)
    histories = {}
    if args.ema and k <= args.max_exact:        # the moving average of the last training batches' Corr
        n_recent = min(args.ema_batches, len(x_train) // args.batch)
        with torch.no_grad():
            recent = [torch.relu(x_train[i * args.batch:(i + 1) * args.batch].to(args.device) @ model.W.T
                                 + model.encoder.bias) for i in range(n_recent)]
        histories = {a: correlation_history(recent, a, EPS) for a in args.ema}

    def gradient(name, generator, dtype=torch.float32):
        W = model.W.detach().to(dtype).clone().requires_grad_(True)
        b = model.encoder.bias.detach().to(dtype).clone()
        codes = torch.relu(batch.to(dtype) @ W.T + b)
        if name == "reference":
            from dfsae.losses import decorrelation_loss

            loss = decorrelation_loss(codes, EPS, "exact" if k <= 4096 else "gram")
        else:
            loss = loss_of(name, codes, generator, EPS, histories)
        (g,) = torch.autograd.grad(loss, W)
        return g.double()

    reference = gradient("reference", None, torch.float64)
    norm = float(reference.norm())
    rows = []
    for name in candidates(k, args.hutchinson, args.blocks, args.hutchplusplus, args.ema):
        if name.startswith("blocks-") and (k % int(name.split("-")[1]) or int(name.split("-")[1]) >= k):
            continue
        if (name in ("exact-f32", "hutchinson-identity") or name.startswith("ema-")) and k > args.max_exact:
            continue
        generator = torch.Generator().manual_seed(1)
        stochastic = name.startswith(("hutchinson-", "hutch++-", "blocks-")) and name != "hutchinson-identity"
        draws = args.draws if stochastic else 1
        grads = [gradient(name, generator) for _ in range(draws)]
        mean = torch.stack(grads).mean(0)
        spread = (statistics.fmean(float((g - mean).pow(2).sum()) for g in grads) if draws > 1 else 0.0) ** 0.5  # noqa: E501
        cosines = [float(torch.nn.functional.cosine_similarity(g.flatten(), reference.flatten(), dim=0))
                   for g in grads]
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            gradient(name, generator)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        rows.append({"data": data, "K": k, "B": args.batch, "candidate": name, "draws": draws,
                     "relative_bias": float((mean - reference).norm()) / norm,
                     "relative_sd": spread / norm, "cosine": statistics.fmean(cosines),
                     "seconds": statistics.median(times)})
        print(f"{data:7s} K={k:6d} {name:16s} bias {rows[-1]['relative_bias']:.3g}  sd {rows[-1]['relative_sd']:.3g}"  # noqa: E501
              f"  cos {rows[-1]['cosine']:.4f}  {rows[-1]['seconds'] * 1e3:.1f} ms", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["digits", "minilm"], choices=["digits", "minilm"])
    parser.add_argument("--widths", type=int, nargs="+", default=DEFAULT_WIDTHS)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=40, help="training steps before the codes are taken")
    parser.add_argument("--tokens", type=int, default=40_000, help="MiniLM training tokens")
    parser.add_argument("--draws", type=int, default=16, help="draws of each stochastic candidate")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations (median)")
    parser.add_argument("--hutchinson", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--hutchplusplus", type=int, nargs="+", default=[48, 192, 768],
                        help="probe counts of Hutch++ (a third sketch the range of the correlations)")
    parser.add_argument("--blocks", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--ema", type=float, nargs="*", default=[0.1, 0.5],
                        help="weights of the batch in a moving average of correlations across batches")
    parser.add_argument("--ema-batches", type=int, default=8, help="training batches in that moving average")
    parser.add_argument("--max-exact", type=int, default=4096, help="largest K for the K×K exact form")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "gradients.json"))
    args = parser.parse_args(argv)
    if any(not 0 < a <= 1 for a in args.ema):
        parser.error("--ema weights must lie in (0, 1]")
    for name in ("batch", "steps", "draws", "repeats", "tokens", "ema_batches"):
        if getattr(args, name) < 1 or (name == "batch" and args.batch < 2):
            parser.error(f"--{name.replace('_', '-')} must be a positive integer (--batch at least 2)")
    if any(k < 2 for k in args.widths):
        parser.error("--widths must be at least 2")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a GPU; this machine has none (use --device cpu)")
    rows = []
    for data in args.data:
        for k in args.widths:
            rows.extend(measure(data, k, args))
    result = {"rows": rows, "arguments": vars(args),
              "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor()}}  # noqa: E501
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
