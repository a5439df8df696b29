//! A VMO's pages: a radix tree indexed by page number within the VMO, whose
//! nodes are whole frames of 512 entries, shaped exactly like page tables
//! (and walked through the same `mm::paging::table` accessor). A leaf entry
//! holds a frame's physical address; [`BORROWED`] marks a frame the VMO does
//! not own (boot modules, the vDSO image), which is never freed.
//!
//! Nodes come from the frame allocator, not the heap, so committing a page
//! on a page fault allocates only frames. The tree grows upwards on demand
//! (a new root above the old one) and is freed whole when dropped.

#![forbid(unsafe_code)]

use crate::mm::{frame, paging};
use x86_64::structures::paging::PageTableFlags as F;
use x86_64::PhysAddr;

/// Entry bit marking a frame the list does not own.
const BORROWED: F = F::BIT_9;
const FANOUT_BITS: u32 = 9;
/// Enough levels for every page index of a 64-bit VMO (2^52 pages).
const MAX_LEVELS: u32 = 6;

/// A page held by a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub phys: u64,
    /// Not owned: never freed, not counted as committed.
    pub borrowed: bool,
}

#[derive(Debug, Default)]
pub struct PageList {
    /// Root node frame, 0 when the list is empty and has no nodes.
    root: u64,
    /// Levels below and including the root (1: the root is a leaf node).
    levels: u32,
}

fn capacity_bits(levels: u32) -> u32 {
    levels * FANOUT_BITS
}

fn slot(index: u64, level: u32) -> usize {
    ((index >> ((level - 1) * FANOUT_BITS)) & 511) as usize
}

impl PageList {
    pub const fn new() -> Self {
        PageList { root: 0, levels: 0 }
    }

    fn covers(&self, index: u64) -> bool {
        self.root != 0 && (capacity_bits(self.levels) >= 64 || index >> capacity_bits(self.levels) == 0)
    }

    /// The page at `index`, if present.
    pub fn get(&self, index: u64) -> Option<Page> {
        if !self.covers(index) {
            return None;
        }
        let mut node = self.root;
        for level in (1..=self.levels).rev() {
            let entry = &paging::table(node)[slot(index, level)];
            if entry.is_unused() {
                return None;
            }
            if level == 1 {
                return Some(Page { phys: entry.addr().as_u64(), borrowed: entry.flags().contains(BORROWED) });
            }
            node = entry.addr().as_u64();
        }
        None
    }

    /// Stores `page` at `index`, which must be empty. Err when a node frame
    /// cannot be allocated (nothing changes but possibly added empty nodes).
    pub fn insert(&mut self, index: u64, page: Page) -> Result<(), ()> {
        if self.root == 0 {
            self.root = frame::alloc_zeroed_frame().ok_or(())?;
            self.levels = 1;
        }
        while !self.covers(index) {
            if self.levels >= MAX_LEVELS {
                return Err(());
            }
            let root = frame::alloc_zeroed_frame().ok_or(())?;
            paging::table(root)[0].set_addr(PhysAddr::new(self.root), F::PRESENT);
            self.root = root;
            self.levels += 1;
        }
        let mut node = self.root;
        for level in (2..=self.levels).rev() {
            let entry = &mut paging::table(node)[slot(index, level)];
            if entry.is_unused() {
                let child = frame::alloc_zeroed_frame().ok_or(())?;
                entry.set_addr(PhysAddr::new(child), F::PRESENT);
            }
            node = entry.addr().as_u64();
        }
        let entry = &mut paging::table(node)[slot(index, 1)];
        debug_assert!(entry.is_unused(), "page {index} inserted twice");
        let flags = if page.borrowed { F::PRESENT | BORROWED } else { F::PRESENT };
        entry.set_addr(PhysAddr::new(page.phys), flags);
        Ok(())
    }

    /// Removes every page with index in `[start, end)`, calling `removed`
    /// for each. Absent subtrees are skipped; nodes stay until drop.
    pub fn remove_range(&mut self, start: u64, end: u64, removed: &mut dyn FnMut(u64, Page)) {
        if self.root == 0 || start >= end {
            return;
        }
        let end = if capacity_bits(self.levels) >= 64 { end } else { end.min(1 << capacity_bits(self.levels)) };
        if start >= end {
            return;
        }
        remove_level(self.root, self.levels, 0, start, end, removed);
    }

    /// Calls `visit` for every page with index in `[start, end)`.
    pub fn for_each(&self, start: u64, end: u64, visit: &mut dyn FnMut(u64, Page)) {
        // Same walk as removal, without clearing: done through a read-only
        // pass over the leaves.
        if self.root == 0 || start >= end {
            return;
        }
        let end = if capacity_bits(self.levels) >= 64 { end } else { end.min(1 << capacity_bits(self.levels)) };
        if start < end {
            visit_level(self.root, self.levels, 0, start, end, visit);
        }
    }
}

fn visit_level(node: u64, level: u32, base: u64, start: u64, end: u64, visit: &mut dyn FnMut(u64, Page)) {
    let shift = (level - 1) * FANOUT_BITS;
    let first = (start.max(base) - base) >> shift;
    let last = ((end - 1 - base) >> shift).min(511);
    for i in first..=last {
        let entry = &paging::table(node)[i as usize];
        if entry.is_unused() {
            continue;
        }
        let index = base + (i << shift);
        if level == 1 {
            visit(index, Page { phys: entry.addr().as_u64(), borrowed: entry.flags().contains(BORROWED) });
        } else {
            visit_level(entry.addr().as_u64(), level - 1, index, start, end, visit);
        }
    }
}

fn remove_level(node: u64, level: u32, base: u64, start: u64, end: u64, removed: &mut dyn FnMut(u64, Page)) {
    let shift = (level - 1) * FANOUT_BITS;
    let first = (start.max(base) - base) >> shift;
    let last = ((end - 1 - base) >> shift).min(511);
    for i in first..=last {
        let entry = &mut paging::table(node)[i as usize];
        if entry.is_unused() {
            continue;
        }
        let index = base + (i << shift);
        if level == 1 {
            let page = Page { phys: entry.addr().as_u64(), borrowed: entry.flags().contains(BORROWED) };
            entry.set_unused();
            removed(index, page);
        } else {
            remove_level(entry.addr().as_u64(), level - 1, index, start, end, removed);
        }
    }
}

fn free_nodes(node: u64, level: u32) {
    if level > 1 {
        for i in 0..512 {
            let entry = &paging::table(node)[i];
            if !entry.is_unused() {
                free_nodes(entry.addr().as_u64(), level - 1);
            }
        }
    }
    frame::free_frame(node);
}

impl Drop for PageList {
    /// Frees the nodes only: the owner removes (and frees) its pages first.
    fn drop(&mut self) {
        if self.root != 0 {
            free_nodes(self.root, self.levels);
        }
    }
}
