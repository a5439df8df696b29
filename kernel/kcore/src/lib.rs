//! Pure kernel logic, kept free of hardware access so it can be unit-tested on
//! the host with `cargo test -p kcore`.
//!
//! - [`acpi_s5`]: the `_S5_` soft-off sleep type, read from AML bytes.
//! - [`addr`]: physical address and frame-number newtypes.
//! - [`frame`]: the buddy physical frame allocator.
//! - [`handle`]: per-process handle tables (masked values with generations).
//! - [`ksyms`]: the kernel symbol table format used by panic backtraces.
//! - [`cmdline`]: the kernel command line parser.
//! - [`memmap`]: the physical memory map both boot paths converge on.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi_s5;
pub mod addr;
pub mod cmdline;
pub mod frame;
pub mod handle;
pub mod ksyms;
pub mod memmap;
