//! The runtimes run: hello (Rust) and hello-c (C) start on Linux under
//! `linux/harness.c`, which maps them and the real vDSO and plays the kernel
//! for the syscalls the vDSO issues (trapped with seccomp). This exercises
//! vDSO symbol resolution, the vDSO's register convention (channel_read has 8
//! arguments), the bootstrap message, the heap, the log and the exit code.

use std::path::Path;
use std::process::Command;

use userland_tests::*;

fn run_harness(harness: &Path, vdso: &Path, prog: &Path, args: &[&str]) -> Option<(i32, String)> {
    let out = Command::new(harness).arg(vdso).arg(prog).args(args).output().expect("run the harness");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.code() == Some(124) {
        skip(stdout.trim().trim_start_matches("skipped: "));
        return None;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Some((out.status.code().unwrap_or(-1), format!("{stdout}{stderr}")))
}

#[test]
fn programs_run_against_the_real_vdso() {
    let Some(cc) = cc() else {
        skip("no C compiler (gcc)");
        return;
    };
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        skip("the harness needs Linux on x86-64");
        return;
    }
    let dir = scratch("linux");
    let harness = dir.join("harness");
    run(Command::new(&cc)
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&harness)
        .arg(root().join("userland/tests/linux/harness.c")))
    .unwrap();
    let vdso = build_vdso(&dir).unwrap();
    let lib = dir.join("lib");
    build_sysroot(&lib).unwrap();
    let hello_c = dir.join("hello-c.elf");
    link_c(&cc, &lib, &[root().join("userland/hello-c/hello.c")], &hello_c).unwrap();
    let hello = build_rust(&["hello"]).unwrap().join("hello");

    let Some((code, out)) = run_harness(&harness, &vdso, &hello, &["hello", "a b"]) else { return };
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("log: hello from Rust on magnetar\n"), "{out}");
    assert!(out.contains(r#"log: hello: 2 argument(s): ["hello", "a b"]"#), "{out}");
    assert!(out.contains("log: hello: squares [1, 4, 9, 16, 25], 1 CPU(s)"), "{out}");

    let (code, out) = run_harness(&harness, &vdso, &hello, &["hello", "exit=7"]).unwrap();
    assert_eq!(code, 7, "main's return value is the exit code: {out}");
    let (code, out) = run_harness(&harness, &vdso, &hello, &["hello", "panic"]).unwrap();
    assert_eq!(code, 101, "a panic exits with PANIC_EXIT_CODE: {out}");
    assert!(out.contains("log: panic: panicked at userland/hello/src/main.rs"), "{out}");
    assert!(out.contains("hello was asked to panic"), "{out}");

    let (code, out) = run_harness(&harness, &vdso, &hello_c, &["hello-c", "x"]).unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("log: hello from C on magnetar (2 arguments)\n"), "{out}");
    assert!(out.contains("log: hello-c: argv[1] = x\n"), "{out}");
    assert!(out.contains("log: hello-c: 1 CPU(s), 0x2a\n"), "{out}");
}
