//! The benchmark program (userland/bench) works: booted with etc/bench-quick.rc (the Hyper-V
//! server as a service, then the program as its root client) it runs every benchmark a handful
//! of times, prints one well-formed `BENCH` line for each, and leaves the kernel's counts where
//! they were, the server's included. Measuring is `make bench`'s job, not the tests'.

use std::path::PathBuf;
use std::time::Duration;

use tools::bench::{parse_log, Line};
use tools::qemu::{BootPath, OutcomeKind, Run};

#[test]
fn bench_program_runs_quick() {
    let kernel = match std::env::var_os("MAGNETAR_KERNEL") {
        Some(path) => tools::workspace_root().join(path),
        None => tools::kernel::build().unwrap_or_else(|e| panic!("could not build the kernel image: {e:#}")),
    };
    let bootfs: PathBuf = tools::build_dir().join("bootfs.img");
    assert!(bootfs.exists(), "{} is missing: run `make build` (make test does) first", bootfs.display());
    let outcome = Run::new(kernel)
        .name("bench-quick")
        .boot_path(BootPath::Pvh)
        .smp(2)
        .module(Some(bootfs))
        .cmdline("init.rc=etc/bench-quick.rc")
        .timeout(Duration::from_secs(120))
        .run()
        .unwrap_or_else(|e| panic!("could not run QEMU: {e:#}"));
    let fail = |what: &str| {
        let details = if outcome.kind.is_success() { outcome.details() } else { String::new() };
        panic!("{what}\n{}{details}", outcome.report())
    };
    if outcome.kind != OutcomeKind::PowerOff {
        fail("the run did not end in a clean power-off");
    }
    let lines = parse_log(&outcome.log, "");
    let measured = |name: &str| {
        lines.iter().any(|l| {
            matches!(l, Line::Measured { name: n, ns, tsc, iters, .. }
            if n == name && *ns > 0.0 && *tsc > 0.0 && *iters > 0)
        })
    };
    for name in [
        "null_syscall",
        "handle_dup_close",
        "event_signal_wait",
        "port_queue_wait",
        "eventpair_pingpong",
        "event_pingpong",
        "port_pingpong",
        "channel_rt_1b",
        "channel_rt_4k",
        "channel_rt_1b_1h",
        "vmo_write_read_4k",
        "page_fault",
        "process_create_exit",
        "thread_create_join",
        "handle_lookup_1",
        "handle_lookup_1000",
        "handle_lookup_100000",
        "port_wakeup_1",
        "port_wakeup_64",
        "trap_io_sync",
        "trap_mem_sync",
        "trap_io_async",
        "guest_cpuid_exit",
        "guest_hlt_wakeup",
        "hyperv_null_hypercall",
        "hyperv_intercept_rt",
    ] {
        if !measured(name) {
            fail(&format!("no measured `BENCH {name}` line"));
        }
    }
    // Nothing may fail (QEMU emulates SVM, so the hypervisor rows measure too).
    for line in &lines {
        if let Line::Error { name, reason } = line {
            fail(&format!("BENCH {name} failed: {reason}"));
        }
    }
    for line in [
        "init: bin/hyperv-server started as service hyperv",
        "log: BENCH_END failures=0",
        "bin/bench: kernel counts back to baseline",
        "init: bin/hyperv-server exited with 0",
        "init: services: kernel counts back to baseline",
        "userboot: init exited with 0",
    ] {
        if !outcome.log.contains(line) {
            fail(&format!("no `{line}` in the log"));
        }
    }
}
