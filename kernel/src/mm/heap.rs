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
            let Some(page) = frame::alloc_frame() else { return core::ptr::null_mut() };
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
