"""Hand-picked mutation testing of the library's mathematics against the fast unit tests.

    python tools/mutants.py                 # every mutant; prints killed / survived and the rate
    python tools/mutants.py --only lse var  # mutants whose name contains any of these words

Each mutant is one small textual change to one file of ``dfsae/`` (a flipped sign, a dropped term,
an off-by-one, a swapped weight). For each, a copy of the repository gets the change and the fast
unit tests run on that copy (``pytest -x``: the first failure kills the mutant). A mutant that no
test kills is a change to the mathematics the tests cannot see. The list is in ``MUTANTS``; a
mutant whose text is not found any more is reported as stale, not counted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_TESTS = ["test_objective.py", "test_decorrelation.py", "test_fused.py", "test_metrics.py", "test_model.py",
              "test_readings.py", "test_families.py", "test_training.py", "test_checkpoint.py",
              "test_bad_input.py", "test_nothing_lost.py", "test_experiments.py", "test_frontier.py",
              "test_convergence.py", "test_browser.py", "test_regime.py", "test_stored.py"]

L, F, M, T = "dfsae/losses.py", "dfsae/families", "dfsae/metrics.py", "dfsae/training.py"
J, R = "dfsae/paper/judgement.py", "dfsae/paper/record.py"
DF, ST, TK, BT, JR, TI, BA = (f"{F}/decoder_free.py", f"{F}/standard.py", f"{F}/topk.py", f"{F}/batchtopk.py",
                              f"{F}/jumprelu.py", f"{F}/tied.py", f"{F}/base.py")

MUTANTS = [  # (name, file, original text, mutated text)
    ("lse sign", L, "per_input = -torch.logsumexp(-energies, dim=-1)", "per_input = torch.logsumexp(-energies, dim=-1)"),
    ("lse energies sign", L, "per_input = -torch.logsumexp(-energies, dim=-1)",
     "per_input = -torch.logsumexp(energies, dim=-1)"),
    ("lse sum for mean", L, "return per_input.mean() if reduction == \"mean\" else per_input.sum()",
     "return per_input.sum() if reduction == \"mean\" else per_input.sum()"),
    ("batch variance sum", L, "    return (centred * centred).mean(dim=0)\n", "    return (centred * centred).sum(dim=0)\n"),
    ("var loss sign", L, "    return -torch.log(var + eps).sum()", "    return torch.log(var + eps).sum()"),
    ("var loss no eps", L, "    return -torch.log(var + eps).sum()", "    return -torch.log(var + 1e-30).sum()"),
    ("corr unbiased", L, "cov = centred.T @ centred / codes.shape[0]", "cov = centred.T @ centred / (codes.shape[0] - 1)"),
    ("exact tc keeps diagonal", L, "return (corr * corr).sum() - (torch.diagonal(corr) ** 2).sum()",
     "return (corr * corr).sum()"),
    ("gram tc keeps diagonal", L, "return (gram * gram).sum() - (diag * diag).sum()", "return (gram * gram).sum()"),
    ("auto picks gram at K = B", L, "if width <= batch:", "if width < batch:"),
    ("probe kernel diagonal", L, "off = s[:, None] * z - (var * s * s)[:, None] * probes",
     "off = s[:, None] * z - (var * s)[:, None] * probes"),
    ("probe kernel uncentred", L, "    y = codes @ q - mean @ q\n", "    y = codes @ q\n"),
    ("one-pass variance", L, "var = (squares / n - mean * mean).clamp_min_(0)", "var = (squares / n).clamp_min_(0)"),
    ("fused var gradient sign", L, "g_v = -g_var * s2", "g_v = g_var * s2"),
    ("fused s gradient", L, "- 0.5 * g_s * s2 * s", "- g_s * s2 * s"),
    ("fused rank-one correction", L, "right = torch.cat([q, h, (mean * w)[:, None]], 1)",
     "right = torch.cat([q, h, (0 * mean * w)[:, None]], 1)"),
    ("recon mean over features", L, "return ((x - x_hat) ** 2).sum(dim=-1).mean()", "return ((x - x_hat) ** 2).mean()"),
    ("l1 ignores norms", L, "        a = a * decoder_norms", "        a = a"),
    ("auxk live latents", L, "masked_fill(~dead, float(\"-inf\"))", "masked_fill(dead, float(\"-inf\"))"),
    ("auxk k off by one", L, ".topk(min(k_aux, n_dead), dim=-1)", ".topk(max(1, min(k_aux, n_dead) - 1), dim=-1)"),
    ("wr drops identity", L, "return ((gram - eye) ** 2).sum()", "return (gram ** 2).sum()"),
    ("probes not signs", L, "return (2 * probes - 1).to(like.device)", "return probes.to(like.device)"),
    ("responsibility sign", DF, "return torch.softmax(-energies, dim=-1)", "return torch.softmax(energies, dim=-1)"),
    ("similarity min", DF, "return energies.max(dim=-1, keepdim=True).values - energies",
     "return energies.min(dim=-1, keepdim=True).values - energies"),
    ("implicit decoder", DF, "return codes @ self.W\n", "return codes @ self.W.abs()\n"),
    ("unit rows multiply", DF, "self.W.div_(self.W.norm(dim=1, keepdim=True).clamp_min(1e-12))",
     "self.W.mul_(self.W.norm(dim=1, keepdim=True).clamp_min(1e-12))"),
    ("df weights swapped", DF, "\"var\": self.lambda_var, \"tc\": self.lambda_tc,",
     "\"var\": self.lambda_tc, \"tc\": self.lambda_var,"),
    ("batch statistics and", DF, "return self.lambda_var > 0 or self.lambda_tc > 0",
     "return self.lambda_var > 0 and self.lambda_tc > 0"),
    ("standard no relu", ST, "        return F.relu(z)\n", "        return z\n"),
    ("l1 weighting inverted", ST, "if self.l1_weighting == \"decoder_norm\" else None",
     "if self.l1_weighting != \"decoder_norm\" else None"),
    ("b_dec added", BA, "return self.encoder(x - self.decoder.bias)", "return self.encoder(x + self.decoder.bias)"),
    ("atoms not renormalised", BA, "self.decoder.weight.div_(self.decoder_norms().clamp_min(1e-12))", "pass"),
    ("topk no relu", TK, "scatter(-1, top.indices, F.relu(top.values))", "scatter(-1, top.indices, top.values)"),
    ("topk keeps k-1", TK, "top = torch.topk(z, self.k, dim=-1)", "top = torch.topk(z, max(1, self.k - 1), dim=-1)"),
    ("auxk residual sign", TK, "auxk_loss((x - x_hat).detach()", "auxk_loss((x_hat - x).detach()"),
    ("dead count never reset", BA, "        self.since_fired[fired] = 0\n", "        pass\n"),
    ("dead window strict", BA, "return None if self.since_fired is None else self.since_fired >= self.window",
     "return None if self.since_fired is None else self.since_fired > self.window"),
    ("batchtopk keeps k", BT, "top = flat.topk(min(self.k * z.shape[0], flat.numel()))", "top = flat.topk(min(self.k, flat.numel()))"),
    ("batchtopk momentum swapped", BT, "(1 - momentum) * self.threshold + momentum * low",
     "momentum * self.threshold + (1 - momentum) * low"),
    ("batchtopk ignores threshold", BT, "return F.relu(z) * (z > self.threshold)", "return F.relu(z)"),
    ("jumprelu theta factor", JR, "grad_threshold = -(threshold / eps)", "grad_threshold = -(1 / eps)"),
    ("step estimator scale", JR, "(-(1 / eps) * _window(z, threshold, eps) * grad)", "(-(2 / eps) * _window(z, threshold, eps) * grad)"),
    ("kernel width", JR, "return ((z - threshold).abs() < bandwidth / 2).to(z.dtype)",
     "return ((z - threshold).abs() < bandwidth).to(z.dtype)"),
    ("jumprelu grad to z everywhere", JR, "grad_z = grad * (z > threshold)", "grad_z = grad"),
    ("l0 term not trained", JR, "return recon + self.l0_coefficient * l0, ", "return recon + self.l0_coefficient * l0.detach(), "),
    ("threshold may go negative", JR, "        self.threshold.clamp_(min=0)\n", "        pass\n"),
    ("tied bias sign", TI, "return self.decoder_scale * (codes @ self.W) + self.b_dec",
     "return self.decoder_scale * (codes @ self.W) - self.b_dec"),
    ("tied no centring", TI, "return self.encoder(x - self.b_dec)", "return self.encoder(x)"),
    ("dead all", M, "return ~active(codes).any(dim=0)", "return ~active(codes).all(dim=0)"),
    ("l0 over units", M, "return float(active(codes).sum(dim=1).double().mean())",
     "return float(active(codes).sum(dim=1).double().mean() + 0.5)"),
    ("fvu global mean", M, "total = ((x - x.mean(dim=0)) ** 2).sum()", "total = ((x - x.mean()) ** 2).sum()"),
    ("optimal scale", M, "return float((x * x_hat).sum()) / denom if denom > 0 else 0.0",
     "return float((x * x_hat).sum()) / (denom + 1) if denom > 0 else 0.0"),
    ("redundancy keeps diagonal", M, "    off = corr - torch.diag(torch.diagonal(corr))\n", "    off = corr\n"),
    ("usage sign", M, "r = torch.softmax(-energies.double(), dim=-1)", "r = torch.softmax(energies.double(), dim=-1)"),
    ("effective components", M, "\"effective_components\": float(torch.exp(entropy).mean()),",
     "\"effective_components\": float(entropy.mean()),"),
    ("ridge too strong", M, "gram = a.T @ a + ridge * len(a) * torch.eye", "gram = a.T @ a + 1e3 * ridge * len(a) * torch.eye"),
    ("best matches by r only", M, "rows = [np.lexsort((-r[:, j], e[:, j]))[:n] for j in units]",
     "rows = [np.lexsort((r[:, j], e[:, j]))[:n] for j in units]"),
    ("correlation rows only", M, "return cov / (std[:, None] * std[None, :])", "return cov / (std[:, None] * std[:, None])"),
    ("similarity l0 of energies", M, "\"l0_similarity\": l0(s_test),", "\"l0_similarity\": l0(e_test),"),
    ("low variance strict", M, "return var <= rel_threshold * var.max()", "return var < rel_threshold * var.max()"),
    ("no after_step", T, "    model.after_step()\n    terms[\"total\"] = loss", "    terms[\"total\"] = loss"),
    ("drop_last inverted", T, "n_batches = n // batch_size if drop_last else -(-n // batch_size)",
     "n_batches = -(-n // batch_size) if drop_last else n // batch_size"),
    ("browser ties by lowest responsibility", "dfsae/browser.py", "np.lexsort((np.arange(len(a)), -r[:, j], a))",
     "np.lexsort((np.arange(len(a)), r[:, j], a))"),
    ("browser script end unescaped", "dfsae/browser.py", '.replace("</", "<\\\\/")', ""),
    ("splice without the input scale", "dfsae/paper/regime.py", "return (read(a).float()) / scale",
     "return read(a).float()"),
    ("splice implicit decoder unscaled", "dfsae/paper/regime.py", "return c * (a @ W)", "return a @ W"),
    ("dense at any rate", "dfsae/paper/regime.py", '"dense": int((rates > 0.1).sum())',
     '"dense": int((rates >= 0.0).sum())'),
    ("browser random from all rows", "dfsae/browser.py", "rows = np.flatnonzero(active)",
     "rows = np.arange(len(a))"),
    ("snapshot one step late", T, "        if history.steps == run.snapshot_step:",
     "        if history.steps == run.snapshot_step + 1:"),
    ("snapshot shares storage", T, "history.snapshot = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}",
     "history.snapshot = {k: v.detach().cpu() for k, v in model.state_dict().items()}"),
    ("convergence strict", J, "        return abs(self.change) <= self.sd", "        return abs(self.change) < self.sd"),
    ("convergence unsigned sum", J, "float((final - late).mean())", "float(abs(final - late).mean() * 0 + (final - late).mean() * 0.5)"),
    ("sd bound of the mean", R, "                    sd_tol = Tolerance.sd_spread(sd, n, k, floor, at=mean)",
     "                    sd_tol = tol"),
    ("fresh seed without sqrt 2", "dfsae/paper/stored.py", "band = k * sd * math.sqrt(2.0)", "band = k * sd"),
    ("fresh seed sum of floor and band", "dfsae/paper/stored.py", "max(band, floor.width(at))",
     "band + floor.width(at)"),
    ("fresh seed population sd", "dfsae/paper/stored.py", "/ (len(values) - 1))", "/ len(values))"),
    ("has ignores late", "dfsae/paper/stored.py", "return found is not None and (not late or has_late(found))",
     "return found is not None"),
]


def run(mutant, workdir: Path, tests: list[str]) -> str:
    name, file, old, new = mutant
    source = (ROOT / file).read_text()
    if source.count(old) != 1:
        return "stale"
    target = workdir / file
    target.write_text(source.replace(old, new))
    try:
        env = {**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 *[str(workdir / "tests" / t) for t in tests]], cwd=workdir, env=env,
                                capture_output=True, text=True, timeout=900)
        return "survived" if result.returncode == 0 else "killed"
    finally:
        target.write_text(source)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", help="run the mutants whose name contains any of these words")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(w in m[0] for w in args.only)]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        shutil.copytree(ROOT / "dfsae", workdir / "dfsae")
        shutil.copytree(ROOT / "tests", workdir / "tests")
        outcome = {}
        for i, mutant in enumerate(chosen, 1):
            start = time.perf_counter()
            outcome[mutant[0]] = run(mutant, workdir, FAST_TESTS)
            print(f"[{i:2}/{len(chosen)}] {outcome[mutant[0]]:>8}  {mutant[0]}  ({mutant[1]}, "
                  f"{time.perf_counter() - start:.0f} s)", flush=True)
    counted = [v for v in outcome.values() if v != "stale"]
    survived = sorted(k for k, v in outcome.items() if v == "survived")
    print(f"\n{len(counted)} mutants, {counted.count('killed')} killed, {len(survived)} survived "
          f"({len(survived) / max(1, len(counted)):.0%}); stale: {list(outcome.values()).count('stale')}")
    for name in survived:
        print("  survived:", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
