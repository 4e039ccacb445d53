"""Train every dfsae family for one epoch, save it, load it with SAELens and compare.

    pip install -e ".[saelens]"
    python examples/saelens_roundtrip.py          # prints the largest differences; exits 1 if any > 1e-5

Each model is trained on digits scaled by 2.5 (as one would standardise activations), saved with
that ``input_scale`` folded in, loaded with ``sae_lens.SAE.load_from_disk``, and both
``encode`` and ``decode`` are compared on the *raw* digits with dfsae's own model.
"""

from __future__ import annotations

import sys
import tempfile

import torch

import dfsae

TOLERANCE = 1e-5
INPUT_SCALE = 2.5


def roundtrip(folder) -> dict[str, tuple[float, float]]:
    """{family: (max |Δ code|, max |Δ reconstruction|)} between dfsae and SAELens."""
    from sae_lens import SAE

    data = dfsae.load_dataset("mnist5k")
    x_train, x = data.x_train[:1024], data.x_test[:256]
    options = {"topk": {"k": 8}, "batchtopk": {"k": 8}, "standard": {"l1_coefficient": 0.1},
               "tied": {"l1_coefficient": 0.1}}
    gaps = {}
    for family in dfsae.FAMILIES:
        model, objective = dfsae.family(family).config.make(**options.get(family, {})).build(784, 64, seed=0)
        dfsae.train(model, objective, INPUT_SCALE * x_train, epochs=1, batch_size=128, progress=False)
        with torch.no_grad():
            codes = model.encode(INPUT_SCALE * x)
            if model.has_decoder:
                c, recon = None, model.decode(codes) / INPUT_SCALE
            else:  # the decoder-free model: its implicit decoder, scaled by the least-squares c
                c = dfsae.metrics.optimal_scale(INPUT_SCALE * x_train, model.implicit_decode(model.encode(
                    INPUT_SCALE * x_train)))
                recon = c * model.implicit_decode(codes) / INPUT_SCALE
        path = f"{folder}/{family}"
        dfsae.checkpoint.save(model, path, input_scale=INPUT_SCALE, decoder_scale=c, model_name="mnist")
        sae = SAE.load_from_disk(path, device="cpu")
        with torch.no_grad():
            sl_codes = sae.encode(x)
            gaps[family] = (float((sl_codes - codes).abs().max()),
                            float((sae.decode(sl_codes) - recon).abs().max()))
    return gaps


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        gaps = roundtrip(folder)
    for family, (code, recon) in gaps.items():
        print(f"{family:>12}: max |Δ encode| {code:.2e}   max |Δ decode| {recon:.2e}")
    ok = all(max(g) <= TOLERANCE for g in gaps.values())
    print("all within", TOLERANCE if ok else f"NOT all within {TOLERANCE}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
