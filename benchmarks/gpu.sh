#!/usr/bin/env bash
# Appendix A1's two benchmarks on a machine with a CUDA GPU, into files beside the CPU ones.
#
#   bash benchmarks/gpu.sh            # then rerun A1 with -p benchmark_file ../benchmarks/decoder_tax_cuda.json
#                                     #                  -p gradient_file ../benchmarks/gradients_cuda.json
#
# Untested: the machine this book was made on has no GPU, so these runs have never been made.
# Each benchmark checks that CUDA is available and stops with a clear error if not.
set -euo pipefail
cd "$(dirname "$0")"
python decoder_tax.py --device cuda --out decoder_tax_cuda.json
python decorrelation_gradients.py --device cuda --out gradients_cuda.json
