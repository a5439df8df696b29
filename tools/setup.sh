#!/usr/bin/env bash
# Install what building and booting magnetar needs, only what is missing.
#
#   tools/setup.sh rust   the kernel's Rust target (and clippy/rustfmt for `make check`)
#   tools/setup.sh all    that, plus QEMU, OVMF, xorriso and mtools from Debian's packages
#
# Debian packages are installed only when running as root; otherwise the script stops and
# names the exact command to run. Limine is never downloaded: see README.md (LIMINE_DIR).
set -euo pipefail

part=${1:-all}
target=x86_64-unknown-none

die() {
    echo "setup: error: $*" >&2
    exit 1
}

setup_rust() {
    command -v cargo >/dev/null || die "cargo not found: install a stable Rust toolchain with rustup"
    if ! command -v rustup >/dev/null; then
        echo "setup: no rustup; assuming the toolchain already has the $target target"
        return
    fi
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "setup: rustup target add $target"
        rustup target add "$target" || die "could not add the $target target: run \`rustup target add $target\`"
    fi
    for component in clippy rustfmt; do
        if ! rustup component list --installed | grep -q "^$component"; then
            echo "setup: rustup component add $component"
            rustup component add "$component" || die "could not add $component: run \`rustup component add $component\`"
        fi
    done
}

have_ovmf() {
    local dir
    for dir in /usr/share/OVMF /usr/share/ovmf; do
        if { [ -f "$dir/OVMF_CODE_4M.fd" ] && [ -f "$dir/OVMF_VARS_4M.fd" ]; } ||
            { [ -f "$dir/OVMF_CODE.fd" ] && [ -f "$dir/OVMF_VARS.fd" ]; }; then
            return 0
        fi
    done
    return 1
}

setup_packages() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    have_ovmf || missing+=(ovmf)
    command -v xorriso >/dev/null || missing+=(xorriso)
    command -v mformat >/dev/null || missing+=(mtools)
    [ ${#missing[@]} -eq 0 ] && return

    local cmd="apt-get update && apt-get install -y ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        die "missing ${missing[*]}: run as root: $cmd"
    fi
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them with your package manager"
    echo "setup: $cmd"
    apt-get update -qq || die "apt-get update failed; run: $cmd"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "installing ${missing[*]} failed; run: $cmd"
}

case "$part" in
rust) setup_rust ;;
all)
    setup_rust
    setup_packages
    ;;
*) die "usage: $0 [rust|all]" ;;
esac
