#!/usr/bin/env bash
# ring_device_check.sh — one call on a multi-GPU machine: build libflashplus (CUDA, no tests),
# run the NCCL ring-attention test suite on every GPU, then the ring benchmark under torchrun.
#
# Usage (repository root): tools/ring_device_check.sh [preset=dev] [bench modes=fwd,fwd_bwd]
# Needs CuTe headers from python3's nvidia-cutlass or the carried .cutlass/include. Logs and the
# benchmark JSON go to $OUT (the device tool's output folder) or build-ring-device/logs.
set -uo pipefail
PRESET="${1:-dev}"
MODES="${2:-fwd,fwd_bwd}"
ROOT="$(pwd)"
BUILD="$ROOT/build-ring-device"
LOGS="${OUT:-$BUILD/logs}"
mkdir -p "$LOGS"
# NVLink multicast stays off on shared hosts (see the device notes).
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
gpus=$(nvidia-smi -L | wc -l)
echo "== $gpus GPUs: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1); $(date -u +%FT%TZ); commit $(git rev-parse --short HEAD 2>/dev/null)"

start=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_PRESET="$PRESET" -DFLASHPLUS_CUDA=ON \
  -DFLASHPLUS_CUDA_ARCHITECTURES=90-real -DFLASHPLUS_BUILD_TESTS=OFF -DFLASHPLUS_BUILD_DEMO=OFF >"$LOGS/configure.log" 2>&1 &&
  cmake --build "$BUILD" -j "$(nproc)" --target flashplus >"$LOGS/build.log" 2>&1 ||
  { tail -40 "$LOGS/configure.log" "$LOGS/build.log"; echo "build FAILED"; exit 1; }
echo "== build ${PRESET}: $(( $(date +%s) - start ))s"
export FLASHPLUS_LIBRARY="$BUILD/libflashplus.so" PYTHONPATH="$ROOT/python${PYTHONPATH:+:$PYTHONPATH}"

echo "== ring tests (NCCL, $gpus ranks)"
# FLASHPLUS_RING_TESTS_FILTER: a pytest -k expression to run a subset when device time is short.
python3 -m pytest -q -p no:cacheprovider ${FLASHPLUS_RING_TESTS_FILTER:+-k "$FLASHPLUS_RING_TESTS_FILTER"} \
  "$ROOT/tests/python/ring/test_ring_gpu.py" 2>&1 | tee "$LOGS/ring_tests.log" | tail -25
tests_rc=${PIPESTATUS[0]}

if [ "${FLASHPLUS_RING_SKIP_BENCH:-0}" = "1" ]; then
  exit "$tests_rc"
fi
echo "== ring benchmark ($gpus GPUs)"
torchrun --standalone --nproc_per_node "$gpus" -m flashplus.bench_ring --modes "$MODES" \
  --json "$LOGS/ring_bench_${gpus}gpu.json" 2>&1 | tee "$LOGS/ring_bench.log" | tail -30
exit "$tests_rc"
