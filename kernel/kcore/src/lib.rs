//! Pure kernel logic, kept free of hardware access so it can be unit-tested on
//! the host with `cargo test -p kcore`.
//!
//! - [`addr`]: physical address and frame-number newtypes.
//! - [`frame`]: the buddy physical frame allocator.
//! - [`ksyms`]: the kernel symbol table format used by panic backtraces.
//! - [`cmdline`]: the kernel command line parser.
//! - [`memmap`]: the physical memory map both boot paths converge on.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod cmdline;
pub mod frame;
pub mod ksyms;
pub mod memmap;
