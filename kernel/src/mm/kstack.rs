//! Kernel stacks in their own region, each with unmapped guard pages below
//! it so an overflow faults instead of corrupting a neighbour.

use super::{paging, KSTACK_BASE, PAGE_SIZE};
use crate::sync::IrqSpinlock;

/// Usable stack size.
pub const STACK_PAGES: u64 = 8;
/// Each slot: the stack on top, the rest unmapped guard.
const SLOT_PAGES: u64 = 16;
const MAX_SLOTS: u64 = 1 << 20;

struct Slots {
    next: u64,
    /// Freed slots form a stack of indices threaded through a fixed array,
    /// so allocation needs no heap (the boot stack is allocated before it).
    free: [u32; 256],
    free_len: usize,
}

static SLOTS: IrqSpinlock<Slots> = IrqSpinlock::new(Slots { next: 0, free: [0; 256], free_len: 0 });

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
            if slots.free_len > 0 {
                slots.free_len -= 1;
                u64::from(slots.free[slots.free_len])
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
        KSTACK_BASE + (self.slot * SLOT_PAGES + SLOT_PAGES - STACK_PAGES) * PAGE_SIZE
    }

    pub fn top(&self) -> u64 {
        KSTACK_BASE + (self.slot + 1) * SLOT_PAGES * PAGE_SIZE
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
        if slots.free_len < slots.free.len() {
            let len = slots.free_len;
            slots.free[len] = self.slot as u32;
            slots.free_len += 1;
        }
        // Otherwise the slot's address space is simply not reused.
    }
}
