//! The hypervisor conformance suite (`userland/hvtest`, `etc/hvtest.rc`) in
//! user mode at -smp 1 and 4: no case fails, and init finds the kernel's
//! counts back at their baseline after the suite's process is gone. The
//! suite's last line is `hypervisor: N passed, M failed` (`, K skipped` when
//! cases could not run for want of SVM, which QEMU here always has, so a skip
//! fails this test); `make test` echoes it.

use std::time::Duration;

use tools::qemu::{BootPath, OutcomeKind, Run};

const TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn hypervisor_suite_passes() {
    let kernel = match std::env::var_os("MAGNETAR_KERNEL") {
        Some(path) => tools::workspace_root().join(path),
        None => tools::kernel::build().unwrap_or_else(|e| panic!("could not build the kernel image: {e:#}")),
    };
    let bootfs = tools::build_dir().join("bootfs.img");
    assert!(bootfs.exists(), "{} is missing: run `make build` (make test does) first", bootfs.display());
    for smp in [1, 4] {
        let run = Run::new(&kernel)
            .name(format!("hypervisor-smp{smp}"))
            .boot_path(BootPath::Pvh)
            .smp(smp)
            .module(Some(bootfs.clone()))
            .cmdline("init.rc=etc/hvtest.rc")
            .timeout(TIMEOUT);
        let outcome = run.run().unwrap_or_else(|e| panic!("could not run QEMU: {e:#}"));
        let fail = |what: &str| -> ! {
            panic!("hypervisor-smp{smp}: {what}\n{}", outcome.report());
        };
        if outcome.kind != OutcomeKind::PowerOff {
            fail(&format!("expected a clean power-off, got {:?}", outcome.kind));
        }
        let summary = outcome.lines_with("hypervisor: ").find(|l| l.contains(" passed, ")).map(str::to_owned);
        match &summary {
            // QEMU here always offers SVM: a skipped case is a failure.
            Some(line) if line.contains(" passed, 0 failed") && !line.contains("skipped") => {
                println!("hypervisor-smp{smp}: {line}")
            }
            _ => fail("no `hypervisor: N passed, 0 failed` line without skips"),
        }
        for line in ["bin/hvtest: kernel counts back to baseline", "userboot: init exited with 0"] {
            if !outcome.log.contains(line) {
                fail(&format!("no `{line}` in the log"));
            }
        }
    }
}
