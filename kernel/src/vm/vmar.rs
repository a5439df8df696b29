//! Virtual memory address regions (`mx_vmar_*`): the kernel side of
//! `kcore::vmar`, which does the range maths and the contract's checks;
//! this adds the page tables, the vDSO code mapping's rules, `MAP_RANGE`
//! and TLB shootdown.
//!
//! A [`Vmar`] is one handle's view of a region: the address space and the
//! region's id in it. Regions live in the address space's table, so the
//! whole tree is under one lock; a destroyed region stays in the table
//! (answering `BAD_STATE`) until its last `Vmar` is dropped.

#![forbid(unsafe_code)]

use super::aspace::{retire, AddressSpace, Flush, KChild, KVmar, MapRef, VmarNode};
use super::vmo::Vmo;
use crate::mm::PAGE_SIZE;
use alloc::sync::Arc;
use alloc::vec::Vec;
use kcore::vmar::{MapRequest, Perms, Region, VmarError, FLAG_MAP_RANGE, FLAG_PERM_MASK};
use mx_abi::{Rights, Status};

fn status(e: VmarError) -> Status {
    match e {
        VmarError::InvalidArgs => Status::InvalidArgs,
        VmarError::NoMemory => Status::NoMemory,
        VmarError::BadState => Status::BadState,
        VmarError::NotFound => Status::NotFound,
        VmarError::AccessDenied => Status::AccessDenied,
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// `[addr, addr + round_up(len))` if well formed (for the vDSO checks; the
/// contract's errors for malformed ranges come from `kcore`).
fn user_range(addr: u64, len: u64) -> Option<(u64, u64)> {
    if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
        return None;
    }
    let len = len.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1);
    Some((addr, addr.checked_add(len)?))
}

/// A handle's reference to a VMAR.
pub struct Vmar {
    space: Arc<AddressSpace>,
    id: u64,
    base: u64,
    size: u64,
}

impl core::fmt::Debug for Vmar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Vmar({:#x}..{:#x})", self.base, self.base + self.size)
    }
}

impl Vmar {
    /// A new handle object for region `id` of `space`.
    pub(super) fn new_handle(space: Arc<AddressSpace>, id: u64) -> Vmar {
        let (base, size) = {
            let mut state = space.state.lock();
            match state.vmars.get_mut(&id) {
                Some(node) => {
                    node.handles += 1;
                    (node.v.base(), node.v.size())
                }
                None => (0, 0),
            }
        };
        Vmar { space, id, base, size }
    }

    /// Absolute base address (`mx_info_vmar_t.base`).
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size in bytes (`mx_info_vmar_t.len`).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The address space the region belongs to.
    pub fn address_space(&self) -> &Arc<AddressSpace> {
        &self.space
    }

    /// Whether the region has been destroyed.
    pub fn is_destroyed(&self) -> bool {
        self.space.state.lock().vmars.get(&self.id).is_none_or(|n| n.v.is_destroyed())
    }

    /// `mx_vmar_allocate` after the parent lookup (whose rights check
    /// covers the `CAN_MAP_*` flags): a child region and its absolute base.
    /// Its handle rights are [`kcore::vmar::child_vmar_rights`]`(flags)`.
    /// Errors in the order of `magenta-abi.md` §5.20: `INVALID_ARGS` (bad
    /// flags, unaligned size), `BAD_STATE`, `INVALID_ARGS` (`size == 0`),
    /// `ACCESS_DENIED` (`CAN_MAP_*` beyond the parent's), `INVALID_ARGS`
    /// (offset without `SPECIFIC`), `ACCESS_DENIED` (`SPECIFIC` without
    /// `CAN_MAP_SPECIFIC`), `INVALID_ARGS` (outside, unaligned), `NO_MEMORY`
    /// (overlap, no room). Placement without `SPECIFIC` is random unless the
    /// parent is `COMPACT`.
    pub fn allocate(&self, offset: u64, size: u64, flags: u32) -> Result<(Vmar, u64), Status> {
        let id = {
            let mut guard = self.space.state.lock();
            let state = &mut *guard;
            let id = state.next_id;
            let node = state.vmars.get_mut(&self.id).ok_or(Status::BadState)?;
            let base = node.v.allocate(offset, size, flags, &mut super::random_below, id).map_err(status)?;
            state.next_id += 1;
            let child = match KVmar::new(base, size, flags) {
                Ok(child) => child,
                Err(e) => {
                    // Unreachable: the parent validated the range.
                    node.v.remove(base);
                    return Err(status(e));
                }
            };
            state.vmars.insert(id, VmarNode { v: child, parent: Some(self.id), handles: 0 });
            id
        };
        let child = Vmar::new_handle(self.space.clone(), id);
        let base = child.base;
        Ok((child, base))
    }

    /// `mx_vmar_map` after both lookups: maps `[vmo_offset, vmo_offset +
    /// round_up(len))` of `vmo` and returns the address. `vmar_rights` and
    /// `vmo_rights` are the two handles' rights.
    ///
    /// Errors in the order of `magenta-abi.md` §5.21, steps 3 to 17: those
    /// of [`kcore::vmar::Vmar::map`], then `ACCESS_DENIED` for an invalid
    /// vDSO code mapping (an executable mapping of a VMO with a vDSO code
    /// range that is not exactly that range, a second one in this address
    /// space, or a `SPECIFIC_OVERWRITE` over the existing one), then
    /// `NO_MEMORY` from `MAP_RANGE` (commit and map now). On any error
    /// nothing changed.
    #[allow(clippy::too_many_arguments, reason = "mirrors mx_vmar_map")]
    pub fn map(
        &self,
        vmar_offset: u64,
        vmo: &Arc<Vmo>,
        vmo_offset: u64,
        len: u64,
        flags: u32,
        vmar_rights: Rights,
        vmo_rights: Rights,
    ) -> Result<u64, Status> {
        let req = MapRequest {
            vmar_offset,
            vmo_offset,
            len,
            flags,
            vmar_rights: vmar_rights.bits(),
            vmo_rights: vmo_rights.bits(),
        };
        let is_vdso_code = vmo.vdso_code_range().is_some() && Perms::from_vm_flags(flags).contains(Perms::EXECUTE);
        let mut flush = Flush::new();
        let mut dead = Vec::new();
        let result = self.map_locked(&req, vmo, is_vdso_code, &mut flush, &mut dead);
        self.space.shootdown(&flush);
        drop(dead);
        result
    }

    fn map_locked(
        &self,
        req: &MapRequest,
        vmo: &Arc<Vmo>,
        is_vdso_code: bool,
        flush: &mut Flush,
        dead: &mut Vec<KChild>,
    ) -> Result<u64, Status> {
        let mut guard = self.space.state.lock();
        let state = &mut *guard;
        let object = MapRef::new(vmo.clone(), self.space.weak());
        let node = state.vmars.get_mut(&self.id).ok_or(Status::BadState)?;
        let (base, replaced) = node.v.map(req, object, &mut super::random_below).map_err(status)?;
        let size = node.v.get(base).map_or(0, |c| c.size);
        // Step 16: the vDSO code mapping's rules.
        let overwrites_vdso = state.vdso_code.is_some_and(|v| replaced.iter().any(|c| overlaps(v, (c.base, c.end()))));
        let valid_code =
            |(offset, len): (u64, u64)| offset == req.vmo_offset && len.div_ceil(PAGE_SIZE) * PAGE_SIZE == size;
        let bad_code = is_vdso_code && (state.vdso_used || !vmo.vdso_code_range().is_some_and(valid_code));
        if overwrites_vdso || bad_code {
            undo_map(node, base, replaced);
            return Err(Status::AccessDenied);
        }
        // Step 17: MAP_RANGE commits now (all or nothing).
        let first = req.vmo_offset / PAGE_SIZE;
        if req.flags & FLAG_MAP_RANGE != 0 {
            if let Err(e) = vmo.commit_pages(first, first + size / PAGE_SIZE) {
                undo_map(node, base, replaced);
                return Err(e);
            }
        }
        if is_vdso_code {
            state.vdso_used = true;
            state.vdso_code = Some((base, base + size));
        }
        retire(&self.space, state, replaced, flush, dead);
        if req.flags & FLAG_MAP_RANGE != 0 {
            let mapped = match state.vmars.get(&self.id).and_then(|n| n.v.get(base)) {
                Some(KChild { region: Region::Mapping(m), .. }) => self.space.map_committed(base, size, m),
                _ => Ok(()),
            };
            if let Err(e) = mapped {
                // Out of page-table frames: take the new mapping back out.
                if let Some(node) = state.vmars.get_mut(&self.id) {
                    if let Some(child) = node.v.remove(base) {
                        self.space.unmap_ptes(base, base + size, flush);
                        dead.push(child);
                    }
                }
                if is_vdso_code {
                    state.vdso_code = None;
                }
                return Err(e);
            }
        }
        Ok(base)
    }

    /// `mx_vmar_unmap` after the lookup: removes `[addr, addr +
    /// round_up(len))`, splitting mappings partly inside and destroying
    /// sub-regions wholly inside. Errors in the order of `magenta-abi.md`
    /// §5.22: `INVALID_ARGS` (unaligned, `len == 0`), `BAD_STATE`,
    /// `INVALID_ARGS` (outside, partly over a sub-region), `ACCESS_DENIED`
    /// (touches the vDSO code mapping). An empty range is `OK`.
    pub fn unmap(&self, addr: u64, len: u64) -> Result<(), Status> {
        let mut flush = Flush::new();
        let mut dead = Vec::new();
        let result = (|| {
            let mut guard = self.space.state.lock();
            let state = &mut *guard;
            let node = state.vmars.get_mut(&self.id).ok_or(Status::BadState)?;
            let removed = node.v.unmap(addr, len).map_err(status)?;
            if state.vdso_code.is_some_and(|v| removed.iter().any(|c| overlaps(v, (c.base, c.end())))) {
                undo_unmap(node, removed);
                return Err(Status::AccessDenied);
            }
            retire(&self.space, state, removed, &mut flush, &mut dead);
            Ok(())
        })();
        self.space.shootdown(&flush);
        drop(dead);
        result
    }

    /// `mx_vmar_protect` after the lookup (whose rights check covers the
    /// `PERM_*` flags): sets the permissions of `[addr, addr +
    /// round_up(len))`. Errors in the order of `magenta-abi.md` §5.22:
    /// `INVALID_ARGS` (WRITE/EXECUTE without READ; unaligned, non-`PERM`
    /// bits, `len == 0`), `BAD_STATE`, `INVALID_ARGS` (outside), then
    /// walking the range: `NOT_FOUND` (a gap), `INVALID_ARGS` (a
    /// sub-region), `ACCESS_DENIED` (beyond a mapping's ceiling, or the vDSO
    /// code mapping).
    pub fn protect(&self, addr: u64, len: u64, prot_flags: u32) -> Result<(), Status> {
        let mut flush = Flush::new();
        let result = (|| {
            let mut guard = self.space.state.lock();
            let state = &mut *guard;
            let node = state.vmars.get_mut(&self.id).ok_or(Status::BadState)?;
            if let (Some(range), Some(vdso)) = (user_range(addr, len), state.vdso_code) {
                if overlaps(range, vdso) {
                    return Err(protect_error(&node.v, range, prot_flags, vdso));
                }
            }
            node.v.protect(addr, len, prot_flags).map_err(status)?;
            let (start, end) = user_range(addr, len).ok_or(Status::InvalidArgs)?;
            for child in node.v.iter().filter(|c| c.base >= start && c.base < end) {
                if let Region::Mapping(m) = &child.region {
                    let read_only = m.object.vmo.is_read_only();
                    self.space.protect_ptes(child.base, child.end(), m.perms, read_only, &mut flush);
                }
            }
            Ok(())
        })();
        self.space.shootdown(&flush);
        result
    }

    /// `mx_vmar_destroy` after the lookup: unmaps everything inside,
    /// destroys sub-regions, and frees the region's range in its parent;
    /// later operations on it fail with `BAD_STATE`. `BAD_STATE` if already
    /// destroyed. (The vDSO code mapping goes with its region: process
    /// teardown must be able to empty an address space.)
    pub fn destroy(&self) -> Result<(), Status> {
        let mut flush = Flush::new();
        let mut dead = Vec::new();
        let result = (|| {
            let mut guard = self.space.state.lock();
            let state = &mut *guard;
            let node = state.vmars.get_mut(&self.id).ok_or(Status::BadState)?;
            let children = node.v.destroy().map_err(status)?;
            let (parent, base) = (node.parent, node.v.base());
            if let Some(parent) = parent.and_then(|p| state.vmars.get_mut(&p)) {
                if let Some(me) = parent.v.remove(base) {
                    dead.push(me);
                }
            }
            retire(&self.space, state, children, &mut flush, &mut dead);
            Ok(())
        })();
        self.space.shootdown(&flush);
        drop(dead);
        result
    }
}

impl Drop for Vmar {
    fn drop(&mut self) {
        let mut state = self.space.state.lock();
        if let Some(node) = state.vmars.get_mut(&self.id) {
            node.handles = node.handles.saturating_sub(1);
            if node.handles == 0 && node.v.is_destroyed() {
                state.vmars.remove(&self.id);
            }
        }
    }
}

/// Takes a new mapping back out and puts back what it replaced (nothing
/// was unmapped yet).
fn undo_map(node: &mut VmarNode, base: u64, replaced: Vec<KChild>) {
    drop(node.v.remove(base));
    undo_unmap(node, replaced);
}

/// Puts removed pieces back (their page-table entries are untouched).
fn undo_unmap(node: &mut VmarNode, removed: Vec<KChild>) {
    for child in removed {
        let restored = node.v.insert(child.base, child.size, child.region);
        debug_assert!(restored.is_ok(), "vm: could not restore a removed piece");
    }
}

/// The error `mx_vmar_protect` gives for a range that touches the vDSO code
/// mapping: the contract's checks in order, with the vDSO mapping counting
/// as beyond its ceiling where the walk reaches it.
fn protect_error(v: &KVmar, (start, end): (u64, u64), prot_flags: u32, vdso: (u64, u64)) -> Status {
    let perms = Perms::from_vm_flags(prot_flags);
    if !perms.is_valid() || prot_flags & !FLAG_PERM_MASK != 0 {
        return Status::InvalidArgs;
    }
    if v.is_destroyed() {
        return Status::BadState;
    }
    if start < v.base() || end > v.end() {
        return Status::InvalidArgs;
    }
    let mut cursor = start;
    for c in v.iter().filter(|c| c.end() > start && c.base < end) {
        if c.base > cursor {
            return Status::NotFound;
        }
        match &c.region {
            Region::Vmar(_) => return Status::InvalidArgs,
            Region::Mapping(m) if !m.max_perms.contains(perms) || overlaps(vdso, (c.base, c.end())) => {
                return Status::AccessDenied
            }
            Region::Mapping(_) => cursor = c.end(),
        }
    }
    if cursor < end {
        Status::NotFound
    } else {
        Status::AccessDenied
    }
}
