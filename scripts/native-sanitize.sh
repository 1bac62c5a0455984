#!/usr/bin/env bash
# Runs the native code under AddressSanitizer and UBSan (DESIGN §12, STYLE §9):
#   1. the C++ unit tests (ctest), a Debug build (assertions armed) with
#      -fsanitize=address,undefined and leak checks on;
#   2. the addon, a Release build with the same sanitizers, by cmake-js into build-asan/; then
#      the native-facing vitest suites (test/native, the shared-memory transport and the
#      multi-process tests) against it through DISCO_NATIVE_PATH,
#      including the two-process ring test (its forked producers inherit the environment, so
#      they load the instrumented addon with the runtime preloaded too).
# Exits non-zero on the first failure, including any sanitizer report.
#
# Why it is set up this way:
#   - `node` is not instrumented, so the ASan runtime must be the first library in the process:
#     it is preloaded (LD_PRELOAD) together with libubsan, both from the same g++ that built
#     the addon (`g++ -print-file-name`). Vitest's forked workers inherit the environment, so
#     every test process runs with the runtime preloaded; that works as is with pool 'forks'.
#   - vitest is started through node_modules/.bin, not npx, so npm itself does not run under
#     the preloaded runtime.
#   - detect_leaks=0 for node: it frees little at exit by design and LeakSanitizer would report
#     V8's and Node's own allocations. The C++ test binaries keep leak detection on.
#   - -fno-sanitize-recover=all (CMake option DISCO_SANITIZE) plus halt_on_error make the first
#     UBSan finding abort the process, so it cannot scroll by in a passing run.
#
# Environment: SANITIZE_JOBS (parallel build jobs, default: number of CPUs),
# SANITIZE_RING_RECORDS (records of the two-thread ring test, default 300000: the instrumented
# Debug build is some 20 times slower than Release, where the test sends 10 million).
set -euo pipefail
cd "$(dirname "$0")/.."

sanitizers="address;undefined"
jobs="${SANITIZE_JOBS:-$(nproc)}"
addon_dir=build-asan
ctest_dir=build-asan-ctest

step() { printf '\n=== native-sanitize: %s\n' "$1"; }

asan_rt="$(g++ -print-file-name=libasan.so)"
ubsan_rt="$(g++ -print-file-name=libubsan.so)"
for rt in "$asan_rt" "$ubsan_rt"; do
  if [ ! -e "$rt" ]; then
    echo "native-sanitize: sanitizer runtime $rt not found (it ships with g++)" >&2
    exit 2
  fi
done

step "C++ unit tests with $sanitizers"
cmake -S . -B "$ctest_dir" -DDISCO_TESTS=ON -DDISCO_WERROR=ON -DCMAKE_BUILD_TYPE=Debug \
  -DDISCO_SANITIZE="$sanitizers" >/dev/null
cmake --build "$ctest_dir" -j "$jobs"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  DISCO_RING_TEST_RECORDS="${SANITIZE_RING_RECORDS:-300000}" \
  ctest --test-dir "$ctest_dir" --output-on-failure

step "addon with $sanitizers (cmake-js, $addon_dir)"
CMAKE_BUILD_PARALLEL_LEVEL="$jobs" ./node_modules/.bin/cmake-js compile --out "$addon_dir" \
  --CDDISCO_SANITIZE="$sanitizers" --CDDISCO_WERROR=ON
addon="$PWD/$addon_dir/Release/disco_native.node"

export DISCO_NATIVE_PATH="$addon"
export LD_PRELOAD="$asan_rt:$ubsan_rt${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

step "check that node runs the instrumented addon"
node -e '
  const { readFileSync } = require("node:fs");
  const addon = require(process.env.DISCO_NATIVE_PATH);
  const maps = readFileSync("/proc/self/maps", "utf8");
  if (!maps.includes("libasan.so")) throw new Error("the ASan runtime is not loaded");
  if (!maps.includes(process.env.DISCO_NATIVE_PATH)) throw new Error("another addon is loaded");
  if (addon.verifyFrame(addon.testing.buildSampleFrame()) !== addon.statusCodes.OK) {
    throw new Error("the sample frame does not verify");
  }
  console.log("instrumented addon loaded from " + process.env.DISCO_NATIVE_PATH);
'

step "vitest: native, shared-memory transport and multi-process tests against the instrumented addon"
# Forked Server processes inherit DISCO_NATIVE_PATH and LD_PRELOAD, so they run the
# instrumented addon too. The 1 GiB case (shm-1gib) runs only in the plain suite.
./node_modules/.bin/vitest run test/native test/unit/transports/shm.test.ts \
  test/multiprocess/application.test.ts test/multiprocess/shm.test.ts

step "passed"
