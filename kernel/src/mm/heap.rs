//! The kernel heap: size-class slabs for small objects, whole frames from
//! the buddy allocator for large ones. It grows a page at a time as classes
//! run dry; large blocks go straight back to the frame allocator.

use super::{frame, phys_to_virt, virt_to_phys_direct, PAGE_SIZE};
use crate::sync::IrqSpinlock;
use core::alloc::{GlobalAlloc, Layout};

/// Object sizes served from slabs; larger requests take whole frames.
const CLASSES: [usize; 8] = [16, 32, 64, 128, 256, 512, 1024, 2048];

struct Classes {
    /// Head of each class's free list (a free object's first word links to
    /// the next), as a direct-map address; 0 when empty.
    free: [usize; CLASSES.len()],
    /// Bytes handed out, for accounting.
    in_use: usize,
}

static HEAP: IrqSpinlock<Classes> = IrqSpinlock::new(Classes { free: [0; CLASSES.len()], in_use: 0 });

fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align());
    CLASSES.iter().position(|&c| c >= size)
}

struct KernelHeap;

// SAFETY: every block handed out is either a slab object of at least the
// requested size and alignment (classes are powers of two, carved from
// page-aligned frames, so each object is aligned to its size) or a run of
// whole frames; a block is owned by exactly one caller until `dealloc`.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if fault::should_fail_heap(layout.size()) {
            return core::ptr::null_mut();
        }
        let Some(class) = class_of(layout) else {
            let pages = (layout.size() as u64).div_ceil(PAGE_SIZE);
            let align_order = (layout.align() as u64 / PAGE_SIZE).max(1).trailing_zeros();
            return match frame::alloc_contiguous(pages, align_order) {
                Some(phys) => {
                    HEAP.lock().in_use += (pages * PAGE_SIZE) as usize;
                    phys_to_virt(phys) as *mut u8
                }
                None => core::ptr::null_mut(),
            };
        };
        let mut heap = HEAP.lock();
        if heap.free[class] == 0 {
            // Carve a fresh page into objects of this class.
            let Some(page) = frame::alloc_frame_uninjected() else { return core::ptr::null_mut() };
            let base = phys_to_virt(page) as usize;
            let size = CLASSES[class];
            let mut next = 0;
            for offset in (0..PAGE_SIZE as usize).step_by(size).rev() {
                let object = base + offset;
                // SAFETY: `object` lies in the frame just allocated for us.
                unsafe { (object as *mut usize).write(next) };
                next = object;
            }
            heap.free[class] = next;
        }
        let object = heap.free[class];
        // SAFETY: `object` heads the free list, so it is a free object of
        // this class whose first word holds the next link.
        heap.free[class] = unsafe { (object as *const usize).read() };
        heap.in_use += CLASSES[class];
        object as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            let pages = (layout.size() as u64).div_ceil(PAGE_SIZE);
            frame::free_contiguous(virt_to_phys_direct(ptr as u64), pages);
            HEAP.lock().in_use -= (pages * PAGE_SIZE) as usize;
            return;
        };
        let mut heap = HEAP.lock();
        // SAFETY: the caller returns a block it got from `alloc` with this
        // layout, so it is an object of this class that nobody uses now.
        unsafe { (ptr as *mut usize).write(heap.free[class]) };
        heap.free[class] = ptr as usize;
        heap.in_use -= CLASSES[class];
    }
}

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap;

/// Bytes currently allocated from the heap.
pub fn in_use() -> usize {
    HEAP.lock().in_use
}

/// Fault injection (`fault-inject` feature, `fault_inject=RATE` on the
/// command line): once [`fault::enable`] has run (when init starts, so boot
/// itself is never affected) heap and frame allocations fail at RATE per
/// mille, chosen by a deterministic generator (`fault_inject_seed=N`).
///
/// Allocations made while a thread resolves a page fault of its user code
/// never fail this way: that failure has no status to return, only a kill
/// of the process, and the runs are about what syscalls return.
///
/// Heap allocations under a page fail only with `fault_inject_heap=all`:
/// most are `Arc::new`/`Box::new` of kernel objects, which abort the kernel
/// on failure (stable Rust has no fallible form); frame allocations and
/// large heap blocks (message and copy buffers, `try_reserve`) always can.
pub mod fault {
    #[cfg(feature = "fault-inject")]
    use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    /// Failures per 1000 allocations; 0 is off.
    #[cfg(feature = "fault-inject")]
    static RATE: AtomicU32 = AtomicU32::new(0);
    /// The generator's state (splitmix64).
    #[cfg(feature = "fault-inject")]
    static STATE: AtomicU64 = AtomicU64::new(0);
    /// Failures injected so far.
    #[cfg(feature = "fault-inject")]
    static INJECTED: AtomicU64 = AtomicU64::new(0);

    /// Small heap allocations fail too (`fault_inject_heap=all`); by
    /// default only those of a page or more (frame-backed blocks).
    #[cfg(feature = "fault-inject")]
    static SMALL_TOO: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// Starts injecting at `rate` per mille with generator seed `seed`;
    /// `small_too`: heap allocations under a page as well.
    #[cfg(feature = "fault-inject")]
    pub fn enable(rate: u32, seed: u64, small_too: bool) {
        STATE.store(seed, Ordering::Relaxed);
        SMALL_TOO.store(small_too, Ordering::Relaxed);
        RATE.store(rate.min(1000), Ordering::Release);
    }

    /// Without the feature there is nothing to enable.
    #[cfg(not(feature = "fault-inject"))]
    pub fn enable(_rate: u32, _seed: u64, _small_too: bool) {}

    /// Whether a heap allocation of `size` bytes should fail. Small ones
    /// fail only with `fault_inject_heap=all`: most of them are `Arc::new`
    /// and `Box::new` of kernel objects, which abort on failure (stable
    /// Rust has no fallible form).
    #[inline]
    pub fn should_fail_heap(size: usize) -> bool {
        #[cfg(feature = "fault-inject")]
        if size < super::PAGE_SIZE as usize && !SMALL_TOO.load(Ordering::Relaxed) {
            return false;
        }
        #[cfg(not(feature = "fault-inject"))]
        let _ = size;
        should_fail()
    }

    /// Whether this allocation should fail.
    #[cfg(feature = "fault-inject")]
    #[inline]
    pub fn should_fail() -> bool {
        let rate = RATE.load(Ordering::Relaxed);
        if rate == 0 || crate::sched::fault_injection_exempt() {
            return false;
        }
        let mut z = STATE.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let fail = z % 1000 < u64::from(rate);
        if fail {
            INJECTED.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }

    /// Without the feature nothing fails.
    #[cfg(not(feature = "fault-inject"))]
    #[inline(always)]
    pub fn should_fail() -> bool {
        false
    }

    /// Failures injected so far.
    pub fn injected() -> u64 {
        #[cfg(feature = "fault-inject")]
        return INJECTED.load(Ordering::Relaxed);
        #[cfg(not(feature = "fault-inject"))]
        0
    }
}
