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
# `make run PROGRAM=prog.elf`: boot with a bootfs of init and that program only.
PROGRAM ?=

# Userspace (see sysroot/README.md and userland/README.md).
CC        ?= gcc
USER_OUT  := target/$(TARGET)/release
SYSROOT   := sysroot/lib
# The one-line C link against the sysroot, without the output and the sources.
USER_CC   := $(CC) -std=c11 -O2 -static -nostdlib -nostdinc -ffreestanding -fno-pic -no-pie \
             -fno-stack-protector -isystem $$($(CC) -print-file-name=include) -I sysroot/include \
             -T $(SYSROOT)/user.ld -Wl,-z,max-page-size=4096 -Wl,--build-id=none $(SYSROOT)/crt1.o
USER_LIBS := -L$(SYSROOT) -lc -lmagenta -lgcc
# A Hyper-V root program (sysroot/include/hv/hvgdk.h) also links libhv.
HV_LIBS   := -L$(SYSROOT) -lhv $(USER_LIBS)

.PHONY: help build kernel run iso test check clean setup setup-rust bench fuzz fuzz-guest fuzz-hyperv vdso sysroot userland bootfs

help:
	@echo "make [build]  build the kernel and build/kernel.elf (symbol table filled)"
	@echo "make run      boot it in QEMU: Limine ISO if a Limine install is found, else PVH;"
	@echo "              serial on this terminal, quit with Ctrl-A X  (CMDLINE=... SMP=$(SMP) MEM=$(MEM))"
	@echo "make iso      build/magnetar.iso, hybrid BIOS+UEFI (needs LIMINE_DIR or a distro Limine)"
	@echo "make test     host unit tests and QEMU boot tests, with a summary line"
	@echo "make check    clippy (warnings are errors) and rustfmt --check"
	@echo "make setup    install missing prerequisites (Rust target, QEMU, OVMF, xorriso, mtools)"
	@echo "make bench    benchmarks vs Linux/KVM in the same QEMU: table + build/bench/results.json"
	@echo "make fuzz     the fuzzers, long rounds (SEED= ITERS= SMP= FIRST= ROUNDS= TRACE= GUEST_RUNS= HV_ITERS=)"
	@echo "make clean    remove target/ and build/"
	@echo "make userland build/vdso.so (+ vdso-layout.rs), the C sysroot, init, hello, hello-c and"
	@echo "              build/bootfs.img; \`make run PROGRAM=prog.elf\` boots init + that program"

setup-rust:
	@tools/setup.sh rust

setup:
	@tools/setup.sh all

build: setup-rust userland
	$(CARGO) build -p kernel --target $(TARGET) --release
	$(MTOOL) image

# The vDSO (abigen's syscalls/generated/vdso.S) and the layout the kernel includes.
vdso:
	sysroot/vdso/build.sh build/vdso.so
	$(MTOOL) vdso-layout --vdso build/vdso.so --out build/vdso-layout.rs

# crt1.o, libc.a, libmagenta.a, libhv.a and user.ld in sysroot/lib.
sysroot:
	sysroot/build.sh $(SYSROOT)

# The programs, and build/bootfs.img: init runs etc/init.rc (hello, hello-c).
userland: setup-rust vdso sysroot
	$(CARGO) build -p init -p hello -p conformance -p bench -p fuzz -p guest-manager -p hvtest -p hyperv-server -p hyperv-smoke -p hyperv-conformance --target $(TARGET) --release
	@mkdir -p build/bootfs
	as --64 -o build/guest-hello.o userland/guests/hello/guest.s
	ld -Ttext=0x10000 -e _start --oformat binary -o build/bootfs/guest.bin build/guest-hello.o
	$(USER_CC) -o build/hello-c.elf userland/hello-c/hello.c $(USER_LIBS)
	$(USER_CC) -Wall -Wextra -Werror -o build/c-conformance.elf userland/c-conformance/c_conformance.c $(USER_LIBS)
	$(USER_CC) -Wall -Wextra -Werror -o build/c-guest.elf userland/c-guest/c_guest.c $(USER_LIBS)
	$(USER_CC) -Wall -Wextra -Werror -o build/hv-c-example.elf userland/hv-c-example/hv_example.c $(HV_LIBS)
	objcopy --strip-debug $(USER_OUT)/init build/bootfs/init
	objcopy --strip-debug $(USER_OUT)/hello build/bootfs/hello
	objcopy --strip-debug build/hello-c.elf build/bootfs/hello-c
	objcopy --strip-debug build/c-conformance.elf build/bootfs/c-conformance
	objcopy --strip-debug build/c-guest.elf build/bootfs/c-guest
	objcopy --strip-debug build/hv-c-example.elf build/bootfs/hv-c-example
	objcopy --strip-debug $(USER_OUT)/conformance build/bootfs/conformance
	objcopy --strip-debug $(USER_OUT)/bench build/bootfs/bench
	objcopy --strip-debug $(USER_OUT)/fuzz build/bootfs/fuzz
	objcopy --strip-debug $(USER_OUT)/guest-manager build/bootfs/guest-manager
	objcopy --strip-debug $(USER_OUT)/hvtest build/bootfs/hvtest
	objcopy --strip-debug $(USER_OUT)/hyperv-conformance build/bootfs/hyperv-conformance
	objcopy --strip-debug $(USER_OUT)/hyperv-server build/bootfs/hyperv-server
	objcopy --strip-debug $(USER_OUT)/hyperv-smoke build/bootfs/hyperv-smoke
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/hyperv-smoke +hyperv\nbin/hv-c-example +hyperv\nbin/hello\nbin/hello-c\nbin/c-conformance\nbin/guest-manager +resource +bootfs\nbin/c-guest +resource\n' > build/bootfs/init.rc
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/hyperv-smoke +hyperv\n' > build/bootfs/hyperv-smoke.rc
	printf 'bin/hvtest +resource\n' > build/bootfs/hvtest.rc
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/hyperv-conformance +hyperv\n' > build/bootfs/hyperv.rc
	printf 'bin/conformance +resource +job +vdso +bootfs\n' > build/bootfs/conformance.rc
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/bench +resource +job +vdso +bootfs +hyperv\n' > build/bootfs/bench.rc
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/bench quick +resource +job +vdso +bootfs +hyperv\n' > build/bootfs/bench-quick.rc
	printf 'bin/fuzz +resource +job +vdso +bootfs\n' > build/bootfs/fuzz.rc
	printf 'bin/fuzz mode=guest +resource\n' > build/bootfs/guest-fuzz.rc
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/fuzz mode=hyperv +hyperv\n' > build/bootfs/hyperv-fuzz.rc
	printf 'bin/conformance +resource +job +vdso +bootfs\nbin/fuzz +resource +job +vdso +bootfs\n' > build/bootfs/fuzz-fault.rc
	$(MTOOL) bootfs --out build/bootfs.img build/bootfs/init=bin/init build/bootfs/hello=bin/hello \
		build/bootfs/hello-c=bin/hello-c build/bootfs/c-conformance=bin/c-conformance build/bootfs/c-guest=bin/c-guest \
		build/bootfs/hv-c-example=bin/hv-c-example \
		build/bootfs/conformance=bin/conformance build/bootfs/bench=bin/bench \
		build/bootfs/init.rc=etc/init.rc build/bootfs/conformance.rc=etc/conformance.rc \
		build/bootfs/bench.rc=etc/bench.rc build/bootfs/bench-quick.rc=etc/bench-quick.rc \
		build/bootfs/fuzz=bin/fuzz build/bootfs/fuzz.rc=etc/fuzz.rc build/bootfs/guest-fuzz.rc=etc/guest-fuzz.rc build/bootfs/fuzz-fault.rc=etc/fuzz-fault.rc \
		build/bootfs/hyperv-fuzz.rc=etc/hyperv-fuzz.rc \
		build/bootfs/guest-manager=bin/guest-manager build/bootfs/guest.bin=data/guest.bin \
		build/bootfs/hvtest=bin/hvtest build/bootfs/hvtest.rc=etc/hvtest.rc \
		build/bootfs/hyperv-server=bin/hyperv-server build/bootfs/hyperv-smoke=bin/hyperv-smoke \
		build/bootfs/hyperv-smoke.rc=etc/hyperv-smoke.rc \
		build/bootfs/hyperv-conformance=bin/hyperv-conformance build/bootfs/hyperv.rc=etc/hyperv.rc

# With PROGRAM=path: build/bootfs.img holds init, the Hyper-V server and that program, which
# init.rc names after the server's service line. It gets the root resource (+resource), so a
# guest manager can make a hypervisor resource, and a Hyper-V client channel (+hyperv), so a
# root-partition program reaches the server; a program that uses neither just holds them.
bootfs: userland
	@test -n "$(PROGRAM)" || { echo "make bootfs: set PROGRAM=path/to/prog.elf" >&2; exit 1; }
	@test -f "$(PROGRAM)" || { echo "make bootfs: $(PROGRAM) not found" >&2; exit 1; }
	@mkdir -p build/bootfs
	printf 'bin/hyperv-server +resource +service=hyperv\nbin/%s +resource +hyperv\n' "$(notdir $(PROGRAM))" \
		> build/bootfs/program.rc
	$(MTOOL) bootfs --out build/bootfs.img build/bootfs/init=bin/init "$(PROGRAM)=bin/$(notdir $(PROGRAM))" \
		build/bootfs/hyperv-server=bin/hyperv-server build/bootfs/program.rc=etc/init.rc

kernel: build

iso: setup build
	module=(); if [ -f build/bootfs.img ]; then module=(--module build/bootfs.img); fi; \
	$(MTOOL) iso --cmdline "$(CMDLINE)" "$${module[@]}"

run: setup build
	$(if $(PROGRAM),@$(MAKE) --no-print-directory bootfs PROGRAM="$(PROGRAM)")
	module=(); if [ -f build/bootfs.img ]; then module=(--module build/bootfs.img); fi; \
	$(MTOOL) run --boot auto --interactive --smp $(SMP) --mem $(MEM) --cmdline "$(CMDLINE)" "$${module[@]}"

# `cargo test` of the default members (kcore, tools, boot-tests), then one summary line.
# Boot tests that could not run print `skipped: ...`; they are counted as skipped, not passed.
test: setup build
	@mkdir -p build
	@# Summaries below come from this run's logs only, never an earlier run's.
	@rm -rf build/runs/conformance-smp* build/runs/hypervisor-smp* build/runs/hyperv-smp*
	@status=0; $(CARGO) test --no-fail-fast 2>&1 | tee build/test.log || status=$$?; \
	for log in build/runs/conformance-smp*/serial.log; do \
		[ -f "$$log" ] || continue; echo "$$(basename $$(dirname $$log)) (build/runs/.../serial.log):"; \
		grep -ho 'syscalls: [0-9]* passed, [0-9]* failed' "$$log" || echo "syscalls: no summary line"; \
	done; \
	for log in build/runs/hypervisor-smp*/serial.log; do \
		[ -f "$$log" ] || continue; echo "$$(basename $$(dirname $$log)) (build/runs/.../serial.log):"; \
		grep -ho 'hypervisor: [0-9]* passed, [0-9]* failed\(, [0-9]* skipped\)\?' "$$log" || echo "hypervisor: no summary line"; \
	done; \
	for log in build/runs/hyperv-smp*/serial.log; do \
		[ -f "$$log" ] || continue; echo "$$(basename $$(dirname $$log)) (build/runs/.../serial.log):"; \
		grep -ho 'hyperv: [0-9]* passed, [0-9]* failed' "$$log" || echo "hyperv: no summary line"; \
	done; \
	awk -v status=$$status -f tools/test-summary.awk build/test.log; \
	exit $$status

check: setup-rust
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy -p kernel --target $(TARGET) --release -- -D warnings
	$(CARGO) clippy -p mxrt -p hv -p init -p hello -p conformance -p bench -p fuzz -p guest-manager -p hvtest -p hyperv-server -p hyperv-smoke -p hyperv-conformance --target $(TARGET) --release -- -D warnings

clean:
	$(CARGO) clean
	rm -rf build $(SYSROOT)

# Our benchmarks against Linux/KVM in the same QEMU configuration (tools/src/bench.rs):
# the table, and build/bench/results.json. ROUNDS=N boots of each kind (default 3).
bench: setup build
	$(MTOOL) bench $(if $(ROUNDS),--rounds $(ROUNDS))

# The syscall fuzzer (userland/fuzz, tests/fuzz.rs): ITERS calls from SEED, then a round
# under fault injection (a kernel built with `fault-inject`: the conformance suite and the
# fuzzer with allocations failing). A panic or hang replays the failing round with a trace.
# SEED (default 1), ITERS (1000000), GUEST_RUNS (100000), HV_ITERS (800000), SMP (2), FIRST/ROUNDS/TRACE=1 to replay one round.
fuzz: setup build
	FUZZ_SEED=$(or $(SEED),1) FUZZ_ITERS=$(or $(ITERS),1000000) FUZZ_SMP=$(SMP) \
	FUZZ_FIRST=$(FIRST) FUZZ_ROUNDS=$(ROUNDS) FUZZ_TRACE=$(TRACE) FUZZ_GUEST_RUNS=$(or $(GUEST_RUNS),100000) \
	FUZZ_HV_ITERS=$(or $(HV_ITERS),800000) \
	$(CARGO) test -p boot-tests --test fuzz -- --ignored --nocapture --test-threads 1

# The Hyper-V fuzzer alone (userland/fuzz/src/hyperv.rs): HV_ITERS steps of a root client of
# the personality server from SEED (TRACE=1 prints each batch).
fuzz-hyperv: setup build
	FUZZ_SEED=$(or $(SEED),1) FUZZ_HV_ITERS=$(or $(HV_ITERS),800000) FUZZ_SMP=$(SMP) FUZZ_TRACE=$(TRACE) \
	$(CARGO) test -p boot-tests --test fuzz hyperv_fuzz_long -- --ignored --nocapture --test-threads 1

# The guest fuzzer alone (userland/fuzz/src/guest.rs): RUNS guest runs from SEED (FIRST: the
# first run, to replay one: `make fuzz-guest SEED=3 FIRST=1234 RUNS=1 TRACE=1`).
fuzz-guest: setup build
	FUZZ_SEED=$(or $(SEED),1) FUZZ_GUEST_RUNS=$(or $(RUNS),100000) FUZZ_SMP=$(SMP) \
	FUZZ_FIRST=$(FIRST) FUZZ_TRACE=$(TRACE) \
	$(CARGO) test -p boot-tests --test fuzz guest_fuzz_long -- --ignored --nocapture --test-threads 1
