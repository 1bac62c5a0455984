#!/usr/bin/env bash
# Fuzzes the native readers with libFuzzer for a bounded time, under AddressSanitizer and UBSan
# (DESIGN §12):
#   fuzz_frame  the frame reader and verifier (native/fuzz/fuzz_frame.cc);
#   fuzz_ring   the ring's record reader, the batch decoder and the staging-layout parser
#               (native/fuzz/fuzz_ring.cc).
# The two share the time budget, half each. Needs clang and libclang-rt-14-dev
# (DISCO_WITH_CLANG=1 scripts/install-deps.sh). Exits non-zero when a fuzzer finds a crash, a
# sanitizer report or a broken invariant; the input that caused it is left in
# build-fuzz/artifacts/<target>/.
#
# The committed seeds (test/fuzz/corpus/{frame,ring}) are read but never written: new inputs the
# fuzzers find go to build-fuzz/corpus/<target>, which survives between local runs.
#
# Usage:
#   scripts/native-fuzz.sh                 fuzz for FUZZ_SECONDS (default 60) seconds in all
#   scripts/native-fuzz.sh --regen-corpus  rewrite the committed seeds from the C++ builders
#
# Environment: FUZZ_SECONDS (total run time), FUZZ_MAX_LEN (largest frame input, default 16384
# bytes; ring inputs may be a whole 64 KiB ring plus its 24-byte prefix), CXX_CLANG (clang++ to
# use, default clang++), FUZZ_JOBS (parallel build jobs).
set -euo pipefail
cd "$(dirname "$0")/.."

corpus=test/fuzz/corpus
jobs="${FUZZ_JOBS:-$(nproc)}"

if [ "${1:-}" = "--regen-corpus" ]; then
  cmake -S . -B build-corpus -DDISCO_TESTS=ON >/dev/null
  cmake --build build-corpus -j "$jobs" --target make_fuzz_corpus
  rm -f "$corpus"/frame/*.frame "$corpus"/ring/*.seed
  mkdir -p "$corpus/frame" "$corpus/ring"
  ./build-corpus/make_fuzz_corpus "$corpus/frame" "$corpus/ring"
  exit 0
fi

clangxx="${CXX_CLANG:-clang++}"
if ! command -v "$clangxx" >/dev/null 2>&1; then
  echo "native-fuzz: $clangxx not found; run DISCO_WITH_CLANG=1 scripts/install-deps.sh" >&2
  exit 2
fi

seconds="${FUZZ_SECONDS:-60}"
frame_max_len="${FUZZ_MAX_LEN:-16384}"
ring_max_len=65560
build=build-fuzz
per_target=$((seconds / 2 > 0 ? seconds / 2 : 1))

# -O1 -g without -DNDEBUG: FlatBuffers' own assertions stay armed while the fuzzer runs.
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$clangxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DDISCO_FUZZ=ON -DDISCO_WERROR=ON -DDISCO_SANITIZE="address;undefined" >/dev/null
cmake --build "$build" -j "$jobs" --target fuzz_frame fuzz_ring

run() {
  local target=$1 seeds=$2 max_len=$3
  mkdir -p "$build/corpus/$target" "$build/artifacts/$target"
  echo "native-fuzz: $target for ${per_target}s (max_len ${max_len})"
  ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
    "./$build/$target" \
    -max_total_time="$per_target" \
    -max_len="$max_len" \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$target/" \
    "$build/corpus/$target" "$seeds"
}

run fuzz_frame "$corpus/frame" "$frame_max_len"
run fuzz_ring "$corpus/ring" "$ring_max_len"
