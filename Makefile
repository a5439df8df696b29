# magnetar: the front door. `make help` lists the targets.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

CARGO   ?= cargo
TARGET  := x86_64-unknown-none
MTOOL   := $(CARGO) run --quiet -p tools --bin mtool --
# Kernel command line and CPU count for `make run`.
CMDLINE ?=
SMP     ?= 2
MEM     ?= 1G

.PHONY: help build kernel run iso test check clean setup setup-rust bench fuzz

help:
	@echo "make [build]  build the kernel and build/kernel.elf (symbol table filled)"
	@echo "make run      boot it in QEMU: Limine ISO if a Limine install is found, else PVH;"
	@echo "              serial on this terminal, quit with Ctrl-A X  (CMDLINE=... SMP=$(SMP) MEM=$(MEM))"
	@echo "make iso      build/magnetar.iso, hybrid BIOS+UEFI (needs LIMINE_DIR or a distro Limine)"
	@echo "make test     host unit tests and QEMU boot tests, with a summary line"
	@echo "make check    clippy (warnings are errors) and rustfmt --check"
	@echo "make setup    install missing prerequisites (Rust target, QEMU, OVMF, xorriso, mtools)"
	@echo "make clean    remove target/ and build/"

setup-rust:
	@tools/setup.sh rust

setup:
	@tools/setup.sh all

build: setup-rust
	$(CARGO) build -p kernel --target $(TARGET) --release
	$(MTOOL) image

kernel: build

iso: setup build
	$(MTOOL) iso --cmdline "$(CMDLINE)"

run: setup build
	$(MTOOL) run --boot auto --interactive --smp $(SMP) --mem $(MEM) --cmdline "$(CMDLINE)"

# `cargo test` of the default members (kcore, tools, boot-tests), then one summary line.
# Boot tests that could not run print `skipped: ...`; they are counted as skipped, not passed.
test: setup build
	@mkdir -p build
	@status=0; $(CARGO) test --no-fail-fast 2>&1 | tee build/test.log || status=$$?; \
	awk -v status=$$status -f tools/test-summary.awk build/test.log; \
	exit $$status

check: setup-rust
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy -p kernel --target $(TARGET) --release -- -D warnings

clean:
	$(CARGO) clean
	rm -rf build

bench fuzz:
	@echo "make $@: not yet implemented" >&2
	@exit 1
