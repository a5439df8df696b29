//! Build the kernel and produce the bootable `build/kernel.elf`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::ksyms;

/// The kernel's target triple.
pub const TARGET: &str = "x86_64-unknown-none";

/// Cargo's target directory (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| crate::workspace_root().join("target"))
}

/// The kernel as linked by cargo, before its symbol table is filled.
pub fn linked_path() -> PathBuf {
    target_dir().join(TARGET).join("release").join("kernel")
}

/// The bootable kernel: the linked kernel with `.ksyms` filled.
pub fn image_path() -> PathBuf {
    crate::build_dir().join("kernel.elf")
}

/// `cargo build -p kernel --target x86_64-unknown-none --release`, quiet unless it fails.
pub fn cargo_build() -> Result<PathBuf> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "-p", "kernel", "--target", TARGET, "--release"])
        .output()
        .with_context(|| format!("running {}", PathBuf::from(&cargo).display()))?;
    if !out.status.success() {
        bail!("building the kernel failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(linked_path())
}

/// Fill the symbol table of the linked kernel into [`image_path`].
pub fn make_image() -> Result<(PathBuf, ksyms::Stats)> {
    let out = image_path();
    let stats = ksyms::patch_file(&linked_path(), &out)?;
    Ok((out, stats))
}

/// Build the kernel and its image; returns the image path.
pub fn build() -> Result<PathBuf> {
    cargo_build()?;
    Ok(make_image()?.0)
}
