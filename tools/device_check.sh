#!/usr/bin/env bash
# device_check.sh — one call on a GPU machine: configure + build the CUDA backend and its tests,
# run the GPU test suite, run compute-sanitizer (memcheck, racecheck) on the small cases, and print
# a short table last.
#
# Usage (repository root):  tools/device_check.sh [dev|full] [extra cmake args...]
# Expects: nvcc, cmake, ninja. CuTe/CUTLASS headers from python3's nvidia-cutlass or from
# .cutlass/include (copy of the pip package's source/include, carried to the machine); GoogleTest
# from the system or built from .deps/googletest (a copy of /usr/src/googletest, carried).
# Full logs go to $OUT (the device tool's output folder) or build-device/logs.
# FLASHPLUS_SANITIZER_FILTER: the gtest filter compute-sanitizer runs (default *Small*; "none": skip).
# FLASHPLUS_SKIP_TIMING=1 skips the timing harnesses (when a benchmark follows in the same call).
set -uo pipefail

PRESET="${1:-dev}"
shift || true
source "$(dirname "$0")/device_build_env.sh"
declare -a ROWS

row() { ROWS+=("$(printf '%-28s %s' "$1" "$2")"); }

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
nvcc --version | tail -2
date -u +"%Y-%m-%dT%H:%M:%SZ"
git rev-parse --short HEAD 2>/dev/null || true

echo "== configure (preset $PRESET)"
if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_PRESET="$PRESET" \
    -DFLASHPLUS_CUDA=ON -DFLASHPLUS_PTXAS_VERBOSE=ON "${GTEST_ARGS[@]}" "$@" >"$LOGS/configure.log" 2>&1; then
  tail -30 "$LOGS/configure.log"
  echo "configure FAILED"
  exit 1
fi
grep "flashplus:" "$LOGS/configure.log"

echo "== build"
start=$(date +%s)
cmake --build "$BUILD" -j "$JOBS" --target flashplus flashplus_cuda_tests >"$LOGS/build.log" 2>&1
build_rc=$?
build_s=$(( $(date +%s) - start ))
grep -E "error|Used [0-9]+ registers|spill" "$LOGS/build.log" | grep -v "0 bytes spill" | head -20
if [ $build_rc -ne 0 ]; then
  grep -B2 -A12 "FAILED" "$LOGS/build.log" | head -60
  echo "build FAILED after ${build_s}s"
  exit 1
fi
lib="$(readlink -f "$BUILD/libflashplus.so")"
lib_size=$(stat -c %s "$lib")
row "build ($PRESET, -j$JOBS)" "${build_s}s"
row "libflashplus.so" "$((lib_size / 1024)) KiB"
row "linked libraries" "$(ldd "$lib" | awk '{print $1}' | grep -v -e linux-vdso -e ld-linux | tr '\n' ' ')"
TESTS="$BUILD/kernels/tests_cuda/flashplus_cuda_tests"

echo "== tests"
start=$(date +%s)
"$TESTS" --gtest_output="xml:$LOGS/tests.xml" >"$LOGS/tests.log" 2>&1
tests_rc=$?
tests_s=$(( $(date +%s) - start ))
grep -E "^\[  (FAILED|PASSED|SKIPPED) |Failure|Expected|Which is|error|gpu error|differs|must" "$LOGS/tests.log" | head -80
summary=$(grep -E "^\[  PASSED  \]|^\[  FAILED  \] [0-9]+ test" "$LOGS/tests.log" | tr '\n' ' ')
skipped=$(grep -cE "^\[  SKIPPED \] .* \([0-9]+ ms\)" "$LOGS/tests.log")
row "gpu tests (rc $tests_rc, ${tests_s}s)" "$summary skipped: $skipped"

echo "== Python tests on the GPU (pytest -k cuda; the flash_attn / flashplus layers over this build)"
start=$(date +%s)
(cd "$ROOT/tests/python" && FLASHPLUS_LIBRARY="$lib" PYTHONPATH="$ROOT/python" timeout 300 \
  python3 -m pytest -q -p no:cacheprovider -k cuda --ignore=ring . >"$LOGS/pytest_gpu.log" 2>&1)
pytest_rc=$?
grep -E "FAILED|Error|passed|failed" "$LOGS/pytest_gpu.log" | tail -15
row "python gpu tests (rc $pytest_rc, $(( $(date +%s) - start ))s)" "$(tail -1 "$LOGS/pytest_gpu.log")"

if [ "${FLASHPLUS_SKIP_TIMING:-0}" != "1" ]; then
  echo "== forward timing (16k tokens, hidden 2048; median of 10)"
  "$TESTS" --gtest_also_run_disabled_tests --gtest_filter='*Timing*' >"$LOGS/timing.log" 2>&1
  grep "timing" "$LOGS/timing.log"
fi

SMALL="${FLASHPLUS_SANITIZER_FILTER:-*Small*}"  # "none" skips the sanitizers (a quick first check)
[ "$SMALL" = "none" ] || for tool in memcheck racecheck; do
  echo "== compute-sanitizer $tool ($SMALL)"
  start=$(date +%s)
  compute-sanitizer --tool "$tool" --error-exitcode 99 "$TESTS" --gtest_filter="$SMALL" >"$LOGS/$tool.log" 2>&1
  rc=$?
  s=$(( $(date +%s) - start ))
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Invalid|Hazard|^\[  (FAILED|PASSED) " "$LOGS/$tool.log" | head -12
  row "sanitizer $tool (${s}s)" "rc $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/$tool.log" | head -1)"
done

echo
echo "== summary ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), preset $PRESET)"
for r in "${ROWS[@]}"; do echo "$r"; done
