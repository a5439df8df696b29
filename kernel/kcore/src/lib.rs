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
//! - [`vmar`]: VMAR range maths: placement, map, unmap, protect.
//! - [`port`]: a port's packet queue: FIFO over user, signal and trap packets,
//!   per-trap packet pools with VCPU pause/resume accounting.
//! - [`trap`]: the guest trap map behind `mx_guest_set_trap`.
//! - [`x86decode`]: x86 instruction lengths, for guest MMIO exits.
//! - [`x86paging`]: guest page-table walks, for fetching those instructions.
//! - [`bootfs`]: the boot filesystem directory reader.
//! - [`elf`]: how a static ELF executable (or the vDSO) maps.
//! - [`processargs`]: the bootstrap message, parsed and built.
//!
//! The last three are shared with userspace: the `mx` library re-exports them.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi_s5;
pub mod addr;
pub mod bootfs;
pub mod cmdline;
pub mod elf;
pub mod frame;
pub mod guestmap;
pub mod handle;
pub mod ksyms;
pub mod memmap;
pub mod port;
pub mod processargs;
pub mod trap;
pub mod vmar;
pub mod x86decode;
pub mod x86paging;

#[cfg(test)]
mod test_rng;
