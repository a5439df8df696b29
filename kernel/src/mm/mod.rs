//! Memory management: physical frames, the kernel's page tables and direct
//! map, kernel stacks with guard pages, and the kernel heap.
//!
//! Virtual layout of the kernel half:
//!
//! | range                                   | what                              |
//! |-----------------------------------------|-----------------------------------|
//! | `0xffff_8000_0000_0000` + phys          | direct map of RAM (WB) and MMIO (UC, on demand) |
//! | `0xffff_ff00_0000_0000` ..              | kernel stacks, each under an unmapped guard page |
//! | `0xffff_ffff_8000_0000` + load address  | the kernel image, W^X per section |

pub mod frame;
pub mod heap;
pub mod kstack;
pub mod paging;

use core::sync::atomic::{AtomicU64, Ordering};

/// Base of the direct map of physical memory.
pub const PHYS_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// Base of the kernel-stack region.
pub const KSTACK_BASE: u64 = 0xffff_ff00_0000_0000;
/// Base the kernel image is linked at (virtual = physical load address + this).
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
pub const PAGE_SIZE: u64 = 4096;

/// Where physical memory is visible right now: the loader's offset until the
/// kernel's own page tables are live, then [`PHYS_MAP_BASE`].
static PHYS_OFFSET: AtomicU64 = AtomicU64::new(0);

/// The virtual address through which physical address `phys` (RAM) is reached.
#[inline]
pub fn phys_to_virt(phys: u64) -> u64 {
    PHYS_OFFSET.load(Ordering::Relaxed) + phys
}

/// Physical address of a direct-map virtual address.
#[inline]
pub fn virt_to_phys_direct(virt: u64) -> u64 {
    virt - PHYS_OFFSET.load(Ordering::Relaxed)
}

pub(crate) fn set_phys_offset(offset: u64) {
    PHYS_OFFSET.store(offset, Ordering::Relaxed);
}

/// Copies RAM at physical address `phys` into `out` through the direct map
/// (boot modules and other memory the kernel was handed).
pub fn copy_from_phys(phys: u64, out: &mut [u8]) {
    let virt = phys_to_virt(phys);
    // SAFETY: callers pass RAM the boot information describes (modules),
    // which the direct map covers; `out` is a distinct kernel buffer.
    unsafe { core::ptr::copy_nonoverlapping(virt as *const u8, out.as_mut_ptr(), out.len()) };
}

/// Bytes managed by the frame allocator: (total, free).
pub fn totals() -> (u64, u64) {
    let stats = frame::stats();
    (stats.total_frames * PAGE_SIZE, stats.free_frames * PAGE_SIZE)
}
