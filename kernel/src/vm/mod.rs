//! User virtual memory: address spaces, VMOs, VMARs, and page faults.
//!
//! - [`AddressSpace`]: a root page table (kernel half shared), the VMAR
//!   tree over `[USER_BASE, USER_END)`, the CPUs that have it loaded, TLB
//!   shootdown, fault resolution.
//! - [`Vmo`]: a byte-sized object of lazily committed, zero-filled pages,
//!   or read-only pages over existing memory (boot modules, the vDSO).
//! - [`Vmar`]: a handle's view of a region, wrapping `kcore::vmar`.
//!
//! These are plain kernel types: the object layer wraps them for handles,
//! and the syscall layer adds handle checks and user copies (which must
//! never run while a VM lock is held: a user-copy fault takes them).
//!
//! `unsafe` is forbidden in every file here but `aspace.rs`, which loads
//! CR3 (one block each in `activate` and `deactivate`).
//! Every operation returns the contract's statuses in its order.

#![deny(unsafe_code)]

mod aspace;
mod pagelist;
#[cfg(target_os = "none")]
mod tests;
mod vmar;
mod vmo;

pub use aspace::{handle_page_fault, prefault_for_write, Access, AddressSpace, Fault, USER_BASE, USER_END};
pub use vmar::Vmar;
pub use vmo::{Vmo, MAX_SIZE as VMO_MAX_SIZE};

use core::sync::atomic::{AtomicU64, Ordering};

/// Owned pages committed to VMOs, over all VMOs.
static COMMITTED_PAGES: AtomicU64 = AtomicU64::new(0);
/// VMOs alive.
static LIVE_VMOS: AtomicU64 = AtomicU64::new(0);

/// Pages committed to VMOs right now (owned pages; borrowed boot memory is
/// not counted).
pub fn committed_pages() -> u64 {
    COMMITTED_PAGES.load(Ordering::Relaxed)
}

/// VMOs alive right now.
pub fn live_vmos() -> u64 {
    LIVE_VMOS.load(Ordering::Relaxed)
}

/// The placement generator's state (xorshift64*), seeded from the TSC on
/// first use. Cheap, not cryptographic: it spreads mappings, it does not
/// hide them from a determined attacker.
static RNG: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random number below `n` (`n > 0`), for randomized placement.
pub(crate) fn random_below(n: u64) -> u64 {
    let mut x = RNG.load(Ordering::Relaxed);
    if x == 0 {
        x = crate::arch::x86::cpu::rdtsc() | 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    RNG.store(x, Ordering::Relaxed);
    let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
    if n == 0 {
        0
    } else {
        r % n
    }
}
