//! The Hyper-V personality conformance suite (`userland/hyperv-conformance`,
//! `etc/hyperv.rc`: `bin/hyperv-server` as the `hyperv` service, then
//! `bin/hyperv-conformance` as its client) at -smp 1 and 2: no case fails,
//! at least `MIN_CASES` ran, init finds the kernel's counts back at their
//! baseline after the suite and after the server, and exits 0. The suite's
//! last line is `hyperv: N passed, M failed`; `make test` echoes it.

use std::time::Duration;

use tools::qemu::{BootPath, OutcomeKind, Run};

const TIMEOUT: Duration = Duration::from_secs(900);
/// The suite has this many cases at least; fewer means some never ran.
const MIN_CASES: u32 = 120;

/// `N` of a `hyperv: N passed, 0 failed` line.
fn passed_without_failures(line: &str) -> Option<u32> {
    let rest = line.split("hyperv: ").nth(1)?;
    let (passed, failed) = rest.split_once(" passed, ")?;
    (failed.trim() == "0 failed").then_some(())?;
    passed.trim().parse().ok()
}

#[test]
fn hyperv_suite_passes() {
    let kernel = match std::env::var_os("MAGNETAR_KERNEL") {
        Some(path) => tools::workspace_root().join(path),
        None => tools::kernel::build().unwrap_or_else(|e| panic!("could not build the kernel image: {e:#}")),
    };
    let bootfs = tools::build_dir().join("bootfs.img");
    assert!(bootfs.exists(), "{} is missing: run `make build` (make test does) first", bootfs.display());
    for smp in [1, 2] {
        let run = Run::new(&kernel)
            .name(format!("hyperv-smp{smp}"))
            .boot_path(BootPath::Pvh)
            .smp(smp)
            .module(Some(bootfs.clone()))
            .cmdline("init.rc=etc/hyperv.rc")
            .timeout(TIMEOUT);
        let outcome = run.run().unwrap_or_else(|e| panic!("could not run QEMU: {e:#}"));
        let fail = |what: &str| -> ! {
            panic!("hyperv-smp{smp}: {what}\n{}", outcome.report());
        };
        if outcome.kind != OutcomeKind::PowerOff {
            fail(&format!("expected a clean power-off, got {:?}", outcome.kind));
        }
        let failures: Vec<&str> = outcome.lines_with("FAIL ").collect();
        let summary = outcome.lines_with("hyperv: ").find(|l| l.contains(" passed, ")).map(str::to_owned);
        match summary.as_deref().map(|l| (l, passed_without_failures(l))) {
            Some((line, Some(n))) if n >= MIN_CASES => println!("hyperv-smp{smp}: {line}"),
            Some((line, _)) => {
                fail(&format!("`{line}`: expected `hyperv: N passed, 0 failed` with N >= {MIN_CASES}; {failures:#?}"))
            }
            None => fail("no `hyperv: N passed, M failed` line"),
        }
        for line in ["bin/hyperv-conformance: kernel counts back to baseline", "userboot: init exited with 0"] {
            if !outcome.log.contains(line) {
                fail(&format!("no `{line}` in the log"));
            }
        }
    }
}
