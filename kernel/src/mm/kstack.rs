//! Kernel stacks in their own region, each with unmapped guard pages below
//! it so an overflow faults instead of corrupting a neighbour.

use super::{paging, KSTACK_BASE, PAGE_SIZE};
use crate::sync::IrqSpinlock;

/// Usable stack size.
pub const STACK_PAGES: u64 = 8;
/// Each slot: the stack on top, the rest unmapped guard.
const SLOT_PAGES: u64 = 16;
const MAX_SLOTS: u64 = 1 << 20;

/// How many freed slots each list remembers; beyond that a freed slot's
/// address range is simply not reused.
const LIST_LEN: usize = 256;

struct Slots {
    next: u64,
    /// Freed slots no CPU can still hold translations for. Index stacks in
    /// fixed arrays, so allocation needs no heap (the boot stack is
    /// allocated before it).
    clean: [u32; LIST_LEN],
    clean_len: usize,
    /// Freed slots other CPUs may still cache translations for (kernel
    /// stacks are global mappings); [`recycle_freed`] flushes them.
    dirty: [u32; LIST_LEN],
    dirty_len: usize,
}

static SLOTS: IrqSpinlock<Slots> =
    IrqSpinlock::new(Slots { next: 0, clean: [0; LIST_LEN], clean_len: 0, dirty: [0; LIST_LEN], dirty_len: 0 });

/// The mapped part of `slot`: `[bottom, top)`.
fn stack_range(slot: u64) -> (u64, u64) {
    let top = KSTACK_BASE + (slot + 1) * SLOT_PAGES * PAGE_SIZE;
    (top - STACK_PAGES * PAGE_SIZE, top)
}

/// Flushes the slots freed since the last call from every CPU's TLB, then
/// lets them be reused. One cross-CPU call per batch, made here (the reaper,
/// holding no lock) so that allocating a stack never needs one.
pub fn recycle_freed() {
    let mut batch = [0u32; LIST_LEN];
    let len = {
        let mut slots = SLOTS.lock();
        let len = slots.dirty_len;
        batch[..len].copy_from_slice(&slots.dirty[..len]);
        slots.dirty_len = 0;
        len
    };
    if len == 0 {
        return;
    }
    let batch = &batch[..len];
    let flush = || {
        for &slot in batch {
            let (low, high) = stack_range(u64::from(slot));
            let mut page = low;
            while page < high {
                x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(page));
                page += PAGE_SIZE;
            }
        }
    };
    flush();
    crate::arch::x86::ipi::call_on_others(&flush);
    let mut slots = SLOTS.lock();
    for &slot in batch {
        if slots.clean_len < LIST_LEN {
            let len = slots.clean_len;
            slots.clean[len] = slot;
            slots.clean_len += 1;
        }
    }
}

/// A kernel stack. Dropping it unmaps it and frees its frames.
#[derive(Debug)]
pub struct KernelStack {
    slot: u64,
}

impl KernelStack {
    /// Allocates and maps a stack backed by frames from `source`.
    pub fn new_with(source: &mut dyn paging::TableSource) -> Option<KernelStack> {
        let slot = {
            let mut slots = SLOTS.lock();
            if slots.clean_len > 0 {
                slots.clean_len -= 1;
                u64::from(slots.clean[slots.clean_len])
            } else if slots.next < MAX_SLOTS {
                slots.next += 1;
                slots.next - 1
            } else {
                return None;
            }
        };
        let stack = KernelStack { slot };
        for page in 0..STACK_PAGES {
            let frame = source.zeroed_frame()?;
            let virt = stack.bottom() + page * PAGE_SIZE;
            if paging::map_kernel_page_with(virt, frame, source).is_err() {
                super::frame::free_frame(frame);
                return None;
            }
        }
        Some(stack)
    }

    /// Allocates a stack from the frame allocator.
    pub fn new() -> Option<KernelStack> {
        Self::new_with(&mut paging::BuddySource)
    }

    pub fn bottom(&self) -> u64 {
        stack_range(self.slot).0
    }

    pub fn top(&self) -> u64 {
        stack_range(self.slot).1
    }

    /// Keeps the stack mapped forever (per-CPU stacks).
    pub fn leak(self) -> (u64, u64) {
        let range = (self.bottom(), self.top());
        core::mem::forget(self);
        range
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        for page in 0..STACK_PAGES {
            if let Some(frame) = paging::unmap_kernel_page(self.bottom() + page * PAGE_SIZE) {
                super::frame::free_frame(frame);
            }
        }
        let mut slots = SLOTS.lock();
        if slots.dirty_len < LIST_LEN {
            let len = slots.dirty_len;
            slots.dirty[len] = self.slot as u32;
            slots.dirty_len += 1;
        }
        // Otherwise the slot's address space is simply not reused.
    }
}
