//! Boot tests: build the kernel once, boot it in QEMU (TCG) and check how each run ends.
//!
//! Every boot gets its own scratch directory `build/runs/<test name>/` with the serial log, so
//! the tests can run in parallel. A failing test prints the outcome and the log's last lines.
//! Tests that need Limine print `skipped: ...` when no install is found; they are not passes.
//!
//! `MAGNETAR_KERNEL=path` (relative to the workspace root) boots a prebuilt image instead of
//! building one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tools::qemu::{BootPath, Outcome, OutcomeKind, Run, BOOT_MARKER, PANIC_MARKER};

/// Per-boot hard timeout. A boot takes seconds; TCG on a loaded 2-core machine can be slow.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The ksyms-patched kernel image, built once per test process.
fn kernel() -> &'static Path {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let image = IMAGE.get_or_init(|| match std::env::var_os("MAGNETAR_KERNEL") {
        // Relative to the workspace root: cargo runs tests from the package directory.
        Some(path) => Ok(tools::workspace_root().join(path)),
        None => tools::kernel::build().map_err(|e| format!("{e:#}")),
    });
    match image {
        Ok(path) => path,
        Err(e) => panic!("could not build the kernel image: {e}"),
    }
}

/// Boot with `cmdline` and return the outcome; `name` names the scratch directory.
fn boot(name: &str, path: BootPath, smp: u32, cmdline: &str) -> Outcome {
    boot_with_memory(name, path, smp, DEFAULT_MEMORY_MIB, cmdline)
}

/// Memory the runner gives a guest unless told otherwise.
const DEFAULT_MEMORY_MIB: u32 = 1024;

/// [`boot`] with `memory_mib` MiB of RAM.
fn boot_with_memory(name: &str, path: BootPath, smp: u32, memory_mib: u32, cmdline: &str) -> Outcome {
    let run = Run::new(kernel())
        .name(name)
        .boot_path(path)
        .smp(smp)
        .mem(format!("{memory_mib}M"))
        .cmdline(cmdline)
        .timeout(TIMEOUT);
    match run.run() {
        Ok(outcome) => outcome,
        Err(e) => panic!("{name}: could not run QEMU: {e:#}"),
    }
}

/// Fail the test with the run's report unless `ok`.
fn check(outcome: &Outcome, ok: bool, what: &str) {
    if !ok {
        let report = outcome.report();
        // A failed outcome's report already has the log; a passing one's does not.
        let details = if outcome.kind.is_success() { outcome.details() } else { String::new() };
        panic!("{what}\n{report}{details}");
    }
}

/// Assert a run ended as `kind`.
fn expect_kind(outcome: &Outcome, kind: OutcomeKind) {
    check(outcome, outcome.kind == kind, &format!("expected outcome {kind}, got {}", outcome.kind));
}

/// Assert a completed boot: debug-exit success, the loader line, every CPU online, memory totals.
fn expect_booted(outcome: &Outcome, loader: &str, smp: u32) {
    expect_booted_with_memory(outcome, loader, smp, DEFAULT_MEMORY_MIB);
}

/// [`expect_booted`] for a machine with `memory_mib` MiB of RAM.
fn expect_booted_with_memory(outcome: &Outcome, loader: &str, smp: u32, memory_mib: u32) {
    expect_kind(outcome, OutcomeKind::Pass);
    let via = format!("boot: via {loader}");
    check(outcome, outcome.log.contains(&via), &format!("no `{via}` line"));

    let online: Vec<&str> = outcome.lines_with(BOOT_MARKER).collect();
    check(outcome, online.len() == 1, &format!("expected one `{BOOT_MARKER}` line, got {}", online.len()));
    let count = online.first().and_then(|l| number_after(l, &format!("{BOOT_MARKER}:")));
    check(outcome, count == Some(smp), &format!("expected {smp} CPUs online, the log says {count:?}"));

    let totals = outcome.lines_with("mm: memory total").next();
    check(
        outcome,
        totals.is_some_and(|l| l.contains("MiB") && l.contains("free")),
        "no `mm: memory total ... MiB, free ... MiB` line",
    );
    // A little is reserved by the firmware, so just check the order of magnitude.
    let total = totals.and_then(|l| number_after(l, "mm: memory total"));
    check(
        outcome,
        total.is_some_and(|t| (memory_mib / 2..=memory_mib).contains(&t)),
        &format!("memory total {total:?} MiB is not about {memory_mib} MiB"),
    );
}

/// The integer right after `key` in `line` (skipping spaces), e.g. `all CPUs online: 4 (...)`.
fn number_after(line: &str, key: &str) -> Option<u32> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Boot with `fault=<fault>` and assert it ended in a reported panic whose log names it as
/// the kernel's exception table spells it (e.g. `#PF page fault`).
fn expect_fault_panics(fault: &str, diagnostic: &str) {
    let outcome = boot(&format!("fault-{fault}"), BootPath::Pvh, 1, &format!("fault={fault}"));
    expect_kind(&outcome, OutcomeKind::KernelPanic);
    check(&outcome, outcome.log.contains(PANIC_MARKER), &format!("no `{PANIC_MARKER}` line"));
    check(&outcome, outcome.log.contains(diagnostic), &format!("no diagnostic `{diagnostic}`"));
    // The backtrace is symbolised from the table the image builder fills in.
    check(
        &outcome,
        outcome.log.lines().any(|l| l.trim_start().starts_with('#') && l.contains("kernel::raise_fault+")),
        "backtrace does not name kernel::raise_fault",
    );
}

/// The Limine install for the Limine tests, or `None` after printing that the test is skipped.
fn limine_or_skip(test: &str) -> Option<PathBuf> {
    match tools::limine::find() {
        Ok(Some(dir)) => Some(dir),
        Ok(None) => {
            // Straight to the process's stderr: libtest would swallow eprintln! of a passing test.
            let line = format!("skipped: {} [{test}]\n", tools::limine::MISSING_HINT);
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
        Err(e) => panic!("{e:#}"),
    }
}

#[test]
fn pvh_boots_one_cpu() {
    let outcome = boot("pvh-smp1", BootPath::Pvh, 1, "test=boot");
    expect_booted(&outcome, "pvh", 1);
}

#[test]
fn pvh_boots_four_cpus() {
    let outcome = boot("pvh-smp4", BootPath::Pvh, 4, "test=boot");
    expect_booted(&outcome, "pvh", 4);
}

/// RAM above 4 GiB: the loader's identity map ends there, the direct map must
/// not, and low-memory allocations (the AP trampoline's page table) must still
/// find frames below 4 GiB.
#[test]
fn pvh_boots_with_memory_above_4g() {
    let outcome = boot_with_memory("pvh-6g", BootPath::Pvh, 2, 6144, "test=boot");
    expect_booted_with_memory(&outcome, "pvh", 2, 6144);
}

#[test]
fn page_fault_panics_with_diagnostic() {
    expect_fault_panics("pf", "#PF page fault");
}

#[test]
fn general_protection_fault_panics_with_diagnostic() {
    expect_fault_panics("gp", "#GP general protection");
}

#[test]
fn invalid_opcode_panics_with_diagnostic() {
    expect_fault_panics("ud", "#UD invalid opcode");
}

#[test]
fn divide_error_panics_with_diagnostic() {
    expect_fault_panics("de", "#DE divide error");
}

#[test]
fn double_fault_panics_with_diagnostic() {
    expect_fault_panics("df", "#DF double fault");
}

#[test]
fn explicit_panic_is_reported() {
    expect_fault_panics("panic", PANIC_MARKER);
}

#[test]
fn poweroff_is_clean() {
    let outcome = boot("poweroff", BootPath::Pvh, 1, "poweroff");
    expect_kind(&outcome, OutcomeKind::PowerOff);
}

#[test]
fn limine_bios_boots() {
    if limine_or_skip("limine_bios_boots").is_some() {
        let outcome = boot("limine-bios", BootPath::LimineBios, 2, "test=boot");
        expect_booted(&outcome, "limine", 2);
    }
}

#[test]
fn limine_uefi_boots() {
    if limine_or_skip("limine_uefi_boots").is_some() {
        let outcome = boot("limine-uefi", BootPath::LimineUefi, 2, "test=boot");
        expect_booted(&outcome, "limine", 2);
    }
}

/// The in-kernel tests (`ktest!`) pass on two CPUs, and there is at least one.
#[test]
fn kernel_tests_pass() {
    let outcome = boot("ktest", BootPath::Pvh, 2, "test=ktest");
    expect_kind(&outcome, OutcomeKind::Pass);
    let summary = outcome.lines_with("ktest: ").find(|l| l.contains(" passed, "));
    let passed = summary.and_then(|l| number_after(l, "ktest:"));
    check(&outcome, summary.is_some_and(|l| l.contains(" passed, 0 failed")), "no `ktest: N passed, 0 failed` line");
    check(&outcome, passed.is_some_and(|n| n > 0), "no kernel test ran");
    // Echoed so `make test` shows the in-kernel count next to the host ones.
    // Straight to stderr: libtest swallows the output of a passing test.
    if let Some(line) = summary {
        let _ = std::io::stderr().write_all(format!("{}\n", line.trim()).as_bytes());
    }
}

/// The boot filesystem `make` builds: init plus the sample programs.
fn bootfs() -> PathBuf {
    let path = tools::build_dir().join("bootfs.img");
    assert!(path.exists(), "{} is missing: run `make build` (make test does) first", path.display());
    path
}

/// User mode end to end: the kernel starts init from the boot filesystem;
/// init loads the Rust and C sample programs and the C API checks through
/// the vDSO's syscalls, all print through the debuglog and exit 0 with the
/// kernel's counts back at baseline, and init's exit powers off.
#[test]
fn init_runs_programs_from_bootfs() {
    for smp in [1, 4] {
        let run = Run::new(kernel())
            .name(format!("userspace-smp{smp}"))
            .boot_path(BootPath::Pvh)
            .smp(smp)
            .module(Some(bootfs()))
            .timeout(TIMEOUT);
        let outcome = match run.run() {
            Ok(outcome) => outcome,
            Err(e) => panic!("could not run QEMU: {e:#}"),
        };
        expect_kind(&outcome, OutcomeKind::PowerOff);
        let c_summary = outcome.lines_with("log: c: ").find(|l| l.contains(" passed, "));
        check(&outcome, c_summary.is_some_and(|l| l.contains(" passed, 0 failed")), "no `c: N passed, 0 failed` line");
        for line in [
            "log: hello: squares [1, 4, 9, 16, 25]",
            "log: init: bin/hello exited with 0",
            "log: hello from C on magnetar",
            "log: init: bin/hello-c exited with 0",
            "log: init: bin/c-conformance exited with 0",
            "log: c-guest: Hi",
            "log: c-guest: guest powered off after 3 IO and 1 MMIO exits",
            "log: init: bin/c-guest exited with 0",
            "log: hv-c-example: all checks passed",
            "log: init: bin/hv-c-example exited with 0",
            "log: guest: hello from a 64-bit guest on magnetar",
            "log: guest: mmio device id ok, scratch register read back",
            "log: guest: interrupt 0x40 taken",
            "log: guest-manager: guest powered off with 0",
            "log: init: bin/guest-manager exited with 0",
            "userboot: init exited with 0",
        ] {
            check(&outcome, outcome.log.contains(line), &format!("no `{line}` in the log"));
        }
    }
}

/// The syscall conformance suite, in user mode at -smp 1 and 4: every case
/// passes, and init finds the kernel's counts back at their baseline after
/// the suite's process is gone. `make test` echoes the suite's summary line.
#[test]
fn conformance_suite_passes() {
    for smp in [1, 4] {
        let run = Run::new(kernel())
            .name(format!("conformance-smp{smp}"))
            .boot_path(BootPath::Pvh)
            .smp(smp)
            .module(Some(bootfs()))
            .cmdline("init.rc=etc/conformance.rc")
            .timeout(TIMEOUT);
        let outcome = match run.run() {
            Ok(outcome) => outcome,
            Err(e) => panic!("could not run QEMU: {e:#}"),
        };
        expect_kind(&outcome, OutcomeKind::PowerOff);
        let summary = outcome.lines_with("syscalls: ").find(|l| l.contains(" passed, "));
        check(
            &outcome,
            summary.is_some_and(|l| l.contains(" passed, 0 failed")),
            "no `syscalls: N passed, 0 failed` line",
        );
        for line in ["bin/conformance: kernel counts back to baseline", "userboot: init exited with 0"] {
            check(&outcome, outcome.log.contains(line), &format!("no `{line}` in the log"));
        }
    }
}
