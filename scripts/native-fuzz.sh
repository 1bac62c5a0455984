#!/usr/bin/env bash
# Fuzzes the frame reader and verifier (native/fuzz/fuzz_frame.cc) with libFuzzer for a bounded
# time, under AddressSanitizer and UBSan (DESIGN §12). Needs clang and libclang-rt-14-dev
# (DISCO_WITH_CLANG=1 scripts/install-deps.sh). Exits non-zero when the fuzzer finds a crash,
# a sanitizer report or a broken invariant; the input that caused it is left in
# build-fuzz/artifacts/.
#
# The committed seeds (test/fuzz/corpus/frame) are read but never written: new inputs the
# fuzzer finds go to build-fuzz/corpus, which survives between local runs.
#
# Usage:
#   scripts/native-fuzz.sh                 fuzz for FUZZ_SECONDS (default 60) seconds
#   scripts/native-fuzz.sh --regen-corpus  rewrite the committed seeds from the C++ builders
#
# Environment: FUZZ_SECONDS (run time), FUZZ_MAX_LEN (largest input, default 16384 bytes),
# CXX_CLANG (clang++ to use, default clang++), FUZZ_JOBS (parallel build jobs).
set -euo pipefail
cd "$(dirname "$0")/.."

seeds=test/fuzz/corpus/frame
jobs="${FUZZ_JOBS:-$(nproc)}"

if [ "${1:-}" = "--regen-corpus" ]; then
  cmake -S . -B build-corpus -DDISCO_TESTS=ON >/dev/null
  cmake --build build-corpus -j "$jobs" --target make_fuzz_corpus
  rm -f "$seeds"/*.frame
  ./build-corpus/make_fuzz_corpus "$seeds"
  exit 0
fi

clangxx="${CXX_CLANG:-clang++}"
if ! command -v "$clangxx" >/dev/null 2>&1; then
  echo "native-fuzz: $clangxx not found; run DISCO_WITH_CLANG=1 scripts/install-deps.sh" >&2
  exit 2
fi

seconds="${FUZZ_SECONDS:-60}"
max_len="${FUZZ_MAX_LEN:-16384}"
build=build-fuzz

# -O1 -g without -DNDEBUG: FlatBuffers' own assertions stay armed while the fuzzer runs.
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER="$clangxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DDISCO_FUZZ=ON -DDISCO_WERROR=ON -DDISCO_SANITIZE="address;undefined" >/dev/null
cmake --build "$build" -j "$jobs" --target fuzz_frame
mkdir -p "$build/corpus" "$build/artifacts"

echo "native-fuzz: fuzz_frame for ${seconds}s (max_len ${max_len})"
ASAN_OPTIONS="detect_leaks=1" UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  "./$build/fuzz_frame" \
  -max_total_time="$seconds" \
  -max_len="$max_len" \
  -timeout=10 \
  -rss_limit_mb=2048 \
  -print_final_stats=1 \
  -artifact_prefix="$build/artifacts/" \
  "$build/corpus" "$seeds"
