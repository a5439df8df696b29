//! The range mathematics of Magenta virtual memory address regions (VMARs).
//!
//! A [`Vmar`] covers `[base, base + size)` (page aligned) and holds
//! non-overlapping children, each either a sub-VMAR ([`Region::Vmar`]) or a
//! mapping of part of a VMO ([`Region::Mapping`]). Both payloads are generic:
//! the kernel stores its own sub-VMAR reference as `V` and its own VMO
//! reference as `M` (cloned when a mapping is split in two). Children live in
//! a `BTreeMap` keyed by base address, so finding the child that contains an
//! address is `O(log n)`.
//!
//! Nothing here touches page tables. Operations that remove address space
//! ([`Vmar::unmap`], [`Vmar::map`] with `SPECIFIC_OVERWRITE`,
//! [`Vmar::destroy`]) return the removed pieces so the kernel can unmap their
//! pages and destroy removed sub-VMARs recursively.
//!
//! The syscall-shaped operations ([`Vmar::allocate`], [`Vmar::map`],
//! [`Vmar::unmap`], [`Vmar::protect`], [`Vmar::destroy`]) make the checks of
//! `magenta-abi.md` §5.20 to §5.22 in the contract's order, after the handle
//! lookup, which is the caller's. Every operation validates fully before it
//! mutates, so on error the region is unchanged.
//!
//! Not modelled here (the kernel's part): the vDSO code mapping's
//! `ACCESS_DENIED` cases, `MAP_RANGE` committing, and out-pointer faults.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Page size on x86-64.
pub const PAGE_SIZE: u64 = 4096;

/// `MX_VM_FLAG_PERM_READ`.
pub const FLAG_PERM_READ: u32 = 1 << 0;
/// `MX_VM_FLAG_PERM_WRITE`.
pub const FLAG_PERM_WRITE: u32 = 1 << 1;
/// `MX_VM_FLAG_PERM_EXECUTE`.
pub const FLAG_PERM_EXECUTE: u32 = 1 << 2;
/// `MX_VM_FLAG_COMPACT`.
pub const FLAG_COMPACT: u32 = 1 << 3;
/// `MX_VM_FLAG_SPECIFIC`.
pub const FLAG_SPECIFIC: u32 = 1 << 4;
/// `MX_VM_FLAG_SPECIFIC_OVERWRITE`.
pub const FLAG_SPECIFIC_OVERWRITE: u32 = 1 << 5;
/// `MX_VM_FLAG_CAN_MAP_SPECIFIC`.
pub const FLAG_CAN_MAP_SPECIFIC: u32 = 1 << 6;
/// `MX_VM_FLAG_CAN_MAP_READ`.
pub const FLAG_CAN_MAP_READ: u32 = 1 << 7;
/// `MX_VM_FLAG_CAN_MAP_WRITE`.
pub const FLAG_CAN_MAP_WRITE: u32 = 1 << 8;
/// `MX_VM_FLAG_CAN_MAP_EXECUTE`.
pub const FLAG_CAN_MAP_EXECUTE: u32 = 1 << 9;
/// `MX_VM_FLAG_MAP_RANGE`.
pub const FLAG_MAP_RANGE: u32 = 1 << 10;

/// All `PERM_*` bits.
pub const FLAG_PERM_MASK: u32 = FLAG_PERM_READ | FLAG_PERM_WRITE | FLAG_PERM_EXECUTE;
/// All `CAN_MAP_{READ,WRITE,EXECUTE}` bits.
pub const FLAG_CAN_MAP_MASK: u32 = FLAG_CAN_MAP_READ | FLAG_CAN_MAP_WRITE | FLAG_CAN_MAP_EXECUTE;
/// The flags a VMAR itself keeps (`COMPACT`, `CAN_MAP_*`).
pub const VMAR_FLAGS_KEPT: u32 = FLAG_COMPACT | FLAG_CAN_MAP_SPECIFIC | FLAG_CAN_MAP_MASK;

const ALLOCATE_FLAGS: u32 = FLAG_COMPACT | FLAG_SPECIFIC | FLAG_CAN_MAP_SPECIFIC | FLAG_CAN_MAP_MASK;
const MAP_FLAGS: u32 = FLAG_PERM_MASK | FLAG_SPECIFIC | FLAG_SPECIFIC_OVERWRITE | FLAG_MAP_RANGE;

/// `MX_RIGHT_DUPLICATE | MX_RIGHT_TRANSFER`: `MX_DEFAULT_VMAR_RIGHTS`.
pub const DEFAULT_VMAR_RIGHTS: u32 = RIGHT_DUPLICATE | RIGHT_TRANSFER;
/// `MX_RIGHT_DUPLICATE`.
pub const RIGHT_DUPLICATE: u32 = 1 << 0;
/// `MX_RIGHT_TRANSFER`.
pub const RIGHT_TRANSFER: u32 = 1 << 1;
/// `MX_RIGHT_READ`.
pub const RIGHT_READ: u32 = 1 << 2;
/// `MX_RIGHT_WRITE`.
pub const RIGHT_WRITE: u32 = 1 << 3;
/// `MX_RIGHT_EXECUTE`.
pub const RIGHT_EXECUTE: u32 = 1 << 4;
/// `MX_RIGHT_MAP`.
pub const RIGHT_MAP: u32 = 1 << 5;

/// Why a VMAR operation failed. Each variant is exactly one `mx_status_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmarError {
    /// `MX_ERR_INVALID_ARGS` (-10): bad flags, misaligned or zero sizes,
    /// a range outside the region, or a range that cuts a sub-VMAR.
    InvalidArgs,
    /// `MX_ERR_NO_MEMORY` (-4): no free spot, or a `SPECIFIC` range overlaps.
    NoMemory,
    /// `MX_ERR_BAD_STATE` (-20): the region has been destroyed.
    BadState,
    /// `MX_ERR_NOT_FOUND` (-25): `protect` found an unmapped page.
    NotFound,
    /// `MX_ERR_ACCESS_DENIED` (-30): permissions or rights exceeded.
    AccessDenied,
}

impl VmarError {
    /// The `mx_status_t` value.
    pub const fn status(self) -> i32 {
        match self {
            VmarError::InvalidArgs => -10,
            VmarError::NoMemory => -4,
            VmarError::BadState => -20,
            VmarError::NotFound => -25,
            VmarError::AccessDenied => -30,
        }
    }
}

impl From<VmarError> for i32 {
    fn from(e: VmarError) -> i32 {
        e.status()
    }
}

/// A set of READ / WRITE / EXECUTE permissions. Bit values equal the
/// `MX_VM_FLAG_PERM_*` bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Perms(u8);

impl Perms {
    pub const NONE: Perms = Perms(0);
    pub const READ: Perms = Perms(1);
    pub const WRITE: Perms = Perms(2);
    pub const EXECUTE: Perms = Perms(4);
    pub const RW: Perms = Perms(3);
    pub const RX: Perms = Perms(5);
    pub const RWX: Perms = Perms(7);

    /// The `PERM_*` bits of `flags`; other bits are ignored.
    pub const fn from_vm_flags(flags: u32) -> Perms {
        Perms((flags & FLAG_PERM_MASK) as u8)
    }

    /// The `CAN_MAP_{READ,WRITE,EXECUTE}` bits of `flags`; others ignored.
    pub const fn from_can_map(flags: u32) -> Perms {
        Perms(((flags & FLAG_CAN_MAP_MASK) >> 7) as u8)
    }

    /// The permissions handle `rights` allow (`MX_RIGHT_{READ,WRITE,EXECUTE}`).
    pub const fn from_rights(rights: u32) -> Perms {
        Perms(((rights >> 2) & 7) as u8)
    }

    /// As `PERM_*` flag bits.
    pub const fn vm_flags(self) -> u32 {
        self.0 as u32
    }

    /// As `CAN_MAP_*` flag bits.
    pub const fn can_map_flags(self) -> u32 {
        (self.0 as u32) << 7
    }

    /// The handle rights needed to use these permissions.
    pub const fn rights(self) -> u32 {
        (self.0 as u32) << 2
    }

    /// Whether every permission in `other` is in `self`.
    pub const fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Perms) -> Perms {
        Perms(self.0 | other.0)
    }

    pub const fn intersection(self, other: Perms) -> Perms {
        Perms(self.0 & other.0)
    }

    /// Magenta refuses WRITE or EXECUTE without READ.
    pub const fn is_valid(self) -> bool {
        self.0 & (Perms::WRITE.0 | Perms::EXECUTE.0) == 0 || self.0 & Perms::READ.0 != 0
    }
}

/// The rights of a new child VMAR created with `flags`: the default VMAR
/// rights plus READ, WRITE, EXECUTE for each `CAN_MAP_*` flag.
pub const fn child_vmar_rights(flags: u32) -> u32 {
    DEFAULT_VMAR_RIGHTS | Perms::from_can_map(flags).rights()
}

/// A mapping of `[vmo_offset, vmo_offset + size)` of the VMO `object`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping<M> {
    /// Offset in the VMO of the mapping's first page.
    pub vmo_offset: u64,
    /// Current permissions.
    pub perms: Perms,
    /// The ceiling for `protect`: what the handles and VMAR allowed at map time.
    pub max_perms: Perms,
    /// The kernel's VMO reference.
    pub object: M,
}

/// What a child range holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Region<V, M> {
    /// A sub-VMAR; `V` is the kernel's reference to it.
    Vmar(V),
    /// A mapping of a VMO.
    Mapping(Mapping<M>),
}

impl<V, M> Region<V, M> {
    pub fn is_vmar(&self) -> bool {
        matches!(self, Region::Vmar(_))
    }

    pub fn as_mapping(&self) -> Option<&Mapping<M>> {
        match self {
            Region::Mapping(m) => Some(m),
            Region::Vmar(_) => None,
        }
    }
}

/// A child range `[base, base + size)` of a VMAR, with absolute addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child<V, M> {
    pub base: u64,
    pub size: u64,
    pub region: Region<V, M>,
}

impl<V, M> Child<V, M> {
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
}

/// Where a new child goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// At this offset from the VMAR's base.
    Specific(u64),
    /// At the lowest fitting address.
    Lowest,
    /// At a position picked by the chooser among every fitting position.
    Random,
}

/// The arguments of `mx_vmar_map` after the handle lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    pub vmar_offset: u64,
    pub vmo_offset: u64,
    pub len: u64,
    pub flags: u32,
    /// Rights of the VMAR handle.
    pub vmar_rights: u32,
    /// Rights of the VMO handle.
    pub vmo_rights: u32,
}

const fn is_page_aligned(x: u64) -> bool {
    x.is_multiple_of(PAGE_SIZE)
}

/// `x` rounded up to a multiple of the power of two `align`, if it fits.
fn align_up(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// How many aligned positions of `size` bytes fit in the gap `[start, end)`.
fn positions_in_gap(start: u64, end: u64, size: u64, align: u64) -> u64 {
    match align_up(start, align) {
        Some(first) if first < end && end - first >= size => (end - first - size) / align + 1,
        _ => 0,
    }
}

/// A VMAR's children and the range maths over them.
#[derive(Debug)]
pub struct Vmar<V, M> {
    base: u64,
    size: u64,
    flags: u32,
    destroyed: bool,
    children: BTreeMap<u64, Child<V, M>>,
}

impl<V, M> Vmar<V, M> {
    /// An empty region `[base, base + size)`. `flags` keeps only
    /// [`VMAR_FLAGS_KEPT`] (`COMPACT`, `CAN_MAP_SPECIFIC`, `CAN_MAP_*`).
    /// `INVALID_ARGS` if unaligned, empty or wrapping.
    pub fn new(base: u64, size: u64, flags: u32) -> Result<Self, VmarError> {
        if !is_page_aligned(base) || !is_page_aligned(size) || size == 0 || base.checked_add(size).is_none() {
            return Err(VmarError::InvalidArgs);
        }
        Ok(Vmar { base, size, flags: flags & VMAR_FLAGS_KEPT, destroyed: false, children: BTreeMap::new() })
    }

    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn end(&self) -> u64 {
        self.base + self.size
    }

    /// The kept flags (see [`VMAR_FLAGS_KEPT`]).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The permissions mappings in this region may have (`CAN_MAP_*`).
    pub fn can_map(&self) -> Perms {
        Perms::from_can_map(self.flags)
    }

    pub fn can_map_specific(&self) -> bool {
        self.flags & FLAG_CAN_MAP_SPECIFIC != 0
    }

    pub fn is_compact(&self) -> bool {
        self.flags & FLAG_COMPACT != 0
    }

    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The children in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Child<V, M>> {
        self.children.values()
    }

    /// The child containing the absolute address `addr`, in `O(log n)`.
    pub fn find(&self, addr: u64) -> Option<&Child<V, M>> {
        self.children.range(..=addr).next_back().map(|(_, c)| c).filter(|c| addr < c.end())
    }

    /// The child starting exactly at `base`.
    pub fn get(&self, base: u64) -> Option<&Child<V, M>> {
        self.children.get(&base)
    }

    /// Whether `[start, end)` lies inside the region.
    fn contains_range(&self, start: u64, end: u64) -> bool {
        self.base <= start && start < end && end <= self.end()
    }

    /// The children overlapping `[start, end)`, in address order.
    fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Child<V, M>> {
        let from = match self.find(start) {
            Some(c) => c.base,
            None => start,
        };
        self.children.range(from..end.max(from)).map(|(_, c)| c).filter(move |c| c.end() > start)
    }

    /// Whether `[start, start + size)` is inside the region and free.
    pub fn is_free(&self, start: u64, size: u64) -> bool {
        match start.checked_add(size) {
            Some(end) if self.contains_range(start, end) => self.overlapping(start, end).next().is_none(),
            _ => false,
        }
    }

    /// The free gaps `[start, end)` in address order.
    fn gaps(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut cursor = self.base;
        let end = self.end();
        self.children.values().map(|c| (c.base, c.end())).chain(core::iter::once((end, end))).filter_map(
            move |(cb, ce)| {
                let gap = (cursor, cb);
                cursor = ce;
                (gap.0 < gap.1).then_some(gap)
            },
        )
    }

    /// The lowest `align`-aligned absolute address where `size` bytes fit.
    /// `align` must be a power of two of at least a page, `size` a non-zero
    /// page multiple; otherwise `None`.
    pub fn find_lowest(&self, size: u64, align: u64) -> Option<u64> {
        self.find_random(size, align, &mut |_| 0)
    }

    /// A fitting `align`-aligned absolute address chosen by `choose`, which is
    /// given the number `n` of candidate positions (over all gaps) and returns
    /// an index; indices `>= n` are reduced modulo `n`. Index 0 is the lowest
    /// fit. `None` if nothing fits or the arguments are invalid.
    pub fn find_random(&self, size: u64, align: u64, choose: &mut impl FnMut(u64) -> u64) -> Option<u64> {
        if size == 0 || !is_page_aligned(size) || !align.is_power_of_two() || align < PAGE_SIZE {
            return None;
        }
        let total: u64 = self.gaps().map(|(s, e)| positions_in_gap(s, e, size, align)).sum();
        if total == 0 {
            return None;
        }
        let mut index = choose(total) % total;
        for (s, e) in self.gaps() {
            let n = positions_in_gap(s, e, size, align);
            if index < n {
                return align_up(s, align).map(|first| first + index * align);
            }
            index -= n;
        }
        debug_assert!(false, "candidate index past the last gap");
        None
    }

    /// Picks the absolute base for a new child of `size` bytes. For
    /// `Specific`, `INVALID_ARGS` if unaligned or outside the region; the
    /// range is not checked for overlap. `NO_MEMORY` if nothing fits.
    /// `INVALID_ARGS` if `align` is not a power of two of at least a page.
    pub fn place(
        &self,
        placement: Placement,
        size: u64,
        align: u64,
        choose: &mut impl FnMut(u64) -> u64,
    ) -> Result<u64, VmarError> {
        if !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(VmarError::InvalidArgs);
        }
        match placement {
            Placement::Specific(offset) => {
                let fits = offset.checked_add(size).is_some_and(|end| end <= self.size);
                if !offset.is_multiple_of(align) || !fits {
                    return Err(VmarError::InvalidArgs);
                }
                Ok(self.base + offset)
            }
            Placement::Lowest => self.find_lowest(size, align).ok_or(VmarError::NoMemory),
            Placement::Random => self.find_random(size, align, choose).ok_or(VmarError::NoMemory),
        }
    }

    /// Inserts a child at the absolute `base`. `BAD_STATE` if destroyed;
    /// `INVALID_ARGS` if unaligned, empty or outside; `NO_MEMORY` if it
    /// overlaps a child.
    pub fn insert(&mut self, base: u64, size: u64, region: Region<V, M>) -> Result<(), VmarError> {
        if self.destroyed {
            return Err(VmarError::BadState);
        }
        let end = base.checked_add(size).ok_or(VmarError::InvalidArgs)?;
        if !is_page_aligned(base) || !is_page_aligned(size) || !self.contains_range(base, end) {
            return Err(VmarError::InvalidArgs);
        }
        if self.overlapping(base, end).next().is_some() {
            return Err(VmarError::NoMemory);
        }
        self.children.insert(base, Child { base, size, region });
        Ok(())
    }

    /// Removes the child starting exactly at `base`.
    pub fn remove(&mut self, base: u64) -> Option<Child<V, M>> {
        self.children.remove(&base)
    }

    /// `mx_vmar_destroy`: marks the region destroyed and returns every child
    /// (the kernel destroys sub-VMARs recursively). `BAD_STATE` if already
    /// destroyed.
    pub fn destroy(&mut self) -> Result<Vec<Child<V, M>>, VmarError> {
        if self.destroyed {
            return Err(VmarError::BadState);
        }
        self.destroyed = true;
        Ok(core::mem::take(&mut self.children).into_values().collect())
    }

    /// `mx_vmar_allocate` after the handle lookup: reserves a sub-VMAR of
    /// `size` bytes named `id` and returns its absolute base. The child's own
    /// [`Vmar`] is `Vmar::new(base, size, flags)`; its handle rights are
    /// [`child_vmar_rights`]`(flags)`. Without `SPECIFIC`, a `COMPACT` parent
    /// places at the lowest fit, any other at `choose`'s pick.
    ///
    /// Errors in contract order: `INVALID_ARGS` (bad flags, unaligned size),
    /// `BAD_STATE` (destroyed), `INVALID_ARGS` (`size == 0`), `ACCESS_DENIED`
    /// (`CAN_MAP_*` beyond the parent's), `INVALID_ARGS` (`offset != 0`
    /// without `SPECIFIC`), `ACCESS_DENIED` (`SPECIFIC` without
    /// `CAN_MAP_SPECIFIC`), `INVALID_ARGS` (outside or unaligned offset),
    /// `NO_MEMORY` (overlap or no room).
    pub fn allocate(
        &mut self,
        offset: u64,
        size: u64,
        flags: u32,
        choose: &mut impl FnMut(u64) -> u64,
        id: V,
    ) -> Result<u64, VmarError> {
        if flags & !ALLOCATE_FLAGS != 0 || !is_page_aligned(size) {
            return Err(VmarError::InvalidArgs);
        }
        if self.destroyed {
            return Err(VmarError::BadState);
        }
        if size == 0 {
            return Err(VmarError::InvalidArgs);
        }
        if !self.can_map().contains(Perms::from_can_map(flags)) {
            return Err(VmarError::AccessDenied);
        }
        let specific = flags & FLAG_SPECIFIC != 0;
        let base = self.checked_placement(specific, offset, size, choose)?;
        if self.overlapping(base, base + size).next().is_some() {
            return Err(VmarError::NoMemory);
        }
        self.children.insert(base, Child { base, size, region: Region::Vmar(id) });
        Ok(base)
    }

    /// Steps shared by allocate and map: offset without `SPECIFIC`,
    /// `SPECIFIC` without `CAN_MAP_SPECIFIC`, range, room.
    fn checked_placement(
        &self,
        specific: bool,
        offset: u64,
        size: u64,
        choose: &mut impl FnMut(u64) -> u64,
    ) -> Result<u64, VmarError> {
        if offset != 0 && !specific {
            return Err(VmarError::InvalidArgs);
        }
        if specific && !self.can_map_specific() {
            return Err(VmarError::AccessDenied);
        }
        let placement = if specific {
            Placement::Specific(offset)
        } else if self.is_compact() {
            Placement::Lowest
        } else {
            Placement::Random
        };
        self.place(placement, size, PAGE_SIZE, choose)
    }
}

impl<V, M: Clone> Vmar<V, M> {
    /// Splits the mapping that strictly contains `addr` into two at `addr`.
    /// A sub-VMAR is never split (callers validate first).
    fn split_at(&mut self, addr: u64) {
        let Some(child) = self.find(addr) else { return };
        if child.base == addr {
            return;
        }
        let base = child.base;
        let Some(child) = self.children.get_mut(&base) else { return };
        let Region::Mapping(m) = &child.region else {
            debug_assert!(false, "split inside a sub-VMAR");
            return;
        };
        let head = addr - base;
        let tail = Child {
            base: addr,
            size: child.size - head,
            region: Region::Mapping(Mapping { vmo_offset: m.vmo_offset + head, ..m.clone() }),
        };
        child.size = head;
        self.children.insert(addr, tail);
    }

    /// Removes everything in `[start, end)` after splitting mappings at the
    /// edges. Callers have checked no sub-VMAR straddles an edge.
    fn cut(&mut self, start: u64, end: u64) -> Vec<Child<V, M>> {
        self.split_at(start);
        self.split_at(end);
        let keys: Vec<u64> = self.children.range(start..end).map(|(&k, _)| k).collect();
        keys.into_iter().filter_map(|k| self.children.remove(&k)).collect()
    }

    /// `[addr, addr + round_up(len))` after the checks common to unmap and
    /// protect: unaligned `addr`, `len == 0` or overflow give `INVALID_ARGS`.
    fn user_range(addr: u64, len: u64) -> Result<(u64, u64), VmarError> {
        if !is_page_aligned(addr) || len == 0 {
            return Err(VmarError::InvalidArgs);
        }
        let len = align_up(len, PAGE_SIZE).ok_or(VmarError::InvalidArgs)?;
        let end = addr.checked_add(len).ok_or(VmarError::InvalidArgs)?;
        Ok((addr, end))
    }

    /// `mx_vmar_map` after the handle lookups: maps `object` and returns the
    /// absolute address plus, for `SPECIFIC_OVERWRITE`, the mapping pieces it
    /// replaced. The mapping's ceiling is what both handles and this VMAR's
    /// `CAN_MAP_*` allow. Without a specific flag, a `COMPACT` VMAR places
    /// at the lowest fit, any other at `choose`'s pick.
    ///
    /// Errors in contract order: `ACCESS_DENIED` (no `MAP` right on the VMO),
    /// `INVALID_ARGS` (WRITE/EXECUTE without READ; a `CAN_MAP_*` bit),
    /// `ACCESS_DENIED` (a permission not allowed by both handles),
    /// `INVALID_ARGS` (other bad flags; unaligned `vmo_offset`; `vmo_offset +
    /// len` overflow), `BAD_STATE` (destroyed), `INVALID_ARGS` (`len == 0`),
    /// `ACCESS_DENIED` (beyond the VMAR's `CAN_MAP_*`), `INVALID_ARGS`
    /// (`vmar_offset != 0` without a specific flag), `ACCESS_DENIED`
    /// (specific without `CAN_MAP_SPECIFIC`), `INVALID_ARGS` (outside or
    /// unaligned; an overwrite range touching a sub-VMAR), `NO_MEMORY`
    /// (overlap without overwrite, or no room).
    pub fn map(
        &mut self,
        req: &MapRequest,
        object: M,
        choose: &mut impl FnMut(u64) -> u64,
    ) -> Result<(u64, Vec<Child<V, M>>), VmarError> {
        if req.vmo_rights & RIGHT_MAP == 0 {
            return Err(VmarError::AccessDenied);
        }
        let perms = Perms::from_vm_flags(req.flags);
        if !perms.is_valid() || req.flags & FLAG_CAN_MAP_MASK != 0 {
            return Err(VmarError::InvalidArgs);
        }
        let handle_perms = Perms::from_rights(req.vmar_rights).intersection(Perms::from_rights(req.vmo_rights));
        if !handle_perms.contains(perms) {
            return Err(VmarError::AccessDenied);
        }
        if req.flags & !MAP_FLAGS != 0 || !is_page_aligned(req.vmo_offset) {
            return Err(VmarError::InvalidArgs);
        }
        let len = align_up(req.len, PAGE_SIZE).ok_or(VmarError::InvalidArgs)?;
        req.vmo_offset.checked_add(len).ok_or(VmarError::InvalidArgs)?;
        if self.destroyed {
            return Err(VmarError::BadState);
        }
        if len == 0 {
            return Err(VmarError::InvalidArgs);
        }
        if !self.can_map().contains(perms) {
            return Err(VmarError::AccessDenied);
        }
        let overwrite = req.flags & FLAG_SPECIFIC_OVERWRITE != 0;
        let specific = overwrite || req.flags & FLAG_SPECIFIC != 0;
        let base = self.checked_placement(specific, req.vmar_offset, len, choose)?;
        let end = base + len;
        let mut replaced = Vec::new();
        if self.overlapping(base, end).next().is_some() {
            if !overwrite {
                return Err(VmarError::NoMemory);
            }
            if self.overlapping(base, end).any(|c| c.region.is_vmar()) {
                return Err(VmarError::InvalidArgs);
            }
            replaced = self.cut(base, end);
        }
        let max_perms = handle_perms.intersection(self.can_map());
        let mapping = Mapping { vmo_offset: req.vmo_offset, perms, max_perms, object };
        self.children.insert(base, Child { base, size: len, region: Region::Mapping(mapping) });
        Ok((base, replaced))
    }

    /// `mx_vmar_unmap`: removes `[addr, addr + round_up(len))`. Mappings
    /// partly inside are split (the kept pieces' VMO offsets adjusted); whole
    /// sub-VMARs inside are removed. Returns the removed pieces in address
    /// order; an empty range gives `Ok` with nothing.
    ///
    /// Errors in contract order: `INVALID_ARGS` (unaligned `addr`, `len ==
    /// 0`), `BAD_STATE` (destroyed), `INVALID_ARGS` (outside the region, or
    /// partly overlapping a sub-VMAR).
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<Vec<Child<V, M>>, VmarError> {
        let (start, end) = Self::user_range(addr, len)?;
        if self.destroyed {
            return Err(VmarError::BadState);
        }
        if !self.contains_range(start, end) {
            return Err(VmarError::InvalidArgs);
        }
        if self.overlapping(start, end).any(|c| c.region.is_vmar() && (c.base < start || c.end() > end)) {
            return Err(VmarError::InvalidArgs);
        }
        Ok(self.cut(start, end))
    }

    /// `mx_vmar_protect` after the handle lookup (which needs
    /// `Perms::from_vm_flags(prot_flags).rights()`): sets the permissions of
    /// `[addr, addr + round_up(len))`, splitting mappings at the edges.
    ///
    /// Errors in contract order: `INVALID_ARGS` (WRITE/EXECUTE without READ;
    /// unaligned `addr`, non-`PERM` bits, `len == 0`), `BAD_STATE`
    /// (destroyed), `INVALID_ARGS` (outside the region), then, walking the
    /// range in address order, the first of: `NOT_FOUND` (an unmapped page),
    /// `INVALID_ARGS` (a sub-VMAR), `ACCESS_DENIED` (beyond a mapping's
    /// ceiling).
    pub fn protect(&mut self, addr: u64, len: u64, prot_flags: u32) -> Result<(), VmarError> {
        let perms = Perms::from_vm_flags(prot_flags);
        if !perms.is_valid() || prot_flags & !FLAG_PERM_MASK != 0 {
            return Err(VmarError::InvalidArgs);
        }
        let (start, end) = Self::user_range(addr, len)?;
        if self.destroyed {
            return Err(VmarError::BadState);
        }
        if !self.contains_range(start, end) {
            return Err(VmarError::InvalidArgs);
        }
        let mut cursor = start;
        for c in self.overlapping(start, end) {
            if c.base > cursor {
                return Err(VmarError::NotFound);
            }
            match &c.region {
                Region::Vmar(_) => return Err(VmarError::InvalidArgs),
                Region::Mapping(m) if !m.max_perms.contains(perms) => return Err(VmarError::AccessDenied),
                Region::Mapping(_) => cursor = c.end(),
            }
        }
        if cursor < end {
            return Err(VmarError::NotFound);
        }
        self.split_at(start);
        self.split_at(end);
        for (_, c) in self.children.range_mut(start..end) {
            if let Region::Mapping(m) = &mut c.region {
                m.perms = perms;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = PAGE_SIZE;
    const BASE: u64 = 0x100_0000;
    const ALL: u32 = FLAG_CAN_MAP_SPECIFIC | FLAG_CAN_MAP_MASK;
    const RIGHTS: u32 = RIGHT_READ | RIGHT_WRITE | RIGHT_EXECUTE | RIGHT_MAP;

    type T = Vmar<u32, u32>;

    fn lowest(_: u64) -> u64 {
        0
    }

    fn root(pages: u64) -> T {
        Vmar::new(BASE, pages * P, ALL | FLAG_COMPACT).unwrap()
    }

    fn req(offset_pages: u64, vmo_page: u64, pages: u64, flags: u32) -> MapRequest {
        MapRequest {
            vmar_offset: offset_pages * P,
            vmo_offset: vmo_page * P,
            len: pages * P,
            flags,
            vmar_rights: RIGHTS,
            vmo_rights: RIGHTS,
        }
    }

    /// Maps `pages` pages of VMO `obj` at page offset `at`, read-write.
    fn map_at(v: &mut T, at: u64, vmo_page: u64, pages: u64, obj: u32) {
        let flags = FLAG_SPECIFIC | FLAG_PERM_READ | FLAG_PERM_WRITE;
        v.map(&req(at, vmo_page, pages, flags), obj, &mut lowest).unwrap();
    }

    /// (base page, pages, vmo page or u64::MAX for a sub-VMAR, perms).
    fn layout(v: &T) -> Vec<(u64, u64, u64, Perms)> {
        v.iter()
            .map(|c| match &c.region {
                Region::Vmar(_) => ((c.base - BASE) / P, c.size / P, u64::MAX, Perms::NONE),
                Region::Mapping(m) => ((c.base - BASE) / P, c.size / P, m.vmo_offset / P, m.perms),
            })
            .collect()
    }

    #[test]
    fn status_values() {
        assert_eq!(VmarError::InvalidArgs.status(), -10);
        assert_eq!(VmarError::NoMemory.status(), -4);
        assert_eq!(VmarError::BadState.status(), -20);
        assert_eq!(VmarError::NotFound.status(), -25);
        assert_eq!(i32::from(VmarError::AccessDenied), -30);
    }

    #[test]
    fn perms_algebra() {
        assert_eq!(Perms::from_can_map(FLAG_CAN_MAP_MASK), Perms::RWX);
        assert_eq!(Perms::from_rights(RIGHT_READ | RIGHT_EXECUTE | RIGHT_MAP), Perms::RX);
        assert_eq!(Perms::RW.rights(), RIGHT_READ | RIGHT_WRITE);
        assert_eq!(Perms::RWX.can_map_flags(), FLAG_CAN_MAP_MASK);
        assert!(Perms::RWX.contains(Perms::RX) && !Perms::RX.contains(Perms::WRITE));
        assert!(!Perms::WRITE.is_valid() && !Perms::EXECUTE.is_valid() && Perms::NONE.is_valid());
        assert!(Perms::RX.is_valid());
        assert_eq!(child_vmar_rights(FLAG_CAN_MAP_MASK | FLAG_COMPACT), 0x1f);
        assert_eq!(child_vmar_rights(FLAG_CAN_MAP_READ), 0x7);
    }

    #[test]
    fn new_rejects_bad_ranges() {
        assert_eq!(T::new(1, P, 0).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(T::new(0, 0, 0).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(T::new(!(P - 1), P, 0).unwrap_err(), VmarError::InvalidArgs);
    }

    #[test]
    fn find_fits_and_alignment() {
        let mut v = root(16);
        v.insert(BASE + P, P, Region::Vmar(1)).unwrap();
        v.insert(BASE + 5 * P, 2 * P, Region::Vmar(2)).unwrap();
        assert_eq!(v.find_lowest(P, P), Some(BASE));
        assert_eq!(v.find_lowest(2 * P, P), Some(BASE + 2 * P));
        assert_eq!(v.find_lowest(4 * P, P), Some(BASE + 7 * P));
        // 8-page alignment: BASE is 16 MiB so BASE+8P is the first aligned slot after 0.
        assert_eq!(v.find_lowest(P, 8 * P), Some(BASE));
        assert_eq!(v.find_lowest(2 * P, 8 * P), Some(BASE + 8 * P));
        assert_eq!(v.find_lowest(9 * P, P), Some(BASE + 7 * P));
        assert_eq!(v.find_lowest(10 * P, P), None);
        assert_eq!(v.find_lowest(P, 3 * P), None, "non-power-of-two alignment");
        assert_eq!(v.find_lowest(P, 1024), None, "sub-page alignment");
        // Candidates for one page: 0, 2, 3, 4, 7..=15 -> 13 of them.
        let mut seen = 0;
        let got = v.find_random(P, P, &mut |n| {
            seen = n;
            n - 1
        });
        assert_eq!((seen, got), (13, Some(BASE + 15 * P)));
        assert_eq!(v.find_random(P, P, &mut |_| 3), Some(BASE + 4 * P));
        assert_eq!(v.find_random(P, P, &mut |_| 13 + 1), Some(BASE + 2 * P), "reduced modulo");
        assert_eq!(v.find(BASE + 6 * P + 5).map(|c| c.base), Some(BASE + 5 * P));
        assert!(v.find(BASE + 7 * P).is_none());
        assert!(v.is_free(BASE + 2 * P, 3 * P) && !v.is_free(BASE + 2 * P, 4 * P));
    }

    #[test]
    fn exhaustion() {
        let mut v = root(4);
        for i in 0..4 {
            assert_eq!(v.allocate(0, P, 0, &mut lowest, i).unwrap(), BASE + u64::from(i) * P);
        }
        assert_eq!(v.allocate(0, P, 0, &mut lowest, 9), Err(VmarError::NoMemory));
        let r = req(0, 0, 1, FLAG_PERM_READ);
        assert_eq!(v.map(&r, 0, &mut lowest).unwrap_err(), VmarError::NoMemory);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn random_placement_uses_chooser_unless_compact() {
        let mut v: T = Vmar::new(BASE, 8 * P, ALL).unwrap();
        assert_eq!(v.allocate(0, 2 * P, 0, &mut |n| n - 1, 1).unwrap(), BASE + 6 * P);
        let mut c: T = Vmar::new(BASE, 8 * P, ALL | FLAG_COMPACT).unwrap();
        assert_eq!(c.allocate(0, 2 * P, 0, &mut |n| n - 1, 1).unwrap(), BASE);
    }

    #[test]
    fn allocate_error_order() {
        let mut v: T = Vmar::new(BASE, 8 * P, FLAG_CAN_MAP_READ).unwrap();
        let e = |v: &mut T, off, size, flags| v.allocate(off, size, flags, &mut lowest, 0).unwrap_err();
        assert_eq!(e(&mut v, 0, P, FLAG_PERM_READ), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, 0, P, FLAG_SPECIFIC_OVERWRITE), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, 0, 100, 0), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, 0, 0, 0), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, 0, P, FLAG_CAN_MAP_WRITE), VmarError::AccessDenied);
        assert_eq!(e(&mut v, P, P, 0), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, P, P, FLAG_SPECIFIC), VmarError::AccessDenied, "no CAN_MAP_SPECIFIC");
        let mut v: T = Vmar::new(BASE, 8 * P, ALL).unwrap();
        assert_eq!(e(&mut v, 8 * P, P, FLAG_SPECIFIC), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, 7 * P, 2 * P, FLAG_SPECIFIC), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, 100, P, FLAG_SPECIFIC), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, !(P - 1), 2 * P, FLAG_SPECIFIC), VmarError::InvalidArgs);
        assert_eq!(v.allocate(2 * P, 2 * P, FLAG_SPECIFIC | FLAG_CAN_MAP_READ, &mut lowest, 5).unwrap(), BASE + 2 * P);
        assert_eq!(e(&mut v, 3 * P, P, FLAG_SPECIFIC), VmarError::NoMemory, "specific overlap");
        assert_eq!(e(&mut v, P, 2 * P, FLAG_SPECIFIC), VmarError::NoMemory, "specific overlap");
        v.destroy().unwrap();
        assert_eq!(e(&mut v, 0, 100, 0), VmarError::InvalidArgs, "flags/size checked before state");
        assert_eq!(e(&mut v, 0, 0, 0), VmarError::BadState);
    }

    #[test]
    fn map_error_order_and_ceiling() {
        let mut v: T = Vmar::new(BASE, 8 * P, FLAG_CAN_MAP_SPECIFIC | FLAG_CAN_MAP_READ | FLAG_CAN_MAP_WRITE).unwrap();
        let e = |v: &mut T, r: MapRequest| v.map(&r, 0, &mut lowest).unwrap_err();
        let r = req(0, 0, 1, FLAG_PERM_READ);
        assert_eq!(e(&mut v, MapRequest { vmo_rights: RIGHT_READ, ..r }), VmarError::AccessDenied);
        assert_eq!(e(&mut v, req(0, 0, 1, FLAG_PERM_WRITE)), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, req(0, 0, 1, FLAG_PERM_READ | FLAG_CAN_MAP_READ)), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, MapRequest { vmar_rights: 0, ..r }), VmarError::AccessDenied);
        assert_eq!(e(&mut v, req(0, 0, 1, FLAG_PERM_READ | FLAG_COMPACT)), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, MapRequest { vmo_offset: 5, ..r }), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, MapRequest { vmo_offset: !(P - 1), ..r }), VmarError::InvalidArgs);
        assert_eq!(e(&mut v, MapRequest { len: 0, ..r }), VmarError::InvalidArgs);
        let rx = req(0, 0, 1, FLAG_PERM_READ | FLAG_PERM_EXECUTE);
        assert_eq!(e(&mut v, rx), VmarError::AccessDenied, "beyond CAN_MAP");
        assert_eq!(e(&mut v, req(1, 0, 1, FLAG_PERM_READ)), VmarError::InvalidArgs, "offset without SPECIFIC");
        assert_eq!(e(&mut v, req(8, 0, 1, FLAG_PERM_READ | FLAG_SPECIFIC)), VmarError::InvalidArgs);
        // len is rounded up to pages.
        let (addr, _) =
            v.map(&MapRequest { len: 1, ..req(1, 0, 0, FLAG_PERM_READ | FLAG_SPECIFIC) }, 7, &mut lowest).unwrap();
        assert_eq!(addr, BASE + P);
        assert_eq!(v.find(addr).unwrap().size, P);
        // Ceiling: both handles allow RW, VMO handle only R.
        let r = MapRequest { vmo_rights: RIGHT_READ | RIGHT_MAP, ..req(0, 0, 1, FLAG_PERM_READ) };
        let (addr, _) = v.map(&r, 8, &mut lowest).unwrap();
        assert_eq!(v.find(addr).unwrap().region.as_mapping().unwrap().max_perms, Perms::READ);
        assert_eq!(v.protect(addr, P, FLAG_PERM_READ | FLAG_PERM_WRITE), Err(VmarError::AccessDenied));
        v.destroy().unwrap();
        assert_eq!(e(&mut v, r), VmarError::BadState);
        assert_eq!(v.destroy().unwrap_err(), VmarError::BadState);
    }

    #[test]
    fn specific_overwrite_replaces_mappings_only() {
        let mut v = root(16);
        map_at(&mut v, 0, 100, 4, 1);
        map_at(&mut v, 4, 200, 4, 2);
        v.allocate(12 * P, 2 * P, FLAG_SPECIFIC, &mut lowest, 9).unwrap();
        // Plain SPECIFIC overlap: NO_MEMORY, nothing changes.
        let before = layout(&v);
        let r = req(2, 0, 4, FLAG_PERM_READ | FLAG_SPECIFIC);
        assert_eq!(v.map(&r, 3, &mut lowest).unwrap_err(), VmarError::NoMemory);
        // Overwrite touching the sub-VMAR: INVALID_ARGS, nothing changes.
        let r = req(10, 0, 3, FLAG_PERM_READ | FLAG_SPECIFIC_OVERWRITE);
        assert_eq!(v.map(&r, 3, &mut lowest).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(layout(&v), before);
        // Overwrite pages 2..6 (SPECIFIC_OVERWRITE implies SPECIFIC).
        let r = req(2, 50, 4, FLAG_PERM_READ | FLAG_SPECIFIC_OVERWRITE);
        let (addr, replaced) = v.map(&r, 3, &mut lowest).unwrap();
        assert_eq!(addr, BASE + 2 * P);
        let got: Vec<_> = replaced
            .iter()
            .map(|c| ((c.base - BASE) / P, c.size / P, c.region.as_mapping().unwrap().vmo_offset / P))
            .collect();
        assert_eq!(got, [(2, 2, 102), (4, 2, 200)]);
        assert_eq!(
            layout(&v),
            [(0, 2, 100, Perms::RW), (2, 4, 50, Perms::READ), (6, 2, 202, Perms::RW), (12, 2, u64::MAX, Perms::NONE)]
        );
        // Overwrite into free space replaces nothing.
        let r = req(8, 0, 2, FLAG_PERM_READ | FLAG_SPECIFIC_OVERWRITE);
        assert!(v.map(&r, 4, &mut lowest).unwrap().1.is_empty());
    }

    #[test]
    fn unmap_splits_head_middle_tail() {
        // Head.
        let mut v = root(16);
        map_at(&mut v, 2, 10, 6, 1);
        let removed = v.unmap(BASE + 2 * P, 2 * P).unwrap();
        assert_eq!((removed.len(), removed[0].size), (1, 2 * P));
        assert_eq!(layout(&v), [(4, 4, 12, Perms::RW)]);
        // Tail.
        let removed = v.unmap(BASE + 6 * P, 5 * P).unwrap();
        assert_eq!(removed[0].region.as_mapping().unwrap().vmo_offset, 14 * P);
        assert_eq!(layout(&v), [(4, 2, 12, Perms::RW)]);
        // Middle, with len rounded up to a page.
        let mut v = root(16);
        map_at(&mut v, 2, 10, 6, 1);
        let removed = v.unmap(BASE + 4 * P, 1).unwrap();
        assert_eq!((removed[0].base, removed[0].size), (BASE + 4 * P, P));
        assert_eq!(removed[0].region.as_mapping().unwrap().vmo_offset, 12 * P);
        assert_eq!(layout(&v), [(2, 2, 10, Perms::RW), (5, 3, 13, Perms::RW)]);
        // Empty range: OK, nothing.
        assert!(v.unmap(BASE + 10 * P, P).unwrap().is_empty());
    }

    #[test]
    fn unmap_across_mappings_and_subvmars() {
        let mut v = root(16);
        map_at(&mut v, 0, 0, 3, 1);
        map_at(&mut v, 3, 30, 2, 2);
        v.allocate(6 * P, 2 * P, FLAG_SPECIFIC, &mut lowest, 7).unwrap();
        map_at(&mut v, 8, 80, 4, 3);
        let before = layout(&v);
        // Partly overlapping the sub-VMAR: INVALID_ARGS, unchanged.
        assert_eq!(v.unmap(BASE + P, 6 * P).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(v.unmap(BASE + 7 * P, 3 * P).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(layout(&v), before);
        // Outside or malformed.
        assert_eq!(v.unmap(BASE + 15 * P, 2 * P).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(v.unmap(BASE - P, 2 * P).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(v.unmap(BASE + 1, P).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(v.unmap(BASE, 0).unwrap_err(), VmarError::InvalidArgs);
        assert_eq!(v.unmap(BASE, u64::MAX).unwrap_err(), VmarError::InvalidArgs);
        // Pages 1..10: splits two mappings, removes one and the whole sub-VMAR.
        let removed = v.unmap(BASE + P, 9 * P).unwrap();
        let kinds: Vec<_> = removed.iter().map(|c| ((c.base - BASE) / P, c.size / P, c.region.is_vmar())).collect();
        assert_eq!(kinds, [(1, 2, false), (3, 2, false), (6, 2, true), (8, 2, false)]);
        assert_eq!(layout(&v), [(0, 1, 0, Perms::RW), (10, 2, 82, Perms::RW)]);
        v.destroy().unwrap();
        assert_eq!(v.unmap(BASE, P).unwrap_err(), VmarError::BadState);
        assert_eq!(v.unmap(BASE + 1, P).unwrap_err(), VmarError::InvalidArgs, "args before state");
    }

    #[test]
    fn protect_splits_and_is_atomic() {
        let mut v = root(16);
        map_at(&mut v, 0, 0, 4, 1);
        map_at(&mut v, 4, 40, 4, 2);
        let ro = FLAG_PERM_READ;
        v.protect(BASE + P, 5 * P, ro).unwrap();
        assert_eq!(
            layout(&v),
            [(0, 1, 0, Perms::RW), (1, 3, 1, Perms::READ), (4, 2, 40, Perms::READ), (6, 2, 42, Perms::RW)]
        );
        // Whole-mapping protect does not split.
        v.protect(BASE + 6 * P, 2 * P, FLAG_PERM_READ | FLAG_PERM_EXECUTE).unwrap();
        assert_eq!(v.len(), 4);
        // Gaps: at addr, inside, at the end.
        map_at(&mut v, 9, 90, 2, 3);
        v.allocate(12 * P, 2 * P, FLAG_SPECIFIC, &mut lowest, 5).unwrap();
        let before = layout(&v);
        assert_eq!(v.protect(BASE + 8 * P, P, ro), Err(VmarError::NotFound));
        assert_eq!(v.protect(BASE + 6 * P, 4 * P, ro), Err(VmarError::NotFound));
        assert_eq!(v.protect(BASE + 9 * P, 3 * P, ro), Err(VmarError::NotFound));
        assert_eq!(v.protect(BASE + 12 * P, P, ro), Err(VmarError::InvalidArgs), "sub-VMAR");
        map_at(&mut v, 11, 110, 1, 4);
        assert_eq!(v.protect(BASE + 10 * P, 3 * P, ro), Err(VmarError::InvalidArgs), "sub-VMAR");
        let mut before = before;
        before.insert(5, (11, 1, 110, Perms::RW));
        assert_eq!(layout(&v), before);
        // Ceiling failure in the middle of a valid range leaves everything.
        let r = MapRequest { vmo_rights: RIGHT_READ | RIGHT_MAP, ..req(14, 0, 2, FLAG_PERM_READ | FLAG_SPECIFIC) };
        v.map(&r, 6, &mut lowest).unwrap();
        let before = layout(&v);
        assert_eq!(v.protect(BASE + 14 * P, 2 * P, FLAG_PERM_READ | FLAG_PERM_WRITE), Err(VmarError::AccessDenied));
        assert_eq!(v.protect(BASE + 2 * P, 5 * P, FLAG_PERM_READ | FLAG_PERM_EXECUTE), Ok(()));
        assert_eq!(v.protect(BASE, 3 * P, FLAG_PERM_WRITE), Err(VmarError::InvalidArgs));
        assert_eq!(v.protect(BASE, 3 * P, FLAG_PERM_READ | FLAG_SPECIFIC), Err(VmarError::InvalidArgs));
        assert_eq!(v.protect(BASE + 1, P, ro), Err(VmarError::InvalidArgs));
        assert_eq!(v.protect(BASE, 0, ro), Err(VmarError::InvalidArgs));
        assert_eq!(v.protect(BASE + 15 * P, 2 * P, ro), Err(VmarError::InvalidArgs), "outside");
        assert_ne!(layout(&v), before);
        // PROT_NONE is allowed.
        v.protect(BASE, P, 0).unwrap();
        assert_eq!(v.find(BASE).unwrap().region.as_mapping().unwrap().perms, Perms::NONE);
        v.destroy().unwrap();
        assert_eq!(v.protect(BASE, P, ro), Err(VmarError::BadState));
    }

    /// One page of the reference model.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Page {
        Vmar(u32),
        Map { obj: u32, vmo_page: u64, perms: Perms, max: Perms },
    }

    use crate::test_rng::Rng;

    fn pages_of(v: &T, n: usize) -> Vec<Option<Page>> {
        let mut out = vec![None; n];
        let mut last_end = BASE;
        for c in v.iter() {
            assert!(c.base >= last_end && c.size > 0 && c.base % P == 0 && c.size % P == 0);
            assert!(c.end() <= v.end());
            last_end = c.end();
            let first = ((c.base - BASE) / P) as usize;
            for i in 0..(c.size / P) as usize {
                out[first + i] = Some(match &c.region {
                    Region::Vmar(id) => Page::Vmar(*id),
                    Region::Mapping(m) => Page::Map {
                        obj: m.object,
                        vmo_page: m.vmo_offset / P + i as u64,
                        perms: m.perms,
                        max: m.max_perms,
                    },
                });
            }
        }
        out
    }

    #[test]
    fn randomized_against_page_model() {
        const N: usize = 48;
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut v: T = Vmar::new(BASE, N as u64 * P, ALL).unwrap();
        let mut model: Vec<Option<Page>> = vec![None; N];
        let perm_choices = [Perms::NONE, Perms::READ, Perms::RW, Perms::RX, Perms::RWX];
        // Successes of map, allocate, unmap, protect, and errors of any kind.
        let mut tally = [0u32; 5];
        for step in 0..20_000u32 {
            let at = rng.below(N as u64) as usize;
            let op = rng.below(10);
            let len = 1 + rng.below(if op >= 7 { 3 } else { 8 }) as usize;
            let end = at + len;
            let in_range = end <= N;
            match op {
                0..=2 => {
                    // map: specific, overwrite, or anywhere
                    let perms = perm_choices[rng.below(5) as usize];
                    let vmo_rights = RIGHT_MAP | perm_choices[rng.below(5) as usize].union(perms).rights();
                    let kind = rng.below(3);
                    let flags = perms.vm_flags() | [FLAG_SPECIFIC, FLAG_SPECIFIC_OVERWRITE, 0][kind as usize];
                    let vmo_page = rng.below(100);
                    let r = MapRequest {
                        vmar_offset: if kind == 2 { 0 } else { at as u64 * P },
                        vmo_offset: vmo_page * P,
                        len: len as u64 * P,
                        flags,
                        vmar_rights: RIGHTS,
                        vmo_rights,
                    };
                    let pick = rng.next();
                    let result = v.map(&r, step, &mut |n| pick % n);
                    let max = Perms::from_rights(vmo_rights);
                    let start = match kind {
                        2 => {
                            let free =
                                (0..=N.saturating_sub(len)).find(|&s| model[s..s + len].iter().all(Option::is_none));
                            match (free, &result) {
                                (None, r) => {
                                    assert_eq!(r.as_ref().unwrap_err(), &VmarError::NoMemory);
                                    None
                                }
                                (Some(_), Ok((addr, replaced))) => {
                                    assert!(replaced.is_empty());
                                    Some(((addr - BASE) / P) as usize)
                                }
                                (Some(_), Err(e)) => panic!("anywhere map failed: {e:?}"),
                            }
                        }
                        _ if !in_range => {
                            assert_eq!(result.unwrap_err(), VmarError::InvalidArgs);
                            None
                        }
                        _ => {
                            let span = &model[at..end];
                            let busy = span.iter().any(Option::is_some);
                            let sub = span.iter().any(|p| matches!(p, Some(Page::Vmar(_))));
                            match (kind, busy, sub) {
                                (0, true, _) => {
                                    assert_eq!(result.unwrap_err(), VmarError::NoMemory);
                                    None
                                }
                                (1, _, true) => {
                                    assert_eq!(result.unwrap_err(), VmarError::InvalidArgs);
                                    None
                                }
                                _ => {
                                    let (addr, replaced) = result.unwrap();
                                    assert_eq!(addr, BASE + at as u64 * P);
                                    let gone: u64 = replaced.iter().map(|c| c.size / P).sum();
                                    assert_eq!(gone as usize, span.iter().filter(|p| p.is_some()).count());
                                    Some(at)
                                }
                            }
                        }
                    };
                    if let Some(s) = start {
                        tally[0] += 1;
                        assert!(model[s..s + len].iter().all(|p| kind == 1 || p.is_none()));
                        for (i, page) in model[s..s + len].iter_mut().enumerate() {
                            *page = Some(Page::Map { obj: step, vmo_page: vmo_page + i as u64, perms, max });
                        }
                    }
                }
                3 => {
                    let specific = rng.below(2) == 0;
                    let (offset, flags) = if specific { (at as u64 * P, FLAG_SPECIFIC) } else { (0, 0) };
                    let pick = rng.next();
                    let result = v.allocate(offset, len as u64 * P, flags, &mut |n| pick % n, step);
                    let start = if specific {
                        if !in_range {
                            assert_eq!(result.unwrap_err(), VmarError::InvalidArgs);
                            None
                        } else if model[at..end].iter().any(Option::is_some) {
                            assert_eq!(result.unwrap_err(), VmarError::NoMemory);
                            None
                        } else {
                            Some(((result.unwrap() - BASE) / P) as usize)
                        }
                    } else {
                        let free = (0..=N.saturating_sub(len)).any(|s| model[s..s + len].iter().all(Option::is_none));
                        if free {
                            Some(((result.unwrap() - BASE) / P) as usize)
                        } else {
                            assert_eq!(result.unwrap_err(), VmarError::NoMemory);
                            None
                        }
                    };
                    if let Some(s) = start {
                        tally[1] += 1;
                        assert!(model[s..s + len].iter().all(Option::is_none));
                        model[s..s + len].fill(Some(Page::Vmar(step)));
                    }
                }
                4..=6 => {
                    let result = v.unmap(BASE + at as u64 * P, len as u64 * P);
                    if !in_range {
                        assert_eq!(result.unwrap_err(), VmarError::InvalidArgs);
                    } else {
                        let cuts_vmar = |i: usize| matches!(model[i], Some(Page::Vmar(_)));
                        let partial = (at > 0 && cuts_vmar(at) && model[at - 1] == model[at])
                            || (end < N && cuts_vmar(end) && model[end - 1] == model[end]);
                        if partial {
                            assert_eq!(result.unwrap_err(), VmarError::InvalidArgs);
                        } else {
                            let removed = result.unwrap();
                            tally[2] += 1;
                            let gone: u64 = removed.iter().map(|c| c.size / P).sum();
                            assert_eq!(gone as usize, model[at..end].iter().filter(|p| p.is_some()).count());
                            model[at..end].fill(None);
                        }
                    }
                }
                _ => {
                    let perms = perm_choices[rng.below(5) as usize];
                    let result = v.protect(BASE + at as u64 * P, len as u64 * P, perms.vm_flags());
                    let expected = if !in_range {
                        Err(VmarError::InvalidArgs)
                    } else {
                        model[at..end]
                            .iter()
                            .map(|p| match p {
                                None => Err(VmarError::NotFound),
                                Some(Page::Vmar(_)) => Err(VmarError::InvalidArgs),
                                Some(Page::Map { max, .. }) if !max.contains(perms) => Err(VmarError::AccessDenied),
                                Some(_) => Ok(()),
                            })
                            .find(Result::is_err)
                            .unwrap_or(Ok(()))
                    };
                    assert_eq!(result, expected, "step {step}");
                    if expected.is_ok() {
                        tally[3] += 1;
                        for p in &mut model[at..end] {
                            if let Some(Page::Map { perms: old, .. }) = p {
                                *old = perms;
                            }
                        }
                    }
                }
            }
            let now = pages_of(&v, N);
            assert_eq!(now, model, "step {step}");
        }
        tally[4] = 20_000 - tally[..4].iter().sum::<u32>();
        assert!(tally.iter().all(|&n| n > 400), "too few of some outcome: {tally:?}");
    }
}
