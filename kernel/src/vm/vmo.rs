//! Virtual memory objects: a byte size and lazily committed, zero-filled
//! pages (`mx_vmo_*`).
//!
//! Each operation makes the checks of `magenta-abi.md` §5.17 to §5.19 (and
//! of the pinned tree's `VmObjectPaged` for `op_range`) in the contract's
//! order, after the handle lookup, which is the caller's. Buffers are
//! kernel buffers: the syscall layer copies from and to user memory, never
//! while holding a VMO lock.
//!
//! A VMO knows which address spaces map it (a count per space, kept by the
//! mapping references themselves), so shrinking or decommitting can remove
//! the freed pages from every mapping before the frames are reused.

#![forbid(unsafe_code)]

use super::aspace::AddressSpace;
use super::pagelist::{Page, PageList};
use super::{COMMITTED_PAGES, LIVE_VMOS};
use crate::mm::{frame, paging, PAGE_SIZE};
use crate::sync::IrqSpinlock;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use mx_abi::{Status, VmoOp};

/// `ROUNDDOWN(UINT64_MAX, PAGE_SIZE)`: the largest VMO size.
pub const MAX_SIZE: u64 = !(PAGE_SIZE - 1);

/// Pages needed for `bytes`.
fn pages_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// Magenta's `TrimRange`: `len` cut to what lies below `size`; None when
/// `offset > size` or `offset + len` overflows.
fn trim_range(offset: u64, len: u64, size: u64) -> Option<u64> {
    if offset > size {
        return None;
    }
    if len == 0 {
        return Some(0);
    }
    let end = offset.checked_add(len)?;
    Some(end.min(size) - offset)
}

/// Magenta's `InRange`: `[offset, offset + len)` lies within `size`.
fn in_range(offset: u64, len: u64, size: u64) -> bool {
    offset.checked_add(len).is_some_and(|end| end <= size)
}

struct Inner {
    /// Size in bytes, exactly as set.
    size: u64,
    pages: PageList,
    /// Owned pages committed (borrowed ones are not counted).
    committed: u64,
    /// Address spaces holding mapping pieces of this VMO, with how many.
    mappings: Vec<(Weak<AddressSpace>, usize)>,
}

/// A virtual memory object.
pub struct Vmo {
    inner: IrqSpinlock<Inner>,
    /// Created over existing read-only memory (boot modules, the vDSO).
    read_only: bool,
    /// `(offset, len)` of the vDSO code segment, for the vDSO's VMO.
    vdso_code: spin::Once<(u64, u64)>,
    /// Holders (guests) that map its pages where `unmap_everywhere` cannot
    /// reach: while pinned, no page may be freed (shrink, decommit).
    pins: AtomicU32,
}

impl core::fmt::Debug for Vmo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vmo").field("size", &self.size()).field("read_only", &self.read_only).finish()
    }
}

impl Vmo {
    fn with(size: u64, read_only: bool) -> Vmo {
        LIVE_VMOS.fetch_add(1, Ordering::Relaxed);
        Vmo {
            inner: IrqSpinlock::new(Inner { size, pages: PageList::new(), committed: 0, mappings: Vec::new() }),
            read_only,
            vdso_code: spin::Once::new(),
            pins: AtomicU32::new(0),
        }
    }

    /// `mx_vmo_create` after its option and policy checks: a VMO of `size`
    /// bytes with no pages committed. `INVALID_ARGS` if `size` exceeds
    /// `ROUNDDOWN(UINT64_MAX, 4096)`.
    pub fn create(size: u64) -> Result<Arc<Vmo>, Status> {
        if size > MAX_SIZE {
            return Err(Status::InvalidArgs);
        }
        Ok(Arc::new(Vmo::with(size, false)))
    }

    /// A read-only VMO over `len` bytes of existing RAM at `phys` (a boot
    /// module, the vDSO image), which must stay allocated for good and is
    /// never freed by the VMO. A partial last page is copied into a fresh
    /// zeroed frame, so mapping it never exposes the bytes after the end.
    /// `INVALID_ARGS` if `phys` is not page aligned or the range wraps;
    /// `NO_MEMORY` if the page list or the tail copy cannot be allocated.
    pub fn from_physical(phys: u64, len: u64) -> Result<Arc<Vmo>, Status> {
        if !phys.is_multiple_of(PAGE_SIZE) || phys.checked_add(len).is_none() || len > MAX_SIZE {
            return Err(Status::InvalidArgs);
        }
        let vmo = Arc::new(Vmo::with(len, true));
        {
            let mut inner = vmo.inner.lock();
            let whole = len / PAGE_SIZE;
            for index in 0..whole {
                let page = Page { phys: phys + index * PAGE_SIZE, borrowed: true };
                inner.pages.insert(index, page).map_err(|()| Status::NoMemory)?;
            }
            let tail = (len % PAGE_SIZE) as usize;
            if tail != 0 {
                let copy = frame::alloc_zeroed_frame().ok_or(Status::NoMemory)?;
                let mut bytes = [0u8; 256];
                let src = phys + whole * PAGE_SIZE;
                for at in (0..tail).step_by(bytes.len()) {
                    let n = bytes.len().min(tail - at);
                    paging::copy_from_frame(src, at, &mut bytes[..n]);
                    paging::copy_to_frame(copy, at, &bytes[..n]);
                }
                if inner.pages.insert(whole, Page { phys: copy, borrowed: false }).is_err() {
                    frame::free_frame(copy);
                    return Err(Status::NoMemory);
                }
                inner.committed += 1;
                COMMITTED_PAGES.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(vmo)
    }

    /// Marks `[offset, offset + len)` as the vDSO's code segment: mapping
    /// this VMO executable is then allowed only for exactly that range, once
    /// per address space, and the mapping can never be unmapped, protected
    /// or overwritten (`magenta-abi.md` §2.3). Set once; later calls are
    /// ignored.
    pub fn set_vdso_code_range(&self, offset: u64, len: u64) {
        self.vdso_code.call_once(|| (offset, len));
    }

    /// The vDSO code range, for the vDSO's VMO.
    pub fn vdso_code_range(&self) -> Option<(u64, u64)> {
        self.vdso_code.get().copied()
    }

    /// Whether the VMO was created over existing read-only memory.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// `mx_vmo_get_size`: the size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.lock().size
    }

    /// Bytes of pages committed to this VMO (owned pages only).
    pub fn committed_bytes(&self) -> u64 {
        self.inner.lock().committed * PAGE_SIZE
    }

    /// `mx_vmo_read` after the lookup: copies from `offset` into `buf`,
    /// trimmed to the size, and returns the bytes moved. Uncommitted pages
    /// read as zeros (nothing is committed). `OUT_OF_RANGE` if `offset >
    /// size` or `offset + buf.len()` overflows.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Status> {
        let inner = self.inner.lock();
        let len = trim_range(offset, buf.len() as u64, inner.size).ok_or(Status::OutOfRange)? as usize;
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let in_page = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(len - done);
            let dst = &mut buf[done..done + n];
            match inner.pages.get(at / PAGE_SIZE) {
                Some(page) => paging::copy_from_frame(page.phys, in_page, dst),
                None => dst.fill(0),
            }
            done += n;
        }
        Ok(len)
    }

    /// `mx_vmo_write` after the lookup: copies `buf` to `offset`, trimmed to
    /// the size, committing pages as needed, and returns the bytes moved.
    /// `OUT_OF_RANGE` as for [`Vmo::read`]; `NO_MEMORY` if a page cannot be
    /// committed (what was written before stays); `ACCESS_DENIED` for a
    /// read-only VMO.
    pub fn write(&self, offset: u64, buf: &[u8]) -> Result<usize, Status> {
        let mut inner = self.inner.lock();
        let len = trim_range(offset, buf.len() as u64, inner.size).ok_or(Status::OutOfRange)? as usize;
        if self.read_only && len > 0 {
            return Err(Status::AccessDenied);
        }
        let mut done = 0;
        while done < len {
            let at = offset + done as u64;
            let in_page = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(len - done);
            let page = commit_locked(&mut inner, at / PAGE_SIZE)?;
            paging::copy_to_frame(page.phys, in_page, &buf[done..done + n]);
            done += n;
        }
        Ok(len)
    }

    /// Pins the VMO: until [`Vmo::unpin`], shrinking it or decommitting
    /// pages fails with `BAD_STATE`. A guest's physical memory is pinned,
    /// because its nested page tables map the pages directly.
    pub fn pin(&self) {
        self.pins.fetch_add(1, Ordering::AcqRel);
    }

    /// Undoes one [`Vmo::pin`].
    pub fn unpin(&self) {
        self.pins.fetch_sub(1, Ordering::AcqRel);
    }

    fn is_pinned(&self) -> bool {
        self.pins.load(Ordering::Acquire) != 0
    }

    /// The frame backing page `index`, committed (zero-filled) if needed,
    /// for a guest's nested page tables (the VMO must be pinned).
    /// `OUT_OF_RANGE` past the end, `NO_MEMORY` when no frame is left.
    pub fn guest_page(&self, index: u64) -> Result<u64, Status> {
        debug_assert!(self.is_pinned());
        self.commit_page(index)
    }

    /// `mx_vmo_set_size` after the lookup. Shrinking frees the whole pages
    /// past the new end and first removes them from every mapping.
    /// `BAD_STATE` when shrinking a pinned VMO (see [`Vmo::pin`]).
    /// `OUT_OF_RANGE` if `size > ROUNDDOWN(UINT64_MAX, 4096)`;
    /// `NOT_SUPPORTED` for a read-only VMO (no pins exist, so never
    /// `BAD_STATE`; growing allocates nothing, so never `NO_MEMORY`).
    pub fn set_size(&self, size: u64) -> Result<(), Status> {
        if size > MAX_SIZE {
            return Err(Status::OutOfRange);
        }
        if self.read_only {
            return Err(Status::NotSupported);
        }
        let (freed, spaces, range) = {
            let mut inner = self.inner.lock();
            let (old, new) = (pages_for(inner.size), pages_for(size));
            if new < old && self.is_pinned() {
                return Err(Status::BadState);
            }
            if new >= old {
                inner.size = size;
                return Ok(());
            }
            let spaces = live_spaces(&inner)?;
            let freed = take_pages_locked(&mut inner, new, old)?;
            inner.size = size;
            (freed, spaces, (new, old))
        };
        self.unmap_everywhere(&spaces, range.0, range.1);
        free_pages(freed);
        Ok(())
    }

    /// `mx_vmo_op_range` after the lookup (the pinned tree checks no rights
    /// here). Returns the physical addresses for `LOOKUP` (the caller copies
    /// them to the user buffer, whose NULL check is the caller's and comes
    /// first), nothing for the other ops.
    ///
    /// - `COMMIT`: `OUT_OF_RANGE` if `offset > size` or the end overflows;
    ///   commits every page the trimmed range touches, all or nothing
    ///   (`NO_MEMORY`).
    /// - `DECOMMIT`: same range rule; frees every page the trimmed range
    ///   touches (rounded outwards) after unmapping it everywhere.
    ///   `NOT_SUPPORTED` for a read-only VMO.
    /// - `LOCK`, `UNLOCK`: `NOT_SUPPORTED`, as in the pinned tree.
    /// - `LOOKUP`: `BUFFER_TOO_SMALL` if `buffer_size` cannot hold one
    ///   address per page touched; `INVALID_ARGS` if `size == 0`;
    ///   `OUT_OF_RANGE` if the range is not inside the VMO; `NO_MEMORY` if a
    ///   page is not committed (the pinned tree's status for that case).
    /// - `CACHE_SYNC`, `CACHE_INVALIDATE`, `CACHE_CLEAN`,
    ///   `CACHE_CLEAN_INVALIDATE`: `INVALID_ARGS` if `size == 0`,
    ///   `OUT_OF_RANGE` if not inside the VMO; otherwise nothing to do
    ///   (x86 caches are coherent with DMA).
    /// - Any other op: `INVALID_ARGS`.
    pub fn op_range(&self, op: u32, offset: u64, size: u64, buffer_size: usize) -> Result<Vec<u64>, Status> {
        let op = VmoOp::ALL.iter().copied().find(|o| *o as u32 == op).ok_or(Status::InvalidArgs)?;
        match op {
            VmoOp::Commit => self.commit_range(offset, size).map(|()| Vec::new()),
            VmoOp::Decommit => self.decommit_range(offset, size).map(|()| Vec::new()),
            VmoOp::Lock | VmoOp::Unlock => Err(Status::NotSupported),
            VmoOp::Lookup => self.lookup(offset, size, buffer_size),
            VmoOp::CacheSync | VmoOp::CacheInvalidate | VmoOp::CacheClean | VmoOp::CacheCleanInvalidate => {
                if size == 0 {
                    return Err(Status::InvalidArgs);
                }
                if !in_range(offset, size, self.size()) {
                    return Err(Status::OutOfRange);
                }
                Ok(Vec::new())
            }
        }
    }

    fn commit_range(&self, offset: u64, len: u64) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        let len = trim_range(offset, len, inner.size).ok_or(Status::OutOfRange)?;
        if len == 0 {
            return Ok(());
        }
        let (first, end) = (offset / PAGE_SIZE, pages_for(offset + len));
        commit_range_locked(&mut inner, first, end)
    }

    fn decommit_range(&self, offset: u64, len: u64) -> Result<(), Status> {
        if self.read_only {
            return Err(Status::NotSupported);
        }
        if self.is_pinned() {
            return Err(Status::BadState);
        }
        let (freed, spaces, first, end) = {
            let mut inner = self.inner.lock();
            let len = trim_range(offset, len, inner.size).ok_or(Status::OutOfRange)?;
            if len == 0 {
                return Ok(());
            }
            let (first, end) = (offset / PAGE_SIZE, pages_for(offset + len));
            let spaces = live_spaces(&inner)?;
            (take_pages_locked(&mut inner, first, end)?, spaces, first, end)
        };
        self.unmap_everywhere(&spaces, first, end);
        free_pages(freed);
        Ok(())
    }

    fn lookup(&self, offset: u64, len: u64, buffer_size: usize) -> Result<Vec<u64>, Status> {
        // The table-size check comes first in the pinned tree; a range whose
        // end overflows cannot fit any buffer.
        let first = offset / PAGE_SIZE;
        let end = offset.checked_add(len).map(pages_for).ok_or(Status::BufferTooSmall)?;
        let needed = (end - first).checked_mul(8).ok_or(Status::BufferTooSmall)?;
        if needed > buffer_size as u64 {
            return Err(Status::BufferTooSmall);
        }
        if len == 0 {
            return Err(Status::InvalidArgs);
        }
        let inner = self.inner.lock();
        if !in_range(offset, len, inner.size) {
            return Err(Status::OutOfRange);
        }
        let mut out = Vec::new();
        out.try_reserve_exact((end - first) as usize).map_err(|_| Status::NoMemory)?;
        for index in first..end {
            out.push(inner.pages.get(index).ok_or(Status::NoMemory)?.phys);
        }
        Ok(out)
    }

    /// The frame holding page `index`, committing a zeroed one if needed
    /// (the page-fault and `MAP_RANGE` paths). `OUT_OF_RANGE` past the end,
    /// `NO_MEMORY` when no frame is left. Allocates frames only.
    pub(super) fn commit_page(&self, index: u64) -> Result<u64, Status> {
        let mut inner = self.inner.lock();
        if index >= pages_for(inner.size) {
            return Err(Status::OutOfRange);
        }
        commit_locked(&mut inner, index).map(|p| p.phys)
    }

    /// Commits pages `[first, end)` clipped to the size, all or nothing.
    pub(super) fn commit_pages(&self, first: u64, end: u64) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        let end = end.min(pages_for(inner.size));
        if first >= end {
            return Ok(());
        }
        commit_range_locked(&mut inner, first, end)
    }

    /// The committed pages in `[first, end)`, for mapping them.
    pub(super) fn committed_in(&self, first: u64, end: u64, visit: &mut dyn FnMut(u64, u64)) {
        self.inner.lock().pages.for_each(first, end, &mut |index, page| visit(index, page.phys));
    }

    /// Records one more mapping piece of this VMO in `space`.
    pub(super) fn add_mapping(&self, space: &Weak<AddressSpace>) {
        let mut inner = self.inner.lock();
        match inner.mappings.iter_mut().find(|(s, _)| s.ptr_eq(space)) {
            Some((_, count)) => *count += 1,
            None => inner.mappings.push((space.clone(), 1)),
        }
    }

    /// Forgets one mapping piece of this VMO in `space`.
    pub(super) fn remove_mapping(&self, space: &Weak<AddressSpace>) {
        let mut inner = self.inner.lock();
        if let Some(at) = inner.mappings.iter().position(|(s, _)| s.ptr_eq(space)) {
            inner.mappings[at].1 -= 1;
            if inner.mappings[at].1 == 0 {
                inner.mappings.swap_remove(at);
            }
        }
    }

    /// How many address spaces map this VMO.
    pub fn mapping_spaces(&self) -> usize {
        self.inner.lock().mappings.len()
    }

    /// Unmaps VMO pages `[first, end)` from every address space in
    /// `spaces`, each with its own shootdown, before the caller frees them.
    fn unmap_everywhere(&self, spaces: &[Arc<AddressSpace>], first: u64, end: u64) {
        for space in spaces {
            space.unmap_vmo_pages(self, first, end);
        }
    }
}

/// The page at `index`, committed (zero-filled) if absent.
fn commit_locked(inner: &mut Inner, index: u64) -> Result<Page, Status> {
    if let Some(page) = inner.pages.get(index) {
        return Ok(page);
    }
    let phys = frame::alloc_zeroed_frame().ok_or(Status::NoMemory)?;
    let page = Page { phys, borrowed: false };
    if inner.pages.insert(index, page).is_err() {
        frame::free_frame(phys);
        return Err(Status::NoMemory);
    }
    inner.committed += 1;
    COMMITTED_PAGES.fetch_add(1, Ordering::Relaxed);
    Ok(page)
}

/// Commits every absent page in `[first, end)`: the frames are allocated
/// first, so running out changes nothing.
fn commit_range_locked(inner: &mut Inner, first: u64, end: u64) -> Result<(), Status> {
    let mut present = 0u64;
    inner.pages.for_each(first, end, &mut |_, _| present += 1);
    let missing = end - first - present;
    if missing == 0 {
        return Ok(());
    }
    let mut frames: Vec<u64> = Vec::new();
    frames.try_reserve_exact(missing as usize).map_err(|_| Status::NoMemory)?;
    for _ in 0..missing {
        match frame::alloc_zeroed_frame() {
            Some(phys) => frames.push(phys),
            None => {
                frames.into_iter().for_each(frame::free_frame);
                return Err(Status::NoMemory);
            }
        }
    }
    for index in first..end {
        if inner.pages.get(index).is_some() {
            continue;
        }
        let Some(phys) = frames.pop() else { break };
        if inner.pages.insert(index, Page { phys, borrowed: false }).is_err() {
            // A page-list node could not be allocated: keep what is in.
            frame::free_frame(phys);
            frames.into_iter().for_each(frame::free_frame);
            return Err(Status::NoMemory);
        }
        inner.committed += 1;
        COMMITTED_PAGES.fetch_add(1, Ordering::Relaxed);
    }
    debug_assert!(frames.is_empty());
    Ok(())
}

/// Removes pages `[first, end)` from the list and returns the owned frames
/// (to be freed once no mapping reaches them any more). `NO_MEMORY`, with
/// nothing removed, if the list of frames cannot be had.
fn take_pages_locked(inner: &mut Inner, first: u64, end: u64) -> Result<Vec<u64>, Status> {
    let mut freed = Vec::new();
    // Never more frames than the VMO owns: with room for all of them
    // reserved up front, the removal below cannot fail half way.
    let owned_pages = usize::try_from(inner.committed).map_err(|_| Status::NoMemory)?;
    freed.try_reserve_exact(owned_pages).map_err(|_| Status::NoMemory)?;
    let mut owned = 0;
    inner.pages.remove_range(first, end, &mut |_, page| {
        if !page.borrowed {
            owned += 1;
            freed.push(page.phys);
        }
    });
    inner.committed -= owned;
    COMMITTED_PAGES.fetch_sub(owned, Ordering::Relaxed);
    Ok(freed)
}

fn live_spaces(inner: &Inner) -> Result<Vec<Arc<AddressSpace>>, Status> {
    let mut spaces = Vec::new();
    spaces.try_reserve_exact(inner.mappings.len()).map_err(|_| Status::NoMemory)?;
    spaces.extend(inner.mappings.iter().filter_map(|(s, _)| s.upgrade()));
    Ok(spaces)
}

fn free_pages(frames: Vec<u64>) {
    frames.into_iter().for_each(frame::free_frame);
}

impl Drop for Vmo {
    fn drop(&mut self) {
        // No mapping remains (each holds a reference), so no TLB can reach
        // the pages: they are freed as they leave the list, with no list of
        // them to allocate.
        let mut inner = self.inner.lock();
        let mut owned = 0;
        inner.pages.remove_range(0, u64::MAX, &mut |_, page| {
            if !page.borrowed {
                owned += 1;
                frame::free_frame(page.phys);
            }
        });
        inner.committed -= owned;
        COMMITTED_PAGES.fetch_sub(owned, Ordering::Relaxed);
        LIVE_VMOS.fetch_sub(1, Ordering::Relaxed);
    }
}
