//! Buddy allocator for physical page frames.
//!
//! # Design
//!
//! The allocator manages a contiguous *span* of frame numbers
//! `[base, base + frame_count)`. Holes in the span (MMIO, firmware, the kernel
//! image) simply stay *reserved*; only ranges handed over with
//! [`BuddyAllocator::add_free_range`] are ever allocated.
//!
//! Free memory is kept as blocks of `2^order` frames, `order` in
//! `0..=MAX_ORDER`. A block of order `k` always starts at a frame number that
//! is a multiple of `2^k` (aligned in *physical* terms, so an order-9 block is
//! a usable 2 MiB huge page) and lies entirely inside the span.
//!
//! ## Where the state lives
//!
//! * **Metadata** — one byte per frame of the span, in a caller-provided slice
//!   ([`metadata_bytes`] tells how big). This is the single source of truth:
//!   whether a frame is reserved, allocated, the head of a free block (and of
//!   which order), or inside a free block.
//! * **Free lists** — one intrusive doubly-linked list per order, whose links
//!   are stored *inside the free frames themselves* and reached through the
//!   [`FrameLinks`] trait (the kernel implements it through its direct map).
//!
//! The allocator reads links only of frames that the metadata says are free
//! block heads, so the contents of allocated frames (user data) are never
//! interpreted. Links are still only a cache of what the metadata says: each
//! list operation cross-checks the links it touches against the metadata, and
//! if they disagree (say, a use-after-free scribbled over a free frame) the
//! lists are rebuilt from the metadata instead of trusting the damage. See
//! [`BuddyAllocator::link_repairs`].
//!
//! ## Costs
//!
//! * `alloc_frame` / `free_frame`: `O(MAX_ORDER)` worst case (splitting or
//!   coalescing), `O(1)` when a frame of the right order is at hand.
//! * `alloc(order)` / `free(order)`: `O(MAX_ORDER + 2^order)`; the per-frame
//!   term is the metadata update, far cheaper than zeroing the memory.
//! * `add_free_range` / `free_contiguous`: `O(count)`.
//!
//! ## Error handling
//!
//! Freeing something that is not currently allocated (double free, a reserved
//! frame, a frame outside the span, a misaligned block) is reported as a
//! [`FrameError`] and leaves the allocator untouched.

use crate::addr::Pfn;

/// Largest block order: blocks are at most `2^MAX_ORDER` frames (4 MiB).
pub const MAX_ORDER: u32 = 10;

const ORDERS: usize = MAX_ORDER as usize + 1;

/// Bytes of metadata [`BuddyAllocator::new`] needs to manage `frame_count`
/// frames: one per frame.
pub const fn metadata_bytes(frame_count: u64) -> usize {
    frame_count as usize
}

/// Frames in a block of `order`.
pub const fn order_frames(order: u32) -> u64 {
    1 << order
}

/// Smallest order whose block holds at least `count` frames, if any order up
/// to [`MAX_ORDER`] does. `count == 0` gives order 0.
pub const fn order_for(count: u64) -> Option<u32> {
    if count > order_frames(MAX_ORDER) {
        return None;
    }
    // ceil(log2(count)); count - 1 saturates so that 0 and 1 both map to 0.
    Some(u64::BITS - count.saturating_sub(1).leading_zeros())
}

/// Free-list links stored inside a free frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Link {
    pub prev: Option<Pfn>,
    pub next: Option<Pfn>,
}

/// Raw encoding of "no link" in [`Link::to_raw`]: no real frame has this number.
const NO_LINK: u64 = u64::MAX;

impl Link {
    /// Encodes the link as two words, convenient for storing in a frame.
    pub const fn to_raw(self) -> [u64; 2] {
        [Self::encode(self.prev), Self::encode(self.next)]
    }

    /// Inverse of [`Link::to_raw`]. Any bit pattern decodes to *some* link;
    /// the allocator validates links before following them.
    pub const fn from_raw(raw: [u64; 2]) -> Self {
        Self { prev: Self::decode(raw[0]), next: Self::decode(raw[1]) }
    }

    const fn encode(pfn: Option<Pfn>) -> u64 {
        match pfn {
            Some(p) => p.0,
            None => NO_LINK,
        }
    }

    const fn decode(raw: u64) -> Option<Pfn> {
        if raw == NO_LINK {
            None
        } else {
            Some(Pfn(raw))
        }
    }
}

/// Access to the free-list links kept inside free frames.
///
/// The allocator calls these only for frames that are currently free; the
/// kernel implements them by reading/writing the start of the frame through
/// its direct map (e.g. storing [`Link::to_raw`]).
pub trait FrameLinks {
    fn read(&self, pfn: Pfn) -> Link;
    fn write(&mut self, pfn: Pfn, link: Link);
}

/// Why a request was refused. The allocator is unchanged when one is returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameError {
    /// The metadata slice is shorter than [`metadata_bytes`] requires.
    MetadataTooSmall { needed: usize, got: usize },
    /// `base + frame_count` overflows.
    SpanOverflow,
    /// `order` is above [`MAX_ORDER`].
    InvalidOrder(u32),
    /// The frame number is not a multiple of `2^order`.
    Misaligned(Pfn),
    /// Some frame of the range lies outside the managed span.
    OutOfRange(Pfn),
    /// Freeing a frame that is not allocated (double free, or never allocated).
    NotAllocated(Pfn),
    /// Adding a frame that was already handed to the allocator.
    NotReserved(Pfn),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::MetadataTooSmall { needed, got } => {
                write!(f, "frame metadata too small: need {needed} bytes, got {got}")
            }
            Self::SpanOverflow => write!(f, "frame span overflows"),
            Self::InvalidOrder(o) => write!(f, "block order {o} above maximum {MAX_ORDER}"),
            Self::Misaligned(p) => write!(f, "frame {p} misaligned for its order"),
            Self::OutOfRange(p) => write!(f, "frame {p} outside the managed span"),
            Self::NotAllocated(p) => write!(f, "frame {p} is not allocated"),
            Self::NotReserved(p) => write!(f, "frame {p} already managed by the allocator"),
        }
    }
}

/// State of one frame, as recorded in the metadata.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameState {
    /// Not part of the span.
    OutOfRange,
    /// Never handed to the allocator (hole, firmware, kernel image...).
    Reserved,
    /// Handed out by the allocator.
    Allocated,
    /// Inside a free block.
    Free,
}

// Metadata byte encoding. Exactly one of these states per frame.
const META_RESERVED: u8 = 0x00;
const META_ALLOCATED: u8 = 0x20;
/// Inside a free block, but not its first frame.
const META_FREE_BODY: u8 = 0x40;
/// First frame of a free block; the low bits hold the block's order.
const META_FREE_HEAD: u8 = 0x80;
const META_ORDER_MASK: u8 = 0x0f;

const fn free_head(order: u32) -> u8 {
    META_FREE_HEAD | (order as u8 & META_ORDER_MASK)
}

/// The links in memory disagree with the metadata.
struct Corrupt;

/// Buddy allocator over the frames `[base, base + frame_count)`.
pub struct BuddyAllocator<'a> {
    base: u64,
    end: u64,
    /// Exactly one byte per frame of the span.
    meta: &'a mut [u8],
    heads: [Option<Pfn>; ORDERS],
    /// Number of blocks in each free list.
    blocks: [u64; ORDERS],
    /// Bit `k` set iff free list `k` is non-empty: finds a block in one step.
    nonempty: u32,
    free_frames: u64,
    total_frames: u64,
    link_repairs: u64,
}

impl core::fmt::Debug for BuddyAllocator<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BuddyAllocator")
            .field("base", &Pfn(self.base))
            .field("end", &Pfn(self.end))
            .field("free_frames", &self.free_frames)
            .field("total_frames", &self.total_frames)
            .field("free_blocks", &self.blocks)
            .field("link_repairs", &self.link_repairs)
            .finish()
    }
}

impl<'a> BuddyAllocator<'a> {
    /// Creates an allocator for the span `[base, base + frame_count)` with
    /// every frame reserved. `meta` must hold at least
    /// [`metadata_bytes`]`(frame_count)` bytes; it is overwritten.
    pub fn new(base: Pfn, frame_count: u64, meta: &'a mut [u8]) -> Result<Self, FrameError> {
        let end = base.0.checked_add(frame_count).ok_or(FrameError::SpanOverflow)?;
        let needed = metadata_bytes(frame_count);
        let got = meta.len();
        let meta = meta.get_mut(..needed).ok_or(FrameError::MetadataTooSmall { needed, got })?;
        meta.fill(META_RESERVED);
        Ok(Self {
            base: base.0,
            end,
            meta,
            heads: [None; ORDERS],
            blocks: [0; ORDERS],
            nonempty: 0,
            free_frames: 0,
            total_frames: 0,
            link_repairs: 0,
        })
    }

    /// First frame of the span.
    pub fn base(&self) -> Pfn {
        Pfn(self.base)
    }

    /// One past the last frame of the span.
    pub fn end(&self) -> Pfn {
        Pfn(self.end)
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free_frames
    }

    /// Frames ever handed over with [`Self::add_free_range`] (free or allocated).
    pub fn total_frames(&self) -> u64 {
        self.total_frames
    }

    /// Number of free blocks of exactly `order` (0 for an invalid order).
    pub fn free_blocks(&self, order: u32) -> u64 {
        self.blocks.get(order as usize).copied().unwrap_or(0)
    }

    /// Order of the largest free block, if any memory is free.
    pub fn largest_free_order(&self) -> Option<u32> {
        (self.nonempty != 0).then(|| u32::BITS - 1 - self.nonempty.leading_zeros())
    }

    /// How many times the free lists were found inconsistent with the
    /// metadata and rebuilt. Non-zero means something wrote into free memory.
    pub fn link_repairs(&self) -> u64 {
        self.link_repairs
    }

    /// State of one frame.
    pub fn frame_state(&self, pfn: Pfn) -> FrameState {
        match self.index(pfn).map(|i| self.meta[i]) {
            None => FrameState::OutOfRange,
            Some(META_RESERVED) => FrameState::Reserved,
            Some(META_ALLOCATED) => FrameState::Allocated,
            Some(_) => FrameState::Free,
        }
    }

    /// Hands the reserved frames `[start, start + count)` to the allocator.
    /// They are merged with free neighbours into maximal aligned blocks.
    pub fn add_free_range<L: FrameLinks + ?Sized>(
        &mut self,
        links: &mut L,
        start: Pfn,
        count: u64,
    ) -> Result<(), FrameError> {
        if count == 0 {
            return Ok(());
        }
        let range = self.check_range(start, count)?;
        if let Some(i) = range.clone().find(|&i| self.meta[i] != META_RESERVED) {
            return Err(FrameError::NotReserved(self.pfn_at(i)));
        }
        for (pfn, order) in Blocks::new(start, count) {
            self.release(links, pfn, order);
        }
        self.total_frames += count;
        Ok(())
    }

    /// Allocates an aligned block of `2^order` frames.
    pub fn alloc<L: FrameLinks + ?Sized>(&mut self, links: &mut L, order: u32) -> Option<Pfn> {
        if order > MAX_ORDER {
            return None;
        }
        // Smallest non-empty list of at least `order`.
        let candidates = self.nonempty >> order;
        if candidates == 0 {
            return None;
        }
        let found = order + candidates.trailing_zeros();
        let pfn = self.pop(links, found)?;
        Some(self.take(links, pfn, found, order))
    }

    /// Allocates an aligned block of `2^order` frames lying wholly below
    /// `limit` (for hardware that can only reach low memory, such as a
    /// page table loaded from 32-bit code).
    ///
    /// Unlike [`Self::alloc`] this scans the metadata from the bottom of the
    /// span, so it costs up to one step per free block below `limit`; it is
    /// meant for rare, boot-time requests.
    pub fn alloc_below<L: FrameLinks + ?Sized>(&mut self, links: &mut L, order: u32, limit: Pfn) -> Option<Pfn> {
        if order > MAX_ORDER {
            return None;
        }
        let mut pfn = self.base;
        while pfn.checked_add(order_frames(order))? <= limit.0.min(self.end) {
            let m = self.meta[(pfn - self.base) as usize];
            if m & META_FREE_HEAD == 0 {
                pfn += 1;
                continue;
            }
            let found = u32::from(m & META_ORDER_MASK);
            if found < order {
                pfn += order_frames(found);
                continue;
            }
            let head = Pfn(pfn);
            if !self.remove(links, head, found) {
                return None;
            }
            return Some(self.take(links, head, found, order));
        }
        None
    }

    /// Turns the detached free block `pfn` of order `found` into an
    /// allocated block of `order` at its start, returning the rest.
    fn take<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, mut found: u32, order: u32) -> Pfn {
        // Split off upper halves until the block has the requested order.
        while found > order {
            found -= 1;
            let upper = Pfn(pfn.0 + order_frames(found));
            self.set_meta(upper, free_head(found));
            self.push(links, upper, found);
        }
        self.fill_meta(pfn, order_frames(order), META_ALLOCATED);
        self.free_frames -= order_frames(order);
        pfn
    }

    /// Frees a block previously obtained from [`Self::alloc`] with the same
    /// `order` (or any aligned, fully allocated block), coalescing it with
    /// free buddies.
    pub fn free<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, order: u32) -> Result<(), FrameError> {
        if order > MAX_ORDER {
            return Err(FrameError::InvalidOrder(order));
        }
        if !pfn.is_aligned(order) {
            return Err(FrameError::Misaligned(pfn));
        }
        self.check_allocated(pfn, order_frames(order))?;
        self.release(links, pfn, order);
        Ok(())
    }

    /// Allocates one frame.
    pub fn alloc_frame<L: FrameLinks + ?Sized>(&mut self, links: &mut L) -> Option<Pfn> {
        self.alloc(links, 0)
    }

    /// Frees one allocated frame.
    pub fn free_frame<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn) -> Result<(), FrameError> {
        self.free(links, pfn, 0)
    }

    /// Allocates exactly `count` physically contiguous frames whose first
    /// frame number is a multiple of `2^align_order`.
    ///
    /// The covering power-of-two block is taken and its unused tail returned
    /// at once, so `count` is limited to `2^MAX_ORDER` frames. Returns `None`
    /// for `count == 0` or an impossible request.
    pub fn alloc_contiguous<L: FrameLinks + ?Sized>(
        &mut self,
        links: &mut L,
        count: u64,
        align_order: u32,
    ) -> Option<Pfn> {
        if count == 0 || align_order > MAX_ORDER {
            return None;
        }
        let order = order_for(count)?.max(align_order);
        let pfn = self.alloc(links, order)?;
        let tail = order_frames(order) - count;
        for (block, block_order) in Blocks::new(Pfn(pfn.0 + count), tail) {
            self.release(links, block, block_order);
        }
        Some(pfn)
    }

    /// Frees `count` allocated frames starting at `pfn`. Any run of allocated
    /// frames may be freed this way, not only one from
    /// [`Self::alloc_contiguous`]; `count == 0` does nothing.
    pub fn free_contiguous<L: FrameLinks + ?Sized>(
        &mut self,
        links: &mut L,
        pfn: Pfn,
        count: u64,
    ) -> Result<(), FrameError> {
        self.check_allocated(pfn, count)?;
        for (block, order) in Blocks::new(pfn, count) {
            self.release(links, block, order);
        }
        Ok(())
    }

    // ---- internals -------------------------------------------------------

    fn index(&self, pfn: Pfn) -> Option<usize> {
        (self.base..self.end).contains(&pfn.0).then(|| (pfn.0 - self.base) as usize)
    }

    fn pfn_at(&self, index: usize) -> Pfn {
        Pfn(self.base + index as u64)
    }

    /// Metadata indices of `[start, start + count)` if it lies in the span.
    fn check_range(&self, start: Pfn, count: u64) -> Result<core::ops::Range<usize>, FrameError> {
        let first = self.index(start).ok_or(FrameError::OutOfRange(start))?;
        let end = start
            .0
            .checked_add(count)
            .filter(|&e| e <= self.end)
            // `start` is in the span, so `end` is the first frame outside it.
            .ok_or(FrameError::OutOfRange(Pfn(self.end)))?;
        Ok(first..first + (end - start.0) as usize)
    }

    fn check_allocated(&self, start: Pfn, count: u64) -> Result<(), FrameError> {
        if count == 0 {
            return Ok(());
        }
        let range = self.check_range(start, count)?;
        match range.clone().find(|&i| self.meta[i] != META_ALLOCATED) {
            Some(i) => Err(FrameError::NotAllocated(self.pfn_at(i))),
            None => Ok(()),
        }
    }

    /// Sets the metadata of an in-span frame.
    fn set_meta(&mut self, pfn: Pfn, value: u8) {
        if let Some(i) = self.index(pfn) {
            self.meta[i] = value;
        }
    }

    fn fill_meta(&mut self, start: Pfn, count: u64, value: u8) {
        if let Ok(range) = self.check_range(start, count) {
            self.meta[range].fill(value);
        }
    }

    fn is_free_head(&self, pfn: Pfn, order: u32) -> bool {
        self.index(pfn).is_some_and(|i| self.meta[i] == free_head(order))
    }

    /// Turns an aligned, in-span block whose frames are allocated or reserved
    /// (already validated by the caller) into free memory, coalescing it with
    /// its buddies.
    fn release<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, order: u32) {
        self.fill_meta(pfn, order_frames(order), META_FREE_BODY);
        self.free_frames += order_frames(order);
        let (mut pfn, mut order) = (pfn, order);
        while order < MAX_ORDER {
            let buddy = Pfn(pfn.0 ^ order_frames(order));
            // A free head of this exact order lies wholly in the span, so the
            // merged block does too.
            if !self.is_free_head(buddy, order) || !self.remove(links, buddy, order) {
                break;
            }
            pfn = Pfn(pfn.0.min(buddy.0));
            order += 1;
        }
        self.set_meta(pfn, free_head(order));
        self.push(links, pfn, order);
    }

    /// Adds a block, whose head metadata is already set, to its free list.
    fn push<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, order: u32) {
        if self.try_push(links, pfn, order).is_err() {
            // The rebuild picks the block up from its metadata.
            self.rebuild_lists(links);
        }
    }

    /// Takes the first block off free list `order` and marks it detached.
    fn pop<L: FrameLinks + ?Sized>(&mut self, links: &mut L, order: u32) -> Option<Pfn> {
        match self.try_pop(links, order) {
            Ok(pfn) => pfn,
            Err(Corrupt) => {
                self.rebuild_lists(links);
                // Links just written by the rebuild can only fail again if
                // the FrameLinks implementation itself is broken.
                self.try_pop(links, order).unwrap_or(None)
            }
        }
    }

    /// Unlinks a free block (known from the metadata to be a free head of
    /// `order`) and marks it detached. `false` if that proved impossible.
    fn remove<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, order: u32) -> bool {
        if self.try_remove(links, pfn, order).is_ok() {
            return true;
        }
        self.rebuild_lists(links);
        self.try_remove(links, pfn, order).is_ok()
    }

    fn try_push<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, order: u32) -> Result<(), Corrupt> {
        let o = order as usize;
        let old = self.heads[o];
        if let Some(old) = old {
            let old_link = links.read(old);
            if old_link.prev.is_some() || !self.is_free_head(old, order) {
                return Err(Corrupt);
            }
            links.write(old, Link { prev: Some(pfn), next: old_link.next });
        }
        links.write(pfn, Link { prev: None, next: old });
        self.heads[o] = Some(pfn);
        self.blocks[o] += 1;
        self.nonempty |= 1 << order;
        Ok(())
    }

    fn try_pop<L: FrameLinks + ?Sized>(&mut self, links: &mut L, order: u32) -> Result<Option<Pfn>, Corrupt> {
        let o = order as usize;
        let Some(head) = self.heads[o] else {
            return Ok(None);
        };
        let link = links.read(head);
        if link.prev.is_some() || !self.is_free_head(head, order) || self.blocks[o] == 0 {
            return Err(Corrupt);
        }
        if let Some(next) = link.next {
            let next_link = links.read(next);
            if next == head || !self.is_free_head(next, order) || next_link.prev != Some(head) {
                return Err(Corrupt);
            }
            links.write(next, Link { prev: None, next: next_link.next });
        }
        self.unlinked(order, link.next.is_none());
        self.heads[o] = link.next;
        self.set_meta(head, META_FREE_BODY);
        Ok(Some(head))
    }

    fn try_remove<L: FrameLinks + ?Sized>(&mut self, links: &mut L, pfn: Pfn, order: u32) -> Result<(), Corrupt> {
        let o = order as usize;
        let link = links.read(pfn);
        if self.blocks[o] == 0 {
            return Err(Corrupt);
        }
        // Validate both neighbours before writing anything.
        let prev = match link.prev {
            None if self.heads[o] == Some(pfn) => None,
            None => return Err(Corrupt),
            Some(p) => {
                let p_link = links.read(p);
                if p == pfn || !self.is_free_head(p, order) || p_link.next != Some(pfn) {
                    return Err(Corrupt);
                }
                Some((p, p_link))
            }
        };
        let next = match link.next {
            None => None,
            Some(n) => {
                let n_link = links.read(n);
                if n == pfn || !self.is_free_head(n, order) || n_link.prev != Some(pfn) {
                    return Err(Corrupt);
                }
                Some((n, n_link))
            }
        };
        if link.prev.is_some() && link.prev == link.next {
            return Err(Corrupt);
        }

        match prev {
            None => self.heads[o] = link.next,
            Some((p, p_link)) => links.write(p, Link { prev: p_link.prev, next: link.next }),
        }
        if let Some((n, n_link)) = next {
            links.write(n, Link { prev: link.prev, next: n_link.next });
        }
        self.unlinked(order, self.heads[o].is_none());
        self.set_meta(pfn, META_FREE_BODY);
        Ok(())
    }

    fn unlinked(&mut self, order: u32, list_now_empty: bool) {
        self.blocks[order as usize] -= 1;
        if list_now_empty {
            self.nonempty &= !(1 << order);
        }
    }

    /// Recreates every free list from the metadata, overwriting all links.
    fn rebuild_lists<L: FrameLinks + ?Sized>(&mut self, links: &mut L) {
        self.link_repairs += 1;
        self.heads = [None; ORDERS];
        self.blocks = [0; ORDERS];
        self.nonempty = 0;
        // Appending in address order; `tails` holds each list's last block
        // and its `prev`, so no link is ever read back.
        let mut tails: [Option<(Pfn, Option<Pfn>)>; ORDERS] = [None; ORDERS];
        for (i, &m) in self.meta.iter().enumerate() {
            if m & META_FREE_HEAD == 0 {
                continue;
            }
            let order = u32::from(m & META_ORDER_MASK);
            let o = order as usize;
            let pfn = Pfn(self.base + i as u64);
            match tails[o] {
                None => self.heads[o] = Some(pfn),
                Some((tail, tail_prev)) => links.write(tail, Link { prev: tail_prev, next: Some(pfn) }),
            }
            let prev = tails[o].map(|(tail, _)| tail);
            links.write(pfn, Link { prev, next: None });
            tails[o] = Some((pfn, prev));
            self.blocks[o] += 1;
            self.nonempty |= 1 << order;
        }
    }
}

/// Splits `[start, start + count)` into maximal aligned blocks, lowest first.
struct Blocks {
    next: u64,
    left: u64,
}

impl Blocks {
    fn new(start: Pfn, count: u64) -> Self {
        Self { next: start.0, left: count }
    }
}

impl Iterator for Blocks {
    type Item = (Pfn, u32);

    fn next(&mut self) -> Option<(Pfn, u32)> {
        if self.left == 0 {
            return None;
        }
        let align = self.next.trailing_zeros().min(MAX_ORDER);
        let fit = u64::BITS - 1 - self.left.leading_zeros();
        let order = align.min(fit);
        let pfn = Pfn(self.next);
        self.next = self.next.wrapping_add(order_frames(order));
        self.left -= order_frames(order);
        Some((pfn, order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// Links kept in a map, standing in for the kernel's direct map.
    #[derive(Default)]
    struct MapLinks(HashMap<u64, Link>);

    impl FrameLinks for MapLinks {
        fn read(&self, pfn: Pfn) -> Link {
            // Unwritten memory reads as garbage, not as a tidy empty link.
            self.0.get(&pfn.0).copied().unwrap_or(Link { prev: Some(Pfn(0xdead_beef)), next: Some(Pfn(0xbad_f00d)) })
        }
        fn write(&mut self, pfn: Pfn, link: Link) {
            self.0.insert(pfn.0, link);
        }
    }

    impl MapLinks {
        /// Simulates the owner of allocated frames writing user data.
        fn scribble(&mut self, start: Pfn, count: u64, seed: u64) {
            for i in 0..count {
                let v = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i);
                self.0.insert(start.0 + i, Link { prev: Some(Pfn(v)), next: Some(Pfn(v >> 3)) });
            }
        }
    }

    struct Fixture {
        links: MapLinks,
        alloc: BuddyAllocator<'static>,
    }

    fn fixture(base: u64, count: u64) -> Fixture {
        let meta = Box::leak(vec![0xffu8; metadata_bytes(count)].into_boxed_slice());
        Fixture {
            links: MapLinks::default(),
            alloc: BuddyAllocator::new(Pfn(base), count, meta).expect("metadata sized"),
        }
    }

    /// Walks every list and the metadata and checks they agree, and that
    /// free memory is fully coalesced.
    fn check_invariants(a: &BuddyAllocator<'_>, links: &MapLinks) {
        let mut listed = HashSet::new();
        let mut free = 0;
        for order in 0..=MAX_ORDER {
            let o = order as usize;
            let mut prev = None;
            let mut cur = a.heads[o];
            let mut n = 0;
            while let Some(p) = cur {
                assert!(a.is_free_head(p, order), "{p:?} listed at order {order}");
                assert!(p.is_aligned(order));
                assert!(p.0 >= a.base && p.0 + order_frames(order) <= a.end);
                let l = links.read(p);
                assert_eq!(l.prev, prev);
                assert!(listed.insert(p.0), "{p:?} listed twice");
                n += 1;
                free += order_frames(order);
                if order < MAX_ORDER {
                    let buddy = Pfn(p.0 ^ order_frames(order));
                    assert!(!a.is_free_head(buddy, order), "{p:?} not coalesced");
                }
                prev = cur;
                cur = l.next;
            }
            assert_eq!(n, a.blocks[o]);
            assert_eq!(n != 0, a.nonempty & (1 << order) != 0);
        }
        assert_eq!(free, a.free_frames);
        let mut body_frames = 0;
        for (i, &m) in a.meta.iter().enumerate() {
            match m {
                META_RESERVED | META_ALLOCATED => {}
                META_FREE_BODY => body_frames += 1,
                m if m & META_FREE_HEAD != 0 => {
                    assert!(listed.contains(&(a.base + i as u64)), "unlisted head at {i}");
                }
                m => panic!("bad metadata {m:#x} at {i}"),
            }
        }
        assert_eq!(body_frames + listed.len() as u64, a.free_frames);
    }

    fn blocks_by_order(a: &BuddyAllocator<'_>) -> Vec<u64> {
        (0..=MAX_ORDER).map(|o| a.free_blocks(o)).collect()
    }

    #[test]
    fn alloc_below_respects_the_limit() {
        let mut f = fixture(0, 4096);
        f.alloc.add_free_range(&mut f.links, Pfn(0), 4096).unwrap();
        // Plain allocation may hand out any frame; the low ones must still
        // be reachable on request, until the region below the limit is used up.
        let limit = Pfn(100);
        let mut low = Vec::new();
        while let Some(pfn) = f.alloc.alloc_below(&mut f.links, 0, limit) {
            assert!(pfn.0 < limit.0);
            low.push(pfn.0);
            check_invariants(&f.alloc, &f.links);
        }
        low.sort_unstable();
        low.dedup();
        assert_eq!(low.len(), 100);
        // A block of order 3 needs 8 frames wholly below the limit.
        for pfn in [8, 9, 10, 11, 12, 13, 14, 15] {
            f.alloc.free_frame(&mut f.links, Pfn(pfn)).unwrap();
        }
        assert_eq!(f.alloc.alloc_below(&mut f.links, 3, Pfn(15)), None);
        assert_eq!(f.alloc.alloc_below(&mut f.links, 3, Pfn(16)), Some(Pfn(8)));
        assert_eq!(f.alloc.alloc_below(&mut f.links, MAX_ORDER + 1, Pfn(4096)), None);
        check_invariants(&f.alloc, &f.links);
        assert_eq!(f.alloc.free_frames(), 4096 - 100);
    }

    #[test]
    fn new_checks_arguments() {
        let meta = Box::leak(vec![0u8; 10].into_boxed_slice());
        assert_eq!(
            BuddyAllocator::new(Pfn(0), 11, meta).err(),
            Some(FrameError::MetadataTooSmall { needed: 11, got: 10 })
        );
        let meta = Box::leak(vec![0u8; 10].into_boxed_slice());
        assert_eq!(BuddyAllocator::new(Pfn(u64::MAX), 2, meta).err(), Some(FrameError::SpanOverflow));
        let f = fixture(100, 50);
        assert_eq!(f.alloc.free_frames(), 0);
        assert_eq!(f.alloc.frame_state(Pfn(100)), FrameState::Reserved);
        assert_eq!(f.alloc.frame_state(Pfn(99)), FrameState::OutOfRange);
        assert_eq!(f.alloc.frame_state(Pfn(150)), FrameState::OutOfRange);
    }

    #[test]
    fn order_helpers() {
        assert_eq!(order_for(0), Some(0));
        assert_eq!(order_for(1), Some(0));
        assert_eq!(order_for(2), Some(1));
        assert_eq!(order_for(3), Some(2));
        assert_eq!(order_for(1024), Some(10));
        assert_eq!(order_for(1025), None);
        assert_eq!(Link::from_raw(Link::default().to_raw()), Link::default());
        let l = Link { prev: Some(Pfn(0)), next: Some(Pfn(7)) };
        assert_eq!(Link::from_raw(l.to_raw()), l);
    }

    #[test]
    fn blocks_split_maximally() {
        let v: Vec<_> = Blocks::new(Pfn(3), 14).map(|(p, o)| (p.0, o)).collect();
        assert_eq!(v, [(3, 0), (4, 2), (8, 3), (16, 0)]);
        let v: Vec<_> = Blocks::new(Pfn(0), 3000).map(|(p, o)| (p.0, o)).collect();
        assert_eq!(v, [(0, 10), (1024, 10), (2048, 9), (2560, 8), (2816, 7), (2944, 5), (2976, 4), (2992, 3)]);
        assert_eq!(Blocks::new(Pfn(5), 0).count(), 0);
    }

    #[test]
    fn round_trip_and_coalesce() {
        let mut f = fixture(0, 4096);
        f.alloc.add_free_range(&mut f.links, Pfn(0), 4096).expect("add");
        assert_eq!(f.alloc.total_frames(), 4096);
        assert_eq!(f.alloc.free_frames(), 4096);
        assert_eq!(f.alloc.free_blocks(MAX_ORDER), 4);
        assert_eq!(f.alloc.largest_free_order(), Some(MAX_ORDER));
        check_invariants(&f.alloc, &f.links);

        let a = f.alloc.alloc_frame(&mut f.links).expect("frame");
        assert_eq!(f.alloc.frame_state(a), FrameState::Allocated);
        assert_eq!(f.alloc.free_frames(), 4095);
        // Splitting one max block leaves one free block of each lower order.
        for o in 0..MAX_ORDER {
            assert_eq!(f.alloc.free_blocks(o), 1, "order {o}");
        }
        assert_eq!(f.alloc.free_blocks(MAX_ORDER), 3);
        check_invariants(&f.alloc, &f.links);

        let b = f.alloc.alloc(&mut f.links, 3).expect("order 3");
        assert!(b.is_aligned(3));
        f.links.scribble(a, 1, 1);
        f.links.scribble(b, 8, 2);
        check_invariants(&f.alloc, &f.links);

        f.alloc.free_frame(&mut f.links, a).expect("free a");
        f.alloc.free(&mut f.links, b, 3).expect("free b");
        assert_eq!(f.alloc.free_frames(), 4096);
        assert_eq!(f.alloc.free_blocks(MAX_ORDER), 4);
        for o in 0..MAX_ORDER {
            assert_eq!(f.alloc.free_blocks(o), 0, "order {o}");
        }
        check_invariants(&f.alloc, &f.links);
        assert_eq!(f.alloc.link_repairs(), 0);
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut f = fixture(0, 64);
        f.alloc.add_free_range(&mut f.links, Pfn(8), 40).expect("add");
        let mut got = HashSet::new();
        while let Some(p) = f.alloc.alloc_frame(&mut f.links) {
            assert!((8..48).contains(&p.0));
            assert!(got.insert(p.0));
            f.links.scribble(p, 1, p.0);
        }
        assert_eq!(got.len(), 40);
        assert_eq!(f.alloc.free_frames(), 0);
        assert_eq!(f.alloc.largest_free_order(), None);
        assert_eq!(f.alloc.alloc(&mut f.links, 0), None);
        assert_eq!(f.alloc.alloc(&mut f.links, 3), None);
        assert_eq!(f.alloc.alloc_contiguous(&mut f.links, 1, 0), None);
        assert_eq!(f.alloc.alloc(&mut f.links, MAX_ORDER + 1), None);
        for p in got {
            f.alloc.free_frame(&mut f.links, Pfn(p)).expect("free");
        }
        assert_eq!(f.alloc.free_frames(), 40);
        // 8..48 = [8,16) [16,32) [32,48).
        assert_eq!(blocks_by_order(&f.alloc)[..5], [0, 0, 0, 1, 2]);
        check_invariants(&f.alloc, &f.links);
    }

    #[test]
    fn large_order_fails_when_fragmented() {
        let mut f = fixture(0, 16);
        f.alloc.add_free_range(&mut f.links, Pfn(0), 16).expect("add");
        let frames: Vec<_> = (0..16).map(|_| f.alloc.alloc_frame(&mut f.links).expect("frame")).collect();
        // Free every other frame: 8 free frames, no two adjacent.
        for p in frames.iter().filter(|p| p.0 % 2 == 0) {
            f.alloc.free_frame(&mut f.links, *p).expect("free");
        }
        assert_eq!(f.alloc.free_frames(), 8);
        assert_eq!(f.alloc.alloc(&mut f.links, 1), None);
        assert_eq!(f.alloc.alloc_contiguous(&mut f.links, 2, 0), None);
        check_invariants(&f.alloc, &f.links);
    }

    #[test]
    fn invalid_frees_are_rejected_without_damage() {
        let mut f = fixture(16, 64);
        f.alloc.add_free_range(&mut f.links, Pfn(16), 32).expect("add");
        let p = f.alloc.alloc(&mut f.links, 2).expect("order 2");
        let before = (f.alloc.free_frames(), blocks_by_order(&f.alloc));

        let checks = [
            (f.alloc.free(&mut f.links, p, MAX_ORDER + 1), FrameError::InvalidOrder(MAX_ORDER + 1)),
            (f.alloc.free(&mut f.links, Pfn(p.0 + 1), 2), FrameError::Misaligned(Pfn(p.0 + 1))),
            (f.alloc.free_frame(&mut f.links, Pfn(15)), FrameError::OutOfRange(Pfn(15))),
            (f.alloc.free_frame(&mut f.links, Pfn(80)), FrameError::OutOfRange(Pfn(80))),
            (f.alloc.free_contiguous(&mut f.links, Pfn(79), 2), FrameError::OutOfRange(Pfn(80))),
            (f.alloc.free_contiguous(&mut f.links, Pfn(79), u64::MAX), FrameError::OutOfRange(Pfn(80))),
            // Reserved, never added.
            (f.alloc.free_frame(&mut f.links, Pfn(60)), FrameError::NotAllocated(Pfn(60))),
            // Free, never allocated.
            (f.alloc.free(&mut f.links, Pfn(p.0 ^ 4), 2), FrameError::NotAllocated(Pfn(p.0 ^ 4))),
            // Block bigger than the allocation.
            // (whichever half is not `p` is free, and is the first bad frame)
            (f.alloc.free(&mut f.links, Pfn(p.0 & !7), 3), FrameError::NotAllocated(Pfn(p.0 ^ 4))),
            (f.alloc.add_free_range(&mut f.links, Pfn(40), 10), FrameError::NotReserved(Pfn(40))),
            (f.alloc.add_free_range(&mut f.links, Pfn(70), 20), FrameError::OutOfRange(Pfn(80))),
        ];
        for (got, want) in checks {
            assert_eq!(got, Err(want));
        }
        assert_eq!((f.alloc.free_frames(), blocks_by_order(&f.alloc)), before);
        check_invariants(&f.alloc, &f.links);

        f.alloc.free(&mut f.links, p, 2).expect("free");
        assert_eq!(f.alloc.free(&mut f.links, p, 2), Err(FrameError::NotAllocated(p)), "double free");
        assert_eq!(f.alloc.free_frame(&mut f.links, Pfn(p.0 + 3)), Err(FrameError::NotAllocated(Pfn(p.0 + 3))));
        assert_eq!(f.alloc.free_frames(), 32);
        check_invariants(&f.alloc, &f.links);
        assert_eq!(f.alloc.link_repairs(), 0);
    }

    #[test]
    fn contiguous_runs_are_exact_and_aligned() {
        let mut f = fixture(0, 8192);
        f.alloc.add_free_range(&mut f.links, Pfn(1), 8000).expect("add");
        let start = f.alloc.free_frames();
        let mut runs = Vec::new();
        for (count, align) in [(1, 0), (3, 0), (5, 4), (100, 0), (513, 9), (1024, 10), (7, 10), (2, 1)] {
            let p = f.alloc.alloc_contiguous(&mut f.links, count, align).expect("run");
            assert!(p.is_aligned(align), "{p:?} align {align}");
            for i in 0..count {
                assert_eq!(f.alloc.frame_state(Pfn(p.0 + i)), FrameState::Allocated);
            }
            // Exactly `count`: the rest of the covering block went back.
            let block = order_frames(order_for(count).expect("small").max(align));
            if count < block {
                assert_eq!(f.alloc.frame_state(Pfn(p.0 + count)), FrameState::Free);
            }
            f.links.scribble(p, count, count);
            runs.push((p, count));
            check_invariants(&f.alloc, &f.links);
        }
        let used: u64 = runs.iter().map(|r| r.1).sum();
        assert_eq!(f.alloc.free_frames(), start - used);
        assert_eq!(f.alloc.alloc_contiguous(&mut f.links, 0, 0), None);
        assert_eq!(f.alloc.alloc_contiguous(&mut f.links, 1025, 0), None);
        assert_eq!(f.alloc.alloc_contiguous(&mut f.links, 1, MAX_ORDER + 1), None);

        let fresh = {
            let mut g = fixture(0, 8192);
            g.alloc.add_free_range(&mut g.links, Pfn(1), 8000).expect("add");
            blocks_by_order(&g.alloc)
        };
        for (p, count) in runs {
            assert_eq!(
                f.alloc.free_contiguous(&mut f.links, p, count + 1),
                Err(FrameError::NotAllocated(Pfn(p.0 + count)))
            );
            f.alloc.free_contiguous(&mut f.links, p, count).expect("free run");
            check_invariants(&f.alloc, &f.links);
        }
        assert_eq!(f.alloc.free_frames(), start);
        assert_eq!(blocks_by_order(&f.alloc), fresh);
    }

    #[test]
    fn partial_frees_of_a_block() {
        let mut f = fixture(0, 64);
        f.alloc.add_free_range(&mut f.links, Pfn(0), 64).expect("add");
        let p = f.alloc.alloc(&mut f.links, 4).expect("order 4");
        // Give back frames piecemeal, in an awkward order.
        f.alloc.free_contiguous(&mut f.links, Pfn(p.0 + 5), 7).expect("middle");
        f.alloc.free_frame(&mut f.links, Pfn(p.0 + 15)).expect("last");
        f.alloc.free_contiguous(&mut f.links, p, 5).expect("front");
        check_invariants(&f.alloc, &f.links);
        f.alloc.free_contiguous(&mut f.links, Pfn(p.0 + 12), 3).expect("rest");
        assert_eq!(f.alloc.free_blocks(6), 1);
        assert_eq!(f.alloc.free_frames(), 64);
        check_invariants(&f.alloc, &f.links);
    }

    #[test]
    fn odd_ranges_and_holes() {
        // Span not aligned, ranges with odd starts, a hole, and a range
        // added in two adjacent pieces that must coalesce.
        let mut f = fixture(1001, 3000);
        f.alloc.add_free_range(&mut f.links, Pfn(1003), 1).expect("single");
        f.alloc.add_free_range(&mut f.links, Pfn(1005), 1018).expect("a");
        f.alloc.add_free_range(&mut f.links, Pfn(2100), 100).expect("b1");
        f.alloc.add_free_range(&mut f.links, Pfn(2200), 1801).expect("b2");
        assert_eq!(f.alloc.total_frames(), 1 + 1018 + 100 + 1801);
        assert_eq!(f.alloc.free_frames(), f.alloc.total_frames());
        check_invariants(&f.alloc, &f.links);
        // No aligned 1024-frame block is wholly free: 2023..2100 is a hole
        // and the span ends at 4001.
        assert_eq!(f.alloc.free_blocks(MAX_ORDER), 0);
        assert_eq!(f.alloc.frame_state(Pfn(1004)), FrameState::Reserved);

        let mut got = Vec::new();
        while let Some(p) = f.alloc.alloc_frame(&mut f.links) {
            let ok = p.0 == 1003 || (1005..2023).contains(&p.0) || (2100..4001).contains(&p.0);
            assert!(ok, "{p:?} outside the added ranges");
            got.push(p);
        }
        assert_eq!(got.len() as u64, f.alloc.total_frames());
        for p in got.into_iter().rev() {
            f.alloc.free_frame(&mut f.links, p).expect("free");
        }
        assert_eq!(f.alloc.free_frames(), f.alloc.total_frames());
        check_invariants(&f.alloc, &f.links);
        // The last pieces can be added later and merge with what is there.
        f.alloc.add_free_range(&mut f.links, Pfn(1004), 1).expect("hole 1");
        f.alloc.add_free_range(&mut f.links, Pfn(2023), 77).expect("hole 2");
        f.alloc.add_free_range(&mut f.links, Pfn(1001), 2).expect("hole 3");
        assert_eq!(f.alloc.free_frames(), 3000);
        check_invariants(&f.alloc, &f.links);
        assert_eq!(f.alloc.free_blocks(MAX_ORDER), 2);
    }

    #[test]
    fn corrupted_links_are_repaired_from_metadata() {
        let mut f = fixture(0, 256);
        f.alloc.add_free_range(&mut f.links, Pfn(0), 256).expect("add");
        let frames: Vec<_> = (0..64).map(|_| f.alloc.alloc_frame(&mut f.links).expect("frame")).collect();
        for p in frames.iter().step_by(2) {
            f.alloc.free_frame(&mut f.links, *p).expect("free");
        }
        // A use-after-free scribbles over free frames' links.
        f.links.scribble(frames[0], 1, 7);
        f.links.scribble(frames[10], 1, 8);
        let mut seen = HashSet::new();
        while let Some(p) = f.alloc.alloc_frame(&mut f.links) {
            assert!(seen.insert(p.0), "{p:?} handed out twice");
            assert!(p.0 < 256);
        }
        assert!(f.alloc.link_repairs() > 0);
        assert_eq!(seen.len(), 256 - 32);
        check_invariants(&f.alloc, &f.links);
    }

    use crate::test_rng::Rng;

    #[test]
    fn randomized_stress() {
        for seed in 1..=8u64 {
            let (base, count) = (37 + seed * 11, 5000 + seed * 97);
            let mut f = fixture(base, count);
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            // Random usable ranges with holes in between.
            let mut usable = vec![false; count as usize];
            let mut at = base;
            while at < base + count {
                let len = (1 + rng.below(1500)).min(base + count - at);
                if rng.below(4) != 0 {
                    f.alloc.add_free_range(&mut f.links, Pfn(at), len).expect("add");
                    usable[(at - base) as usize..(at - base + len) as usize].fill(true);
                }
                at += len + rng.below(40);
            }
            let total = f.alloc.total_frames();
            let fresh = blocks_by_order(&f.alloc);
            let mut owned = vec![false; count as usize];
            let mut live: Vec<(Pfn, u64, Option<u32>)> = Vec::new();
            let (mut granted, mut refused, mut double_frees) = (0, 0, 0);

            for step in 0..6000 {
                let allocate = live.is_empty() || rng.below(100) < 55;
                if allocate {
                    let got = match rng.below(3) {
                        0 => f.alloc.alloc_frame(&mut f.links).map(|p| (p, 1, Some(0))),
                        1 => {
                            let order = rng.below(6) as u32;
                            f.alloc.alloc(&mut f.links, order).map(|p| (p, order_frames(order), Some(order)))
                        }
                        _ => {
                            let n = 1 + rng.below(300);
                            let align = rng.below(5) as u32;
                            f.alloc.alloc_contiguous(&mut f.links, n, align).map(|p| {
                                assert!(p.is_aligned(align));
                                (p, n, None)
                            })
                        }
                    };
                    if got.is_none() {
                        refused += 1;
                    }
                    if let Some((p, n, order)) = got {
                        granted += 1;
                        for i in 0..n {
                            let idx = (p.0 + i - base) as usize;
                            assert!(usable[idx], "unusable frame {} handed out", p.0 + i);
                            assert!(!owned[idx], "frame {} handed out twice", p.0 + i);
                            owned[idx] = true;
                        }
                        f.links.scribble(p, n, rng.next());
                        live.push((p, n, order));
                    }
                } else {
                    let (p, n, order) = live.swap_remove(rng.below(live.len() as u64) as usize);
                    if rng.below(50) == 0 {
                        // Free one frame of the block alone, then once more.
                        let victim = Pfn(p.0 + rng.below(n));
                        f.alloc.free_frame(&mut f.links, victim).expect("first free");
                        assert_eq!(f.alloc.free_frame(&mut f.links, victim), Err(FrameError::NotAllocated(victim)));
                        owned[(victim.0 - base) as usize] = false;
                        double_frees += 1;
                        for i in (0..n).filter(|&i| p.0 + i != victim.0) {
                            f.alloc.free_frame(&mut f.links, Pfn(p.0 + i)).expect("rest");
                        }
                    } else {
                        match order {
                            Some(o) => f.alloc.free(&mut f.links, p, o).expect("free"),
                            None => f.alloc.free_contiguous(&mut f.links, p, n).expect("free run"),
                        }
                    }
                    for i in 0..n {
                        owned[(p.0 + i - base) as usize] = false;
                    }
                }
                let in_use: u64 = live.iter().map(|l| l.1).sum();
                assert_eq!(f.alloc.free_frames() + in_use, total);
                if step % 500 == 0 {
                    check_invariants(&f.alloc, &f.links);
                }
            }
            // The run must have covered the interesting paths.
            assert!(granted > 1000 && refused > 0 && double_frees > 0, "{granted} {refused} {double_frees}");
            for (p, n, _) in live.drain(..) {
                f.alloc.free_contiguous(&mut f.links, p, n).expect("final free");
            }
            assert_eq!(f.alloc.free_frames(), total);
            assert_eq!(blocks_by_order(&f.alloc), fresh, "seed {seed}: not fully coalesced");
            assert_eq!(f.alloc.link_repairs(), 0);
            check_invariants(&f.alloc, &f.links);
        }
    }
}
