#!/usr/bin/env bash
# Builds the libFuzzer target in its own clang build directory and fuzzes the C ABI.
#
#   tests/fuzz/run_fuzz.sh [seconds=60] [build_dir=<repo>/build-fuzz]
#
# Exits non-zero when the fuzzer finds a crash (the input is kept under <build_dir>/fuzz_artifacts).
# FLASHPLUS_FUZZ_JOBS sets the build parallelism (default 2).
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${2:-$root/build-fuzz}"

mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFLASHPLUS_CUDA=OFF -DFLASHPLUS_BUILD_FUZZ=ON \
  -DFLASHPLUS_BUILD_TESTS=OFF -DFLASHPLUS_BUILD_DEMO=OFF > "$build/configure.log"
cmake --build "$build" --target fuzz_validate -j "${FLASHPLUS_FUZZ_JOBS:-2}"

# Seed corpus: one input per entry point. Zero bytes decode to "the usual choice" everywhere,
# so these are valid calls the fuzzer mutates from; 0x01-filled ones vary the shapes.
corpus="$build/fuzz_corpus"
artifacts="$build/fuzz_artifacts"
mkdir -p "$corpus" "$artifacts"
for entry in 0 1 2 3; do
  for fill in 00 01; do
    seed="$corpus/seed_${entry}_${fill}"
    [ -e "$seed" ] && continue
    { printf "\\x0${entry}"; head -c 400 /dev/zero | tr '\0' "\\${fill#0}"; } > "$seed"
  done
done

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# The fuzzer's progress lines go to a log; a failure prints the log's end (the crash report).
log="$build/fuzz.log"
status=0
"$build/tests/fuzz/fuzz_validate" \
  -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" "$corpus" >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -60 "$log"
  echo "fuzz_validate FAILED (exit $status); inputs in $artifacts, full log $log"
  exit "$status"
fi
grep -E "^Done|stat::number_of_executed_units|stat::new_units_added" "$log"
echo "fuzz_validate: no crash in ${seconds}s (full log $log)"
