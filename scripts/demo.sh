#!/usr/bin/env bash
# demo.sh — the main job on a fresh machine: install what is missing, build libflashplus (with the
# CUDA backend when nvcc is present, compiled for the GPU that is there), then run attention on the
# GPU if there is one, else on the CPU backend, check it against an fp64 reference and print
# timings. Extra arguments go to flashplus-demo (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_system.sh build
build=${FLASHPLUS_BUILD_DIR:-build/demo}
arch_args=()
if command -v nvidia-smi >/dev/null 2>&1; then
  cc=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
  # Native code for this GPU: no PTX JIT at start-up.
  [ -n "$cc" ] && arch_args=(-DFLASHPLUS_CUDA_ARCHITECTURES="${cc}-real")
fi
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_BUILD_TESTS=OFF "${arch_args[@]}" >/dev/null
cmake --build "$build" --target flashplus-demo -j"$(nproc)"
"$build/flashplus-demo" "$@"
