//! The physical frame allocator: a buddy allocator (`kcore::frame`) whose
//! free-list links live in the free frames, reached through the direct map.

use super::{phys_to_virt, PAGE_SIZE};
use crate::boot::MAX_REGIONS;
use crate::sync::IrqSpinlock;
use kcore::addr::Pfn;
use kcore::frame::{metadata_bytes, BuddyAllocator, FrameLinks, Link};
use kcore::memmap::{MemoryMap, RegionKind};

/// Hands out frames before the buddy allocator exists (for the page tables
/// and the buddy's own metadata): a bump pointer through the largest usable
/// range below 4 GiB, which both loaders' page tables map. What it hands out
/// is never freed.
pub struct EarlyAllocator {
    start: u64,
    next: u64,
    end: u64,
}

impl EarlyAllocator {
    pub fn new(map: &MemoryMap<MAX_REGIONS>) -> Self {
        let best = map
            .regions()
            .iter()
            .filter(|r| r.kind == RegionKind::Usable && r.start < (1 << 32))
            .map(|r| (r.start, r.end.min(1 << 32)))
            .max_by_key(|(start, end)| end - start);
        let Some((start, end)) = best else { panic!("mm: no usable memory below 4 GiB") };
        EarlyAllocator { start, next: start, end }
    }

    /// Allocates `count` zeroed, contiguous frames.
    pub fn alloc(&mut self, count: u64) -> u64 {
        let phys = self.next;
        let bytes = count * PAGE_SIZE;
        if self.end - self.next < bytes {
            panic!("mm: early allocator exhausted");
        }
        self.next += bytes;
        // SAFETY: the range is usable RAM nobody else owns (the bump pointer
        // just moved past it) and is mapped at `phys_to_virt` by the active
        // page tables (loader's below 4 GiB, or ours).
        unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, bytes as usize) };
        phys
    }

    /// `[start, end)` handed out so far.
    pub fn used(&self) -> (u64, u64) {
        (self.start, self.next)
    }
}

/// Reads and writes free-list links at the start of free frames.
struct DirectMapLinks;

impl FrameLinks for DirectMapLinks {
    fn read(&self, pfn: Pfn) -> Link {
        let ptr = phys_to_virt(pfn.0 * PAGE_SIZE) as *const [u64; 2];
        // SAFETY: the allocator only asks about frames it holds as free, which
        // are RAM in the direct map and used by nobody else.
        Link::from_raw(unsafe { ptr.read() })
    }

    fn write(&mut self, pfn: Pfn, link: Link) {
        let ptr = phys_to_virt(pfn.0 * PAGE_SIZE) as *mut [u64; 2];
        // SAFETY: as for `read`.
        unsafe { ptr.write(link.to_raw()) }
    }
}

static FRAMES: IrqSpinlock<Option<BuddyAllocator<'static>>> = IrqSpinlock::new(None);

/// Builds the buddy allocator over every usable range (except what the early
/// allocator took, which holds page tables for good).
pub fn init(map: &MemoryMap<MAX_REGIONS>, mut early: EarlyAllocator) {
    let end_pfn = map.ram_end().div_ceil(PAGE_SIZE);
    let meta_len = metadata_bytes(end_pfn);
    let meta_phys = early.alloc((meta_len as u64).div_ceil(PAGE_SIZE));
    // SAFETY: the early allocator just handed out (and zeroed) these frames;
    // they are never freed, so the slice may live for 'static.
    let meta = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(meta_phys) as *mut u8, meta_len) };
    let mut buddy = match BuddyAllocator::new(Pfn(0), end_pfn, meta) {
        Ok(buddy) => buddy,
        Err(e) => panic!("mm: frame allocator: {e:?}"),
    };
    let (used_start, used_end) = early.used();
    let mut links = DirectMapLinks;
    for region in map.regions().iter().filter(|r| r.kind == RegionKind::Usable) {
        // Split around the early allocator's range.
        let pieces = [(region.start, region.end.min(used_start)), (region.start.max(used_end), region.end)];
        for (start, end) in pieces {
            if end > start {
                if let Err(e) = buddy.add_free_range(&mut links, Pfn(start / PAGE_SIZE), (end - start) / PAGE_SIZE) {
                    panic!("mm: bad free range {start:#x}..{end:#x}: {e:?}");
                }
            }
        }
    }
    *FRAMES.lock() = Some(buddy);
}

/// Adds more RAM (e.g. the loader's reclaimable memory once unused).
pub fn add_free_range(start: u64, end: u64) {
    let mut frames = FRAMES.lock();
    if let Some(buddy) = frames.as_mut() {
        let first = start.div_ceil(PAGE_SIZE);
        let last = end / PAGE_SIZE;
        if last > first {
            if let Err(e) = buddy.add_free_range(&mut DirectMapLinks, Pfn(first), last - first) {
                log::warn!("mm: could not reclaim {start:#x}..{end:#x}: {e:?}");
            }
        }
    }
}

/// Allocates one frame; returns its physical address. The contents are stale.
pub fn alloc_frame() -> Option<u64> {
    if super::heap::fault::should_fail() {
        return None;
    }
    alloc_frame_uninjected()
}

/// [`alloc_frame`] that fault injection never fails: for the kernel heap's
/// slab pages, whose allocation `heap::fault::should_fail_heap` has already
/// decided on (small allocations fail only with `fault_inject_heap=all`).
pub(super) fn alloc_frame_uninjected() -> Option<u64> {
    FRAMES.lock().as_mut()?.alloc_frame(&mut DirectMapLinks).map(|pfn| pfn.0 * PAGE_SIZE)
}

/// Allocates one zeroed frame.
pub fn alloc_zeroed_frame() -> Option<u64> {
    let phys = alloc_frame()?;
    // SAFETY: the frame was just allocated for us and is RAM in the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, PAGE_SIZE as usize) };
    Some(phys)
}

/// Allocates one zeroed frame below physical address `limit` (rare: for
/// structures hardware reads through 32-bit addresses).
pub fn alloc_zeroed_frame_below(limit: u64) -> Option<u64> {
    if super::heap::fault::should_fail() {
        return None;
    }
    let pfn = FRAMES.lock().as_mut()?.alloc_below(&mut DirectMapLinks, 0, Pfn(limit / PAGE_SIZE))?;
    let phys = pfn.0 * PAGE_SIZE;
    // SAFETY: the frame was just allocated for us and is RAM in the direct map.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, PAGE_SIZE as usize) };
    Some(phys)
}

/// Allocates `count` contiguous frames aligned to `2^align_order` frames.
pub fn alloc_contiguous(count: u64, align_order: u32) -> Option<u64> {
    if super::heap::fault::should_fail() {
        return None;
    }
    FRAMES.lock().as_mut()?.alloc_contiguous(&mut DirectMapLinks, count, align_order).map(|pfn| pfn.0 * PAGE_SIZE)
}

/// Frees one frame. Freeing a frame that is not allocated is a kernel bug.
pub fn free_frame(phys: u64) {
    free_contiguous(phys, 1);
}

/// Frees `count` contiguous allocated frames.
pub fn free_contiguous(phys: u64, count: u64) {
    let mut frames = FRAMES.lock();
    if let Some(buddy) = frames.as_mut() {
        if let Err(e) = buddy.free_contiguous(&mut DirectMapLinks, Pfn(phys / PAGE_SIZE), count) {
            drop(frames);
            panic!("mm: bad free of {count} frames at {phys:#x}: {e:?}");
        }
    }
}

/// Frame counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub total_frames: u64,
    pub free_frames: u64,
}

pub fn stats() -> Stats {
    FRAMES
        .lock()
        .as_ref()
        .map(|b| Stats { total_frames: b.total_frames(), free_frames: b.free_frames() })
        .unwrap_or_default()
}
