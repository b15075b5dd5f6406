#!/usr/bin/env bash
# device_full_build.sh — one device call that measures what issue 4 asks to record about the
# shipping build: wall time of the full preset (default architectures, as a wheel is built: sm_80
# and sm_90 machine code, compute_80 PTX, the sm_90a wgmma variants), the library's size and its
# cubins. Only the library target: no tests, no demo. The ninja log (per-step compile times, for
# the build-order replay in kernels/NOTES.md) is copied to $OUT.
# Usage (repository root, device): OUT=$OUT [FULL_BUILD_PYTEST="test_cuda.py"] tools/device_full_build.sh
set -uo pipefail
ROOT="$(pwd)"
OUT="${OUT:-$ROOT/build-device-full-out}"
BUILD=/tmp/flashplus-full-build
JOBS="${FLASHPLUS_JOBS:-$(nproc)}"
mkdir -p "$OUT"
rm -rf "$BUILD"
echo "== $(nproc) cores, building with -j$JOBS; $(nvcc --version | tail -1)"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFLASHPLUS_PRESET=full \
  -DFLASHPLUS_CUDA=ON >"$OUT/configure.log" 2>&1 || { tail -20 "$OUT/configure.log"; exit 1; }
grep "flashplus:" "$OUT/configure.log"
start=$(date +%s)
cmake --build "$BUILD" -j "$JOBS" --target flashplus >"$OUT/build.log" 2>&1
rc=$?
seconds=$(( $(date +%s) - start ))
echo "== full build: rc $rc in ${seconds}s"
[ $rc -eq 0 ] || { grep -E "error|FAILED" "$OUT/build.log" | head -20; exit 1; }
cp "$BUILD/.ninja_log" "$OUT/ninja_log.txt"
lib=$(readlink -f "$BUILD/libflashplus.so")
echo "== $(basename "$lib"): $(( $(stat -c %s "$lib") / 1048576 )) MiB"
# Cubins per architecture and embedded PTX (what the binary runs on).
cuobjdump --list-elf "$lib" 2>/dev/null | grep -oE "sm_[0-9]+a?" | sort | uniq -c
echo "PTX: $(cuobjdump --list-ptx "$lib" 2>/dev/null | grep -oE "sm_[0-9]+a?" | sort | uniq -c | tr '\n' ' ')"
# The ten slowest steps and where the last one started (the critical path).
awk 'NR > 1 { printf "%6.1f s  start %6.1f s  %s\n", ($2 - $1) / 1000, $1 / 1000, $4 }' "$BUILD/.ninja_log" |
  sort -rn | head -10
# FULL_BUILD_PYTEST: pytest arguments (relative to tests/python) to run against this library
# afterwards, within FULL_BUILD_PYTEST_SECONDS (default 60): the full build has every dtype and head
# dim, so GPU tests that the partial presets split between them can run together here.
if [ -n "${FULL_BUILD_PYTEST:-}" ]; then
  start=$(date +%s)
  # shellcheck disable=SC2086  # the arguments are meant to split
  (cd "$ROOT/tests/python" && FLASHPLUS_LIBRARY="$lib" PYTHONPATH="$ROOT/python" \
    timeout "${FULL_BUILD_PYTEST_SECONDS:-60}" python3 -m pytest -q -p no:cacheprovider $FULL_BUILD_PYTEST \
    >"$OUT/pytest.log" 2>&1)
  echo "== pytest $FULL_BUILD_PYTEST: rc $? in $(( $(date +%s) - start ))s"
  grep -E "FAILED|passed|failed" "$OUT/pytest.log" | tail -10
fi
