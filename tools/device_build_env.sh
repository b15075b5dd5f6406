# device_build_env.sh — sourced by tools/device_check.sh and tools/device_profile.sh after they set
# PRESET: the build and log folders, the job count, and GTEST_ARGS for cmake, with GoogleTest from
# the system or built once from the carried .deps/googletest (the device has no network).
ROOT="$(pwd)"
BUILD="$ROOT/build-device-$PRESET"
LOGS="${OUT:-$BUILD/logs}"
mkdir -p "$LOGS"
JOBS="${FLASHPLUS_JOBS:-16}"
GTEST_ARGS=()
if ! ls /usr/lib/x86_64-linux-gnu/libgtest.a /usr/lib/libgtest.a /usr/local/lib/libgtest.a >/dev/null 2>&1; then
  if [ -d "$ROOT/.deps/googletest" ]; then
    if [ ! -d /tmp/gtest-install ]; then
      echo "== building GoogleTest from .deps/googletest"
      cmake -S "$ROOT/.deps/googletest" -B /tmp/gtest-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_GMOCK=OFF -DCMAKE_INSTALL_PREFIX=/tmp/gtest-install -DCMAKE_POSITION_INDEPENDENT_CODE=ON >"$LOGS/gtest.log" 2>&1 &&
        cmake --build /tmp/gtest-build -j "$JOBS" >>"$LOGS/gtest.log" 2>&1 &&
        cmake --install /tmp/gtest-build >>"$LOGS/gtest.log" 2>&1 || { tail -20 "$LOGS/gtest.log"; }
    fi
    GTEST_ARGS=(-DGTEST_ROOT=/tmp/gtest-install -DCMAKE_PREFIX_PATH=/tmp/gtest-install)
  fi
fi
