//! Helpers for the userland host tests (`tests/`): build the vDSO, the C
//! sysroot and the Rust programs the way the Makefile does, and inspect them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root.
/// Says a test was skipped where `make test`'s summary sees it: straight to
/// the process's stderr, since libtest swallows the output of a passing test.
pub fn skip(why: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(format!("skipped: {why}\n").as_bytes());
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The C compiler (`$CC` or gcc), if it runs.
pub fn cc() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    Command::new(&cc).arg("--version").output().ok().filter(|o| o.status.success()).map(|_| cc)
}

/// Runs `cmd`, failing with its output.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magnetar-userland-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Builds the vDSO into `dir/vdso.so` with `sysroot/vdso/build.sh`.
pub fn build_vdso(dir: &Path) -> Result<PathBuf> {
    let out = dir.join("vdso.so");
    run(Command::new(root().join("sysroot/vdso/build.sh")).arg(&out))?;
    Ok(out)
}

/// Builds the C runtime into `dir` with `sysroot/build.sh`.
pub fn build_sysroot(dir: &Path) -> Result<()> {
    run(Command::new(root().join("sysroot/build.sh")).arg(dir)).map(drop)
}

/// Compiles and links C `sources` against the sysroot in `lib` into `out`
/// (the command of sysroot/README.md).
pub fn link_c(cc: &str, lib: &Path, sources: &[PathBuf], out: &Path) -> Result<()> {
    let include = run(Command::new(cc).arg("-print-file-name=include"))?;
    run(Command::new(cc)
        .args(["-std=c11", "-O2", "-Wall", "-Werror", "-static", "-nostdlib", "-nostdinc", "-ffreestanding"])
        .args(["-fno-pic", "-no-pie", "-fno-stack-protector", "-isystem", include.trim()])
        .arg("-I")
        .arg(root().join("sysroot/include"))
        .arg("-T")
        .arg(lib.join("user.ld"))
        .args(["-Wl,-z,max-page-size=4096", "-Wl,--build-id=none"])
        .arg(lib.join("crt1.o"))
        .arg("-o")
        .arg(out)
        .args(sources)
        .arg(format!("-L{}", lib.display()))
        .args(["-lc", "-lmagenta", "-lgcc"]))
    .map(drop)
}

/// `cargo build -p <pkgs> --target x86_64-unknown-none --release`; returns the output directory.
pub fn build_rust(pkgs: &[&str]) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root()).args(["build", "--target", "x86_64-unknown-none", "--release"]);
    for p in pkgs {
        cmd.args(["-p", p]);
    }
    run(&mut cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    Ok(target.join("x86_64-unknown-none/release"))
}

/// How many `syscall` instructions `objdump -d` finds in the file.
pub fn count_syscalls(file: &Path) -> Result<usize> {
    let dis = run(Command::new("objdump").arg("-d").arg(file))?;
    Ok(dis.lines().filter(|l| l.split('\t').nth(2).is_some_and(|i| i.trim() == "syscall")).count())
}
