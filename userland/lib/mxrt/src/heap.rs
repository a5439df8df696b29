//! The heap: the global allocator of Rust programs.
//!
//! Requests up to 4 KiB come from power-of-two size classes (16 B to 4 KiB):
//! a free list per class, refilled from 256 KiB chunks. Chunks are carved
//! from one 64 MiB arena VMO, committed only as it is touched, so a growing
//! heap adds pages but no VMOs (long-lived services do not change the
//! kernel's VMO count as they grow); only when the arena is used up (or
//! cannot be made) does a chunk get a VMO of its own. Larger requests get
//! their own VMO mapping, unmapped when freed. Memory is a VMO mapped R+W in
//! the root VMAR (`mx_vmo_create` + `mx_vmar_map`). Before [`init`] (no root
//! VMAR) every allocation fails.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use mx::sys;
use mx_abi::{VmFlags, HANDLE_INVALID};

use crate::Lock;

const MIN_CLASS: usize = 4; // 16 bytes
const CLASSES: usize = 9; // 16 .. 4096
const MAX_SMALL: usize = 1 << (MIN_CLASS + CLASSES - 1);
const CHUNK: usize = 256 * 1024;
const ARENA: usize = 64 * 1024 * 1024;
const PAGE: usize = mx::PAGE_SIZE;

/// The root VMAR's raw handle (owned by the startup code, never closed).
static VMAR: AtomicU32 = AtomicU32::new(HANDLE_INVALID);

struct Pools {
    /// Head of each class's free list (0 = empty); a free block holds the next.
    free: [usize; CLASSES],
    /// The unused rest of the current chunk.
    next: usize,
    end: usize,
    /// The arena's uncarved rest; `arena_end == 0` before it is made,
    /// `usize::MAX` once making it failed (not tried again).
    arena_next: usize,
    arena_end: usize,
}

static POOLS: Lock<Pools> = Lock::new(Pools { free: [0; CLASSES], next: 0, end: 0, arena_next: 0, arena_end: 0 });

/// Starts the heap on the root VMAR `vmar` (a raw handle the caller keeps open).
pub(crate) fn init(vmar: u32) {
    VMAR.store(vmar, Ordering::Relaxed);
}

/// Maps `len` (a page multiple) fresh zeroed bytes; 0 on failure.
fn map(len: usize) -> usize {
    let vmar = VMAR.load(Ordering::Relaxed);
    if vmar == HANDLE_INVALID {
        return 0;
    }
    let mut vmo = HANDLE_INVALID;
    // SAFETY: `vmo` is a valid out-pointer.
    if unsafe { sys::mx_vmo_create(len as u64, 0, &mut vmo) } != 0 {
        return 0;
    }
    let mut addr = 0usize;
    let flags = (VmFlags::PERM_READ | VmFlags::PERM_WRITE).bits();
    // SAFETY: `addr` is a valid out-pointer; the mapping keeps the VMO alive after its handle closes.
    let status = unsafe { sys::mx_vmar_map(vmar, 0, vmo, 0, len, flags, &mut addr) };
    // SAFETY: no pointers.
    let _ = unsafe { sys::mx_handle_close(vmo) };
    if status == 0 {
        addr
    } else {
        0
    }
}

/// A fresh chunk: from the arena while it lasts, else a mapping of its own.
fn new_chunk(p: &mut Pools) -> usize {
    if p.arena_end == 0 {
        let arena = map(ARENA);
        (p.arena_next, p.arena_end) = if arena == 0 { (usize::MAX, usize::MAX) } else { (arena, arena + ARENA) };
    }
    if p.arena_end != usize::MAX && p.arena_end - p.arena_next >= CHUNK {
        let chunk = p.arena_next;
        p.arena_next += CHUNK;
        return chunk;
    }
    map(CHUNK)
}

fn class_of(layout: &Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_CLASS);
    (size <= MAX_SMALL).then(|| size.next_power_of_two().trailing_zeros() as usize - MIN_CLASS)
}

/// The runtime's allocator.
pub struct Heap;

// SAFETY: blocks are handed out once until freed: a block is either on a free
// list, in the unused chunk tail, or owned by one caller; size classes are
// powers of two carved at aligned offsets of page-aligned chunks, so every
// block is aligned to its class size (>= the layout's alignment).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(&layout) else {
            if layout.align() > PAGE {
                return ptr::null_mut();
            }
            return layout.size().checked_next_multiple_of(PAGE).map_or(0, map) as *mut u8;
        };
        let size = 1usize << (class + MIN_CLASS);
        POOLS
            .with(true, |p| {
                let head = p.free[class];
                if head != 0 {
                    // SAFETY: a free block's first word holds the next free block.
                    p.free[class] = unsafe { *(head as *const usize) };
                    return head;
                }
                let mut at = p.next.next_multiple_of(size);
                if p.next == 0 || at + size > p.end {
                    let chunk = new_chunk(p);
                    if chunk == 0 {
                        return 0;
                    }
                    (p.next, p.end) = (chunk, chunk + CHUNK);
                    at = chunk;
                }
                p.next = at + size;
                at
            })
            .unwrap_or(0) as *mut u8
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is the same.
        let block = unsafe { self.alloc(layout) };
        // A large block is a fresh VMO mapping, zero already: clearing it
        // would only commit every page (and with the kernel out of frames, a
        // fault there kills the process where a later write could fail
        // softly, e.g. a channel read into it).
        if !block.is_null() && class_of(&layout).is_some() {
            // SAFETY: `block` holds `layout.size()` writable bytes.
            unsafe { ptr::write_bytes(block, 0, layout.size()) };
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(&layout) else {
            let len = layout.size().next_multiple_of(PAGE);
            // SAFETY: the block was a mapping of its own of `len` bytes and the caller is done with it.
            let _ = unsafe { sys::mx_vmar_unmap(VMAR.load(Ordering::Relaxed), block as usize, len) };
            return;
        };
        POOLS.with(true, |p| {
            // SAFETY: the block is at least 16 bytes, aligned, and no longer used by the caller.
            unsafe { *(block as *mut usize) = p.free[class] };
            p.free[class] = block as usize;
        });
    }
}

#[cfg(target_os = "none")]
#[global_allocator]
static HEAP: Heap = Heap;
