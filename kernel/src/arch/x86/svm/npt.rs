//! Nested page tables: guest-physical to host-physical, in the host's
//! four-level long-mode format (what SVM's nested paging walks when the
//! host runs in long mode). Every entry sets U: nested walks are user
//! accesses. Leaves are 4 KiB pages of the guest's memory object, mapped
//! lazily by the nested-page-fault path; the tables are owned here and freed
//! with the guest.

use crate::mm::{frame, phys_to_virt};
use crate::sync::IrqSpinlock;
use core::sync::atomic::{AtomicU64, Ordering};
use mx_abi::Status;

const PRESENT: u64 = 1;
const WRITE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const TABLE_FLAGS: u64 = PRESENT | WRITE | USER;
const LEAF_FLAGS: u64 = PRESENT | WRITE | USER;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

fn entry_ptr(table: u64, index: u64) -> *mut u64 {
    (phys_to_virt(table) + index * 8) as *mut u64
}

fn read_entry(table: u64, index: u64) -> u64 {
    debug_assert!(index < 512);
    // SAFETY: `table` is a table frame this structure owns (or the root),
    // in the direct map; index < 512 keeps the access inside it.
    unsafe { core::ptr::read_volatile(entry_ptr(table, index)) }
}

fn write_entry(table: u64, index: u64, value: u64) {
    debug_assert!(index < 512);
    // SAFETY: as for `read_entry`; writers hold the tables' lock.
    unsafe { core::ptr::write_volatile(entry_ptr(table, index), value) }
}

/// One guest's nested page tables.
pub struct NestedTables {
    root: u64,
    lock: IrqSpinlock<()>,
    /// Bumped whenever a mapping is removed: VCPUs that ran with an older
    /// value take a fresh ASID (dropping stale translations) at entry.
    generation: AtomicU64,
}

impl NestedTables {
    pub fn new() -> Result<NestedTables, Status> {
        let root = frame::alloc_zeroed_frame().ok_or(Status::NoMemory)?;
        Ok(NestedTables { root, lock: IrqSpinlock::new(()), generation: AtomicU64::new(0) })
    }

    /// The root table, for the VMCB's nested CR3.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Sequentially consistent: paired with the VCPU's `RunState::cpu`
    /// store before it, so a shootdown that bumped the generation and then
    /// saw the VCPU not running knows its next entry sees the bump.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Maps the 4 KiB page at `gpa` to `hpa` (read, write, execute).
    pub fn map(&self, gpa: u64, hpa: u64) -> Result<(), Status> {
        let _guard = self.lock.lock();
        let mut table = self.root;
        for level in [3u32, 2, 1] {
            let index = (gpa >> (12 + 9 * level)) & 0x1ff;
            let entry = read_entry(table, index);
            table = if entry & PRESENT != 0 {
                entry & ADDR_MASK
            } else {
                let next = frame::alloc_zeroed_frame().ok_or(Status::NoMemory)?;
                write_entry(table, index, next | TABLE_FLAGS);
                next
            };
        }
        let old = read_entry(table, (gpa >> 12) & 0x1ff);
        write_entry(table, (gpa >> 12) & 0x1ff, (hpa & ADDR_MASK) | LEAF_FLAGS);
        if old & PRESENT != 0 && old & ADDR_MASK != hpa & ADDR_MASK {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Removes every leaf in `[start, end)`; empty tables stay (they are
    /// freed with the guest). True if any leaf was present.
    pub fn unmap(&self, start: u64, end: u64) -> bool {
        let _guard = self.lock.lock();
        let cleared = unmap_level(self.root, 3, 0, start, end);
        if cleared {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        cleared
    }
}

/// Clears the leaves of `table` (at `level`, covering addresses from
/// `base`) that fall inside `[start, end)`. True if any was present.
fn unmap_level(table: u64, level: u32, base: u64, start: u64, end: u64) -> bool {
    let span = 1u64 << (12 + 9 * level);
    let mut cleared = false;
    for index in 0..512u64 {
        let lo = base + index * span;
        let hi = lo + span;
        if hi <= start || lo >= end {
            continue;
        }
        let entry = read_entry(table, index);
        if entry & PRESENT == 0 {
            continue;
        }
        if level == 0 {
            write_entry(table, index, 0);
            cleared = true;
        } else {
            cleared |= unmap_level(entry & ADDR_MASK, level - 1, lo, start, end);
        }
    }
    cleared
}

fn free_level(table: u64, level: u32) {
    if level > 0 {
        for index in 0..512u64 {
            let entry = read_entry(table, index);
            if entry & PRESENT != 0 {
                free_level(entry & ADDR_MASK, level - 1);
            }
        }
    }
    frame::free_frame(table);
}

impl Drop for NestedTables {
    fn drop(&mut self) {
        // Leaves are the guest memory object's pages, not ours: only the
        // tables go. No VCPU runs (each holds the guest alive), and the
        // ASIDs that cached these translations are never reused before the
        // next full flush (see `svm::assign_asid`).
        free_level(self.root, 3);
    }
}
