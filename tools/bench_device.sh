#!/usr/bin/env bash
# bench_device.sh — one call on a GPU machine: build libflashplus (CUDA, no tests) for the GPU
# that is there, then run the project benchmark (python -m flashplus bench) against torch SDPA.
# Usage (repository root): tools/bench_device.sh [preset=full; "bench" builds only what the sweep uses] [extra bench args...]
# Results (JSON, PNG, RESULTS_section.md) go to $OUT/bench, or bench/results/<date>.
set -uo pipefail
PRESET="${1:-full}"
shift || true
ROOT="$(pwd)"
BUILD="$ROOT/build-bench-device"
LOGS="${OUT:-$BUILD/logs}"
mkdir -p "$LOGS"
export PYTHONUNBUFFERED=1
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
echo "== $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) (sm_$arch); $(date -u +%FT%TZ)"
start=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_PRESET="$PRESET" -DFLASHPLUS_CUDA=ON \
  -DFLASHPLUS_CUDA_ARCHITECTURES="${arch}-real" -DFLASHPLUS_BUILD_TESTS=OFF -DFLASHPLUS_BUILD_DEMO=OFF >"$LOGS/configure.log" 2>&1 &&
  cmake --build "$BUILD" -j "$(nproc)" --target flashplus >"$LOGS/build.log" 2>&1 ||
  { tail -40 "$LOGS/configure.log" "$LOGS/build.log"; echo "build FAILED"; exit 1; }
echo "== build ${PRESET} for sm_${arch}: $(( $(date +%s) - start ))s, $(du -h "$BUILD/libflashplus.so" | cut -f1)"
export FLASHPLUS_LIBRARY="$BUILD/libflashplus.so" PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"
out_args=()
[ -n "${OUT:-}" ] && out_args=(--out "$OUT/bench")
python3 -m flashplus bench "${out_args[@]}" "$@" 2>"$LOGS/bench_progress.log"
