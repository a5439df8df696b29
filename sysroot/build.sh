#!/usr/bin/env bash
# Build the C runtime: sysroot/build.sh [LIBDIR]   (default sysroot/lib)
# LIBDIR gets crt1.o, libc.a, libmagenta.a, libhv.a (the Hyper-V client,
# <hv/hvgdk.h>) and user.ld; sysroot/README.md has the one-line gcc command
# that links a program against them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lib=${1:-$here/lib}
cc=${CC:-gcc}
ar=${AR:-ar}
mkdir -p "$lib"
obj=$(mktemp -d)
trap 'rm -rf "$obj"' EXIT
cflags=(-std=c11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns
        -fno-pic -fno-stack-protector -mno-red-zone -nostdinc -isystem "$("$cc" -print-file-name=include)"
        -I "$here/include")
"$cc" "${cflags[@]}" -c "$here/src/crt1.c" -o "$lib/crt1.o"
for f in string stdio stdlib; do
    "$cc" "${cflags[@]}" -c "$here/src/$f.c" -o "$obj/$f.o"
done
"$cc" "${cflags[@]}" -pedantic -c "$here/src/hv.c" -o "$obj/hv.o"
rm -f "$lib/libc.a" "$lib/libmagenta.a" "$lib/libhv.a"
"$ar" rcs "$lib/libc.a" "$obj/string.o" "$obj/stdio.o" "$obj/stdlib.o"
"$ar" rcs "$lib/libhv.a" "$obj/hv.o"
"$cc" -c "$root/syscalls/generated/libmagenta.S" -o "$obj/libmagenta.o"
"$ar" rcs "$lib/libmagenta.a" "$obj/libmagenta.o"
cp "$here/user.ld" "$lib/user.ld"
