#!/usr/bin/env bash
# device_profile.sh — one device call for performance work: build the CUDA library (preset and
# extra cmake args as tools/device_check.sh), print the C++ timing harnesses (CudaFwdTiming,
# CudaBwdTiming), per-kernel times (tools/kernel_times.py), then Nsight Compute on the shapes of
# NCU_SHAPES, or on the decode calls of NCU_DECODE="b,ctx ..." (tools/ncu_profile.sh,
# tools/ncu_workload.py). No correctness tests: run tools/device_check.sh for those.
# Decode profile: NCU_DECODE="1,1024" NCU_KERNELS='regex:fwd_kernel_sm80|split_combine_kernel'
#   tools/device_profile.sh dev -DFLASHPLUS_CUDA_ARCHITECTURES=90-real
# Usage (repository root, device): tools/device_profile.sh dev -DFLASHPLUS_CUDA_ARCHITECTURES=90-real
set -uo pipefail
PRESET="${1:-dev}"
shift || true
source "$(dirname "$0")/device_build_env.sh"
start=$(date +%s)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_PRESET="$PRESET" -DFLASHPLUS_CUDA=ON \
  -DFLASHPLUS_PTXAS_VERBOSE=ON "${GTEST_ARGS[@]}" "$@" >"$LOGS/configure.log" 2>&1 || { tail -30 "$LOGS/configure.log"; exit 1; }
cmake --build "$BUILD" -j "$JOBS" --target flashplus flashplus_cuda_tests >"$LOGS/build.log" 2>&1 ||
  { grep -B2 -A12 FAILED "$LOGS/build.log" | head -60; exit 1; }
echo "== build $(( $(date +%s) - start ))s"
grep -E "Used [0-9]+ registers|spill" "$LOGS/build.log" | grep -v "0 bytes spill" | head -20
export FLASHPLUS_LIBRARY="$BUILD/libflashplus.so"
echo "== C++ timing harnesses"
"$BUILD/kernels/tests_cuda/flashplus_cuda_tests" --gtest_also_run_disabled_tests --gtest_filter='*Timing*' 2>&1 | grep timing
echo "== per-kernel times"
PYTHONPATH=python python3 tools/kernel_times.py 2>&1 | grep -v "^\s*$"
if [ -n "${NCU_SHAPES:-}${NCU_DECODE:-}" ]; then
  echo "== Nsight Compute (${NCU_SHAPES:-decode $NCU_DECODE})"
  OUT="$LOGS" tools/ncu_profile.sh
fi
