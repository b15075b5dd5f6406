#!/usr/bin/env bash
# setup_system.sh — install the system tools the build and tests need, if they are missing.
# Debian/Ubuntu packages through apt-get (as root, or with sudo). Idempotent and quick when all is there.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v ninja >/dev/null 2>&1 || need+=(ninja-build)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v clang++ >/dev/null 2>&1 || need+=(clang)
[ -f /usr/include/gtest/gtest.h ] || need+=(libgtest-dev)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)

if [ ${#need[@]} -gt 0 ]; then
  echo "setup_system: installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}"
fi

# libFuzzer ships in clang's runtime; check that clang can link a fuzzer.
if ! echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}' \
    | clang++ -x c++ -fsanitize=fuzzer - -o /tmp/flashplus_fuzz_probe 2>/dev/null; then
  echo "setup_system: installing clang's libFuzzer runtime"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  ver=$(clang++ --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -1)
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "libclang-rt-${ver}-dev" || \
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "libfuzzer-${ver}-dev"
fi
rm -f /tmp/flashplus_fuzz_probe

# CuTe/CUTLASS headers for the CUDA kernels come from the pinned PyPI package (nothing is vendored).
# Only needed when nvcc is there: without it the CPU backend alone is built.
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  if ! python3 -c "import cutlass_library" >/dev/null 2>&1; then
    echo "setup_system: installing nvidia-cutlass==4.2.0.0 (CuTe headers)"
    python3 -m pip install -q "nvidia-cutlass==4.2.0.0"
  fi
fi
