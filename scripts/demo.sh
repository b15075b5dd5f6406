#!/usr/bin/env bash
# demo.sh — the main job on a fresh machine: install what is missing, build libflashplus (with the
# CUDA backend when nvcc is present), then run attention on the GPU if there is one, else on the CPU
# backend, check it against an fp64 reference and print timings. Extra arguments go to flashplus-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_system.sh
build=${FLASHPLUS_BUILD_DIR:-build/demo}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target flashplus-demo -j"$(nproc)"
"$build/flashplus-demo" "$@"
