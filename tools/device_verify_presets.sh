#!/usr/bin/env bash
# device_verify_presets.sh — one device call that runs the GPU test suites of several variant
# presets in turn (tools/device_check.sh each: build, C++ GPU tests, Python GPU tests; no timing
# harnesses; compute-sanitizer only where VERIFY_SANITIZER_FILTER names a gtest filter), so that
# every variant of the full preset is tested on a GPU without the full build, which alone takes
# most of a call. Default: "rest fp16" (with a "bench" run, every full-preset variant; the two
# build in ~120 s each on 16 cores).
# Usage (repository root, device): OUT=$OUT tools/device_verify_presets.sh [preset ...]
# Logs under $OUT/<preset>/; the summaries are printed last.
set -uo pipefail
ROOT="$(pwd)"
OUT="${OUT:-$ROOT/build-device-verify}"
PRESETS=("$@")
[ ${#PRESETS[@]} -gt 0 ] || PRESETS=(rest fp16)
status=0
for preset in "${PRESETS[@]}"; do
  mkdir -p "$OUT/$preset"
  start=$(date +%s)
  FLASHPLUS_SKIP_TIMING=1 FLASHPLUS_SANITIZER_FILTER="${VERIFY_SANITIZER_FILTER:-none}" OUT="$OUT/$preset" \
    bash tools/device_check.sh "$preset" -DFLASHPLUS_CUDA_ARCHITECTURES=90-real >"$OUT/$preset/check.log" 2>&1
  rc=$?
  # The device tool returns a limited number of files: keep the logs that say what failed.
  rm -f "$OUT/$preset/"{configure.log,gtest.log,tests.xml}
  echo "== preset $preset: rc $rc in $(( $(date +%s) - start ))s"
  grep -E "^\[  FAILED  \]|FAILED |Failure|Expected|Which is|AssertionError" "$OUT/$preset/check.log" | head -30
  # device_check.sh exits 0 once it has built; its summary rows carry the tests' exit codes.
  if [ $rc -ne 0 ] || grep -qE "tests \(rc [1-9]|sanitizer .*rc [1-9]" "$OUT/$preset/check.log"; then status=1; fi
done
for preset in "${PRESETS[@]}"; do
  echo
  sed -n '/^== summary/,$p' "$OUT/$preset/check.log"
done
exit $status
