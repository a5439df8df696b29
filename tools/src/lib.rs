//! Host tools for magnetar.
//!
//! - [`bench`]: `mtool bench`: run our benchmarks and Linux's, compare them.
//! - [`ksyms`]: fill the kernel's `.ksyms` backtrace table after linking.
//! - [`limine`]: find a Limine install and build a hybrid BIOS+UEFI ISO.
//! - [`qemu`]: boot the kernel in QEMU with a hard timeout and classify the outcome.
//! - [`kernel`]: build the kernel and produce the patched `build/kernel.elf`.
//! - [`bootfs`]: write boot filesystem images (the reader is `mx::bootfs` in userland).
//! - [`vdso`]: read the built vDSO's layout for the kernel (`build/vdso-layout.rs`).
//!
//! The `mtool` binary is the command-line front end; `tests/` uses this library directly.

use std::path::{Path, PathBuf};

pub mod bench;
pub mod bootfs;
pub mod kernel;
pub mod ksyms;
pub mod limine;
pub mod qemu;
pub mod vdso;

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// Where generated images and logs go: `<workspace>/build`.
pub fn build_dir() -> PathBuf {
    workspace_root().join("build")
}
