#!/usr/bin/env bash
# Build the vDSO: sysroot/vdso/build.sh [OUT.so]   (default build/vdso.so)
# Assembles the abigen-generated syscalls/generated/vdso.S and links it with
# vdso.ld into a position-independent shared object. See README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build/vdso.so}
cc=${CC:-gcc}
mkdir -p "$(dirname "$out")"
"$cc" -nostdlib -shared -fPIC -Wa,--noexecstack \
    -Wl,--hash-style=both -Wl,-z,max-page-size=4096 -Wl,-z,norelro -Wl,--build-id=none \
    -Wl,--no-undefined -Wl,-soname=libmagenta.so -Wl,-T,"$here/vdso.ld" \
    -o "$out" "$root/syscalls/generated/vdso.S"
