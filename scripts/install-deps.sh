#!/usr/bin/env bash
# Installs the Debian packages the native addon needs, only those that are missing.
# Safe to run again; uses sudo when not root. Nothing is downloaded from anywhere
# but the distribution's package archive.
set -euo pipefail

need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v flatc >/dev/null 2>&1 || need+=(flatbuffers-compiler)
[ -f /usr/include/flatbuffers/flatbuffers.h ] || need+=(libflatbuffers-dev)
[ -f /usr/include/xxhash.h ] || need+=(libxxhash-dev)
# The multi-host tests build their "machines" as network namespaces.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ "${DISCO_WITH_CLANG:-0}" = 1 ]; then
  command -v clang++ >/dev/null 2>&1 || need+=(clang)
  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || need+=(libclang-rt-14-dev)
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${need[*]}"
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${need[@]}"
