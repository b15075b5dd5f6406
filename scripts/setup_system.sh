#!/usr/bin/env bash
# setup_system.sh [build|test] — install the system tools the build (and, with `test`, the tests)
# need, if they are missing. Debian/Ubuntu packages through apt-get (as root, or with sudo), Python
# packages through pip. Idempotent and quick when everything is there.
set -euo pipefail
mode="${1:-build}"
root="$(cd "$(dirname "$0")/.." && pwd)"

apt_install() {
  local sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "setup_system: installing $*"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$@"
}

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
if [ "$mode" = "test" ]; then
  command -v clang++ >/dev/null 2>&1 || need+=(clang)
  [ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
fi
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

# libFuzzer ships in clang's runtime; check that clang can link a fuzzer.
if [ "$mode" = "test" ] && ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}' \
    | clang++ -x c++ -fsanitize=fuzzer - -o /tmp/flashplus_fuzz_probe 2>/dev/null; then
  ver=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  apt_install "libclang-rt-${ver}-dev" || apt_install "libfuzzer-${ver}-dev"
fi
rm -f /tmp/flashplus_fuzz_probe

# CuTe/CUTLASS headers for the CUDA kernels come from the pinned PyPI package (nothing is vendored),
# or from a copy of its include folder in .cutlass/include. Only needed when nvcc is there: without
# it the CPU backend alone is built.
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  if ! python3 -c "import cutlass_library" >/dev/null 2>&1 && [ ! -f "$root/.cutlass/include/cute/tensor.hpp" ]; then
    echo "setup_system: installing nvidia-cutlass==4.2.0.0 (CuTe headers)"
    python3 -m pip install -q "nvidia-cutlass==4.2.0.0"
  fi
fi
