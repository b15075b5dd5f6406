#!/usr/bin/env bash
# device_bench_check.sh — one device call for a performance change: build the preset with its GPU
# tests (tools/device_check.sh, no timing harness), run the GPU and Python GPU tests, then the peer
# benchmark (python -m flashplus bench) on that same build, then compute-sanitizer on the small
# cases last (so a slow sanitizer cannot cost the benchmark). FLASHPLUS_DECODE_DIAG=1 adds the decode
# diagnosis tools after the benchmark. Logs under $OUT/check, benchmark
# output under $OUT/bench; the short tables are printed last.
# Usage (repository root): tools/device_bench_check.sh [preset=bench] [extra bench args...]
set -uo pipefail
PRESET="${1:-bench}"
shift || true
ROOT="$(pwd)"
OUT="${OUT:-$ROOT/build-device-$PRESET/out}"
mkdir -p "$OUT/check"
FLASHPLUS_SKIP_TIMING=1 FLASHPLUS_SANITIZER_FILTER=none OUT="$OUT/check" \
  bash tools/device_check.sh "$PRESET" -DFLASHPLUS_CUDA_ARCHITECTURES=90-real >"$OUT/check/check.log" 2>&1
check_rc=$?
tail -8 "$OUT/check/check.log"
rm -f "$OUT/check/"{gtest.log,configure.log,tests.xml}
[ $check_rc -eq 0 ] || { echo "device_check FAILED (rc $check_rc)"; tail -60 "$OUT/check/check.log"; exit 1; }

BUILD="$ROOT/build-device-$PRESET"
echo "== benchmark ($(date -u +%FT%TZ))"
start=$(date +%s)
FLASHPLUS_LIBRARY="$BUILD/libflashplus.so" PYTHONPATH="$ROOT/python" PYTHONUNBUFFERED=1 \
  python3 -m flashplus bench --out "$OUT/bench" "$@" 2>"$OUT/check/bench_progress.log" | tail -12
echo "== benchmark: $(( $(date +%s) - start ))s"

# FLASHPLUS_DECODE_DIAG=1: where the decode's time goes, on the same build (decode time against
# num_splits next to SDPA, then per-kernel times); about two minutes. Output in $OUT/decode_*.txt.
# FLASHPLUS_DECODE_DIAG=splits runs decode_splits.py only.
if [ "${FLASHPLUS_DECODE_DIAG:-0}" != 0 ]; then
  echo "== decode diagnosis"
  export FLASHPLUS_LIBRARY="$BUILD/libflashplus.so" PYTHONPATH="$ROOT/python" PYTHONUNBUFFERED=1
  CASES="${CASES:-1,1024 1,8192 4,8192 64,8192}" timeout 120 python3 tools/decode_splits.py >"$OUT/decode_splits.txt" 2>&1
  cat "$OUT/decode_splits.txt"
  if [ "$FLASHPLUS_DECODE_DIAG" = 1 ]; then
    timeout 60 python3 tools/kernel_times.py >"$OUT/decode_kernel_times.txt" 2>&1
    head -45 "$OUT/decode_kernel_times.txt"
  fi
fi

TESTS="$BUILD/kernels/tests_cuda/flashplus_cuda_tests"
# FLASHPLUS_SANITIZER_FILTER: their gtest filter (default *Small*); "none" skips them (a call that has
# other work to fit in).
[ "${FLASHPLUS_SANITIZER_FILTER:-}" = none ] || for tool in memcheck racecheck; do
  start=$(date +%s)
  timeout 200 compute-sanitizer --tool "$tool" --error-exitcode 99 "$TESTS" --gtest_filter="${FLASHPLUS_SANITIZER_FILTER:-*Small*}" \
    >"$OUT/check/$tool.log" 2>&1
  echo "sanitizer $tool: rc $? in $(( $(date +%s) - start ))s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/check/$tool.log" | head -1)" \
    "$(grep -E '^\[  (PASSED|FAILED) ' "$OUT/check/$tool.log" | tr '\n' ' ')"
done
