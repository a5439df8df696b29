//! In-kernel tests of user virtual memory (`test=ktest ktest=vm`): address
//! spaces loaded on real CPUs, user copies through real page faults, TLB
//! shootdown across CPUs, and accounting.

// `ktest!` registers each test through a `link_section` static, which the
// unsafe-code lint counts; the tests themselves use no `unsafe`.
#![allow(unsafe_code, reason = "ktest! statics")]

use super::{committed_pages, live_vmos, Access, AddressSpace, Fault, Vmar, Vmo, USER_BASE, USER_END, VMO_MAX_SIZE};
use crate::arch::x86::usercopy::{self, copy_from_user, copy_to_user};
use crate::arch::x86::{ipi, percpu::cpu_index, smp};
use crate::mm::PAGE_SIZE;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use core::sync::atomic::{AtomicU32, Ordering};
use kcore::vmar::{
    FLAG_CAN_MAP_READ, FLAG_CAN_MAP_SPECIFIC, FLAG_CAN_MAP_WRITE, FLAG_MAP_RANGE, FLAG_PERM_EXECUTE, FLAG_PERM_READ,
    FLAG_PERM_WRITE, FLAG_SPECIFIC, FLAG_SPECIFIC_OVERWRITE,
};
use mx_abi::{Rights, Status, UserIn, UserInOut, UserOut, VmoOp};

const P: u64 = PAGE_SIZE;
const RW: u32 = FLAG_PERM_READ | FLAG_PERM_WRITE;

fn all_rights() -> Rights {
    Rights::READ | Rights::WRITE | Rights::EXECUTE | Rights::MAP
}

/// Interrupts off for a test's duration, so the test thread is neither
/// preempted nor migrated while it relies on this CPU's loaded address
/// space (cross-CPU calls still work: a waiting caller polls).
struct NoPreempt(bool);

impl NoPreempt {
    fn new() -> NoPreempt {
        let were_on = x86_64::instructions::interrupts::are_enabled();
        x86_64::instructions::interrupts::disable();
        NoPreempt(were_on)
    }
}

impl Drop for NoPreempt {
    fn drop(&mut self) {
        if self.0 {
            x86_64::instructions::interrupts::enable();
        }
    }
}

/// An address space loaded on this CPU for the test's duration.
struct Loaded {
    space: Arc<AddressSpace>,
    root: Vmar,
    // Dropped last: the space is unloaded with interrupts still off.
    _no_preempt: NoPreempt,
}

impl Loaded {
    fn new() -> Result<Loaded, String> {
        let no_preempt = NoPreempt::new();
        let space = AddressSpace::new().map_err(|e| alloc::format!("AddressSpace::new: {e:?}"))?;
        space.activate();
        let root = space.root_vmar();
        Ok(Loaded { space, root, _no_preempt: no_preempt })
    }

    fn map(&self, vmo: &Arc<Vmo>, len: u64, flags: u32) -> Result<u64, String> {
        self.root.map(0, vmo, 0, len, flags, all_rights(), all_rights()).map_err(|e| alloc::format!("map: {e:?}"))
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        AddressSpace::deactivate();
    }
}

fn vmo(pages: u64) -> Result<Arc<Vmo>, String> {
    Vmo::create(pages * P).map_err(|e| alloc::format!("Vmo::create: {e:?}"))
}

fn read_byte(addr: u64) -> Result<u8, Status> {
    let mut b = [0u8; 1];
    copy_from_user(&mut b, addr as usize).map(|()| b[0])
}

ktest!(vm_usercopy_zero_fills_and_round_trips, || {
    let t = Loaded::new()?;
    let v = vmo(4)?;
    let base = t.map(&v, 4 * P, RW)?;
    kassert!((USER_BASE..USER_END).contains(&base) && base.is_multiple_of(P));
    let before = committed_pages();
    let mut page = vec![0xffu8; P as usize];
    copy_from_user(&mut page, base as usize).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(page.iter().all(|&b| b == 0), "first touch is not zero-filled");
    kassert!(committed_pages() == before + 1, "read fault committed {} pages", committed_pages() - before);
    kassert!(v.committed_bytes() == P);
    copy_to_user(base as usize + 100, b"hello, user").map_err(|e| alloc::format!("{e:?}"))?;
    let mut back = [0u8; 11];
    kassert!(v.read(100, &mut back) == Ok(11) && &back == b"hello, user");
    // Across a page boundary, into a page the VMO writes first.
    kassert!(v.write(3 * P - 2, b"abcd") == Ok(4));
    let mut across = [0u8; 4];
    copy_from_user(&mut across, (base + 3 * P - 2) as usize).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(&across == b"abcd");
    kassert!(t.space.translate(base + 2 * P).is_some());
    kassert!(t.space.translate(base + P).is_none(), "an untouched page is mapped");
    kassert!(t.space.root_phys() != crate::mm::paging::kernel_pml4());
    kassert!(Arc::ptr_eq(t.root.address_space(), &t.space) && !t.root.is_destroyed());
    kassert!(t.space.handle_fault(base + 4 * P, Access::Read) == Err(Fault::NotMapped));
    kassert!(t.space.handle_fault(base, Access::Execute) == Err(Fault::AccessDenied));
    kassert!(t.space.handle_fault(0x10, Access::Read) == Err(Fault::NotUser));
    Ok(())
});

ktest!(vm_usercopy_bad_pointers_are_invalid_args, || {
    let t = Loaded::new()?;
    let v = vmo(2)?;
    let base = t.map(&v, 2 * P, RW)?;
    v.write(0, &[7u8; 16]).map_err(|e| alloc::format!("{e:?}"))?;
    v.write(2 * P - 4, &[9u8; 4]).map_err(|e| alloc::format!("{e:?}"))?;
    let stack_addr = &base as *const u64 as usize;
    let end = (base + 2 * P) as usize;
    let bad: [(usize, usize, &str); 8] = [
        (0, 8, "NULL"),
        (8, 8, "near NULL"),
        (0xffff_8000_0000_1000, 8, "direct map"),
        (stack_addr, 8, "kernel stack"),
        (0x8000_0000_0000_0000, 8, "non-canonical"),
        ((base + 64 * P) as usize, 8, "unmapped"),
        (end - 4, 8, "straddling the end"),
        (usize::MAX - 3, 8, "wrapping"),
    ];
    for (addr, len, what) in bad {
        let mut buf = [0x55u8; 64];
        kassert!(copy_from_user(&mut buf[..len], addr) == Err(Status::InvalidArgs), "read {what}");
        kassert!(copy_to_user(addr, &[1u8; 64][..len]) == Err(Status::InvalidArgs), "write {what}");
    }
    // Huge lengths: past the user range, or past the mapping.
    kassert!(usercopy::read_bytes(UserIn::new(base as usize), usize::MAX, usize::MAX) == Err(Status::InvalidArgs));
    kassert!(usercopy::read_slice(UserIn::<u64>::new(base as usize), 1 << 60) == Err(Status::InvalidArgs));
    let mut big = vec![0u8; 1 << 20];
    kassert!(copy_from_user(&mut big, base as usize) == Err(Status::InvalidArgs));
    kassert!(copy_to_user(base as usize, &big) == Err(Status::InvalidArgs));
    kassert!(usercopy::read_bytes(UserIn::new(base as usize), 1 << 40, 4096) == Err(Status::OutOfRange));
    // Nothing changed: the straddling write wrote none of its bytes.
    let mut tail = [0u8; 4];
    kassert!(v.read(2 * P - 4, &mut tail) == Ok(4) && tail == [9; 4], "tail changed: {tail:?}");
    let mut head = [0u8; 16];
    kassert!(v.read(0, &mut head) == Ok(16) && head == [7; 16]);
    kassert!(read_byte(base) == Ok(7), "a good pointer still works");
    Ok(())
});

ktest!(vm_usercopy_without_address_space_fails, || {
    let _no_preempt = NoPreempt::new();
    AddressSpace::deactivate();
    kassert!(read_byte(USER_BASE) == Err(Status::InvalidArgs));
    kassert!(copy_to_user(USER_BASE as usize, &[1]) == Err(Status::InvalidArgs));
    Ok(())
});

ktest!(vm_typed_user_helpers, || {
    let t = Loaded::new()?;
    let v = vmo(2)?;
    let base = t.map(&v, 2 * P, RW)? as usize;
    usercopy::write(UserOut::<u64>::new(base + 8), &0x1122_3344_5566_7788).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(usercopy::read(UserIn::<u64>::new(base + 8)) == Ok(0x1122_3344_5566_7788));
    usercopy::write_slice(UserOut::<u32>::new(base + P as usize - 4), &[1, 2, 3])
        .map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(usercopy::read_slice(UserIn::<u32>::new(base + P as usize - 4), 3) == Ok(vec![1, 2, 3]));
    kassert!(usercopy::read(UserIn::<u64>::new(0)) == Err(Status::InvalidArgs));
    let inout = UserInOut::<u32>::new(base + 16);
    usercopy::write_inout(inout, &0xfeed).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(usercopy::read_inout(inout) == Ok(0xfeed));
    kassert!(usercopy::read_slice(UserIn::<u64>::new(base), usize::MAX / 4) == Err(Status::InvalidArgs));
    copy_to_user(base + 100, b"name\0junk").map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(usercopy::read_user_cstr(UserIn::new(base + 100), 32) == Ok(b"name".to_vec()));
    kassert!(usercopy::read_user_cstr(UserIn::new(base + 100), 3) == Err(Status::OutOfRange));
    kassert!(usercopy::read_user_string(UserIn::new(base + 100), 9, 4) == Ok(b"name".to_vec()));
    kassert!(usercopy::read_user_string(UserIn::new(0), 0, 4) == Err(Status::InvalidArgs));
    // A string running into unmapped memory fails instead of faulting.
    let last = base + 2 * P as usize - 3;
    copy_to_user(last, b"abc").map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(usercopy::read_user_cstr(UserIn::new(last), 1000) == Err(Status::InvalidArgs));
    Ok(())
});

ktest!(vm_protect_then_write_faults, || {
    let t = Loaded::new()?;
    let v = vmo(2)?;
    let base = t.map(&v, 2 * P, RW)?;
    copy_to_user(base as usize, &[1, 2, 3]).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(t.space.translate(base).is_some_and(|(_, w)| w));
    kassert!(t.root.protect(base, 2 * P, FLAG_PERM_READ) == Ok(()));
    kassert!(t.space.translate(base).is_some_and(|(_, w)| !w), "still writable after protect");
    kassert!(copy_to_user(base as usize, &[9]) == Err(Status::InvalidArgs));
    kassert!(read_byte(base) == Ok(1), "read after protect");
    kassert!(read_byte(base + P) == Ok(0), "read fault on a read-only page");
    // Write-without-read is refused; a gap is NOT_FOUND; beyond the ceiling is ACCESS_DENIED.
    kassert!(t.root.protect(base, P, FLAG_PERM_WRITE) == Err(Status::InvalidArgs));
    kassert!(t.root.protect(base, 3 * P, FLAG_PERM_READ) == Err(Status::NotFound));
    let ro = t.root.map(0, &v, 0, P, FLAG_PERM_READ, all_rights(), Rights::READ | Rights::MAP);
    let ro = ro.map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(t.root.protect(ro, P, RW) == Err(Status::AccessDenied));
    // Back to read-write: the write goes through again.
    kassert!(t.root.protect(base, P, RW) == Ok(()));
    copy_to_user(base as usize, &[9]).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(read_byte(ro) == Ok(9), "the other mapping sees the write");
    // No permissions: even reads fault.
    kassert!(t.root.protect(base, P, 0) == Ok(()));
    kassert!(read_byte(base) == Err(Status::InvalidArgs));
    Ok(())
});

ktest!(vm_unmap_then_access_fails, || {
    let t = Loaded::new()?;
    let v = vmo(3)?;
    let base = t.map(&v, 3 * P, RW)?;
    copy_to_user(base as usize, &[5u8; 3 * 4096]).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(t.root.unmap(base + P, P) == Ok(()));
    kassert!(t.space.translate(base + P).is_none());
    kassert!(read_byte(base + P) == Err(Status::InvalidArgs));
    kassert!(read_byte(base) == Ok(5) && read_byte(base + 2 * P) == Ok(5), "neighbours survive a split");
    kassert!(t.root.unmap(base + P, P) == Ok(()), "an empty range is OK");
    kassert!(t.root.unmap(base + 1, P) == Err(Status::InvalidArgs));
    kassert!(t.root.unmap(base, 0) == Err(Status::InvalidArgs));
    kassert!(t.root.unmap(base, 3 * P) == Ok(()));
    kassert!(read_byte(base) == Err(Status::InvalidArgs) && read_byte(base + 2 * P) == Err(Status::InvalidArgs));
    kassert!(v.mapping_spaces() == 0, "the VMO still thinks it is mapped");
    Ok(())
});

ktest!(vm_vmo_shrink_unmaps, || {
    let t = Loaded::new()?;
    let v = vmo(4)?;
    let base = t.map(&v, 4 * P, RW)?;
    copy_to_user(base as usize, &[3u8; 4 * 4096]).map_err(|e| alloc::format!("{e:?}"))?;
    let before = committed_pages();
    kassert!(v.set_size(P + 10) == Ok(()));
    kassert!(v.size() == P + 10);
    kassert!(committed_pages() == before - 2, "shrink freed {} pages", before - committed_pages());
    kassert!(t.space.translate(base + 2 * P).is_none() && t.space.translate(base + 3 * P).is_none());
    kassert!(read_byte(base + 2 * P) == Err(Status::InvalidArgs), "a fault past the VMO's end must fail");
    kassert!(read_byte(base + P) == Ok(3) && read_byte(base) == Ok(3));
    // Growing again gives zero pages.
    kassert!(v.set_size(4 * P) == Ok(()));
    kassert!(read_byte(base + 3 * P) == Ok(0));
    kassert!(v.set_size(u64::MAX) == Err(Status::OutOfRange));
    // Decommit frees and unmaps too; the next touch is a fresh zero page.
    kassert!(v.op_range(VmoOp::Decommit as u32, 0, 1, 0) == Ok(vec![]));
    kassert!(t.space.translate(base).is_none());
    kassert!(read_byte(base) == Ok(0));
    Ok(())
});

ktest!(vm_vmo_operations_follow_the_contract, || {
    kassert!(Vmo::create(u64::MAX).map(|_| ()) == Err(Status::InvalidArgs));
    kassert!(Vmo::create(VMO_MAX_SIZE).map(|v| v.size()) == Ok(VMO_MAX_SIZE), "the largest size is allowed");
    let v = Vmo::create(3 * P + 5).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(v.size() == 3 * P + 5, "size is kept exactly");
    let mut buf = [1u8; 16];
    kassert!(v.read(3 * P + 5, &mut buf) == Ok(0), "offset == size moves 0 bytes");
    kassert!(v.read(3 * P + 6, &mut buf) == Err(Status::OutOfRange));
    kassert!(v.read(u64::MAX - 4, &mut buf) == Err(Status::OutOfRange));
    kassert!(v.read(3 * P, &mut buf) == Ok(5) && buf[..5] == [0; 5], "trimmed, zero");
    kassert!(v.committed_bytes() == 0, "reading commits nothing");
    kassert!(v.write(3 * P, &[2u8; 16]) == Ok(5));
    kassert!(v.committed_bytes() == P);
    let op = |op: VmoOp, offset, size, buffer| v.op_range(op as u32, offset, size, buffer);
    kassert!(op(VmoOp::Commit, 0, 2 * P, 0) == Ok(vec![]));
    kassert!(v.committed_bytes() == 3 * P);
    kassert!(op(VmoOp::Commit, 4 * P, 1, 0) == Err(Status::OutOfRange));
    let lookup = op(VmoOp::Lookup, 0, 2 * P, 16).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(lookup.len() == 2 && lookup.iter().all(|p| p.is_multiple_of(P) && *p != 0));
    kassert!(op(VmoOp::Lookup, 0, 2 * P, 15) == Err(Status::BufferTooSmall));
    kassert!(op(VmoOp::Lookup, 0, 0, 0) == Err(Status::InvalidArgs));
    kassert!(op(VmoOp::Lookup, 3 * P, 6, 8) == Err(Status::OutOfRange));
    kassert!(op(VmoOp::Decommit, P, 1, 0) == Ok(vec![]));
    kassert!(v.committed_bytes() == 2 * P);
    kassert!(op(VmoOp::Lookup, 0, 2 * P, 16) == Err(Status::NoMemory), "lookup of an uncommitted page");
    kassert!(op(VmoOp::Lock, 0, P, 0) == Err(Status::NotSupported));
    kassert!(op(VmoOp::Unlock, 0, P, 0) == Err(Status::NotSupported));
    kassert!(op(VmoOp::CacheClean, 0, 0, 0) == Err(Status::InvalidArgs));
    kassert!(op(VmoOp::CacheSync, 0, 4 * P, 0) == Err(Status::OutOfRange));
    kassert!(op(VmoOp::CacheCleanInvalidate, 0, P, 0) == Ok(vec![]));
    kassert!(v.op_range(0, 0, P, 0) == Err(Status::InvalidArgs));
    kassert!(v.op_range(10, 0, P, 0) == Err(Status::InvalidArgs));
    Ok(())
});

ktest!(vm_vmo_over_physical_pages_is_read_only, || {
    let phys = crate::mm::frame::alloc_contiguous(2, 0).ok_or("no frames")?;
    crate::mm::paging::copy_to_frame(phys, 0, &[0xabu8; 4096]);
    crate::mm::paging::copy_to_frame(phys + P, 0, &[0xcdu8; 4096]);
    let committed = committed_pages();
    {
        let v = Vmo::from_physical(phys, P + 100).map_err(|e| alloc::format!("{e:?}"))?;
        kassert!(v.is_read_only() && v.size() == P + 100);
        let mut buf = [0u8; 8];
        kassert!(v.read(P + 96, &mut buf) == Ok(4) && buf[..4] == [0xcd; 4]);
        kassert!(v.write(0, &[1]) == Err(Status::AccessDenied));
        kassert!(v.set_size(P) == Err(Status::NotSupported));
        kassert!(committed_pages() == committed + 1, "the tail copy is an owned page");
        let t = Loaded::new()?;
        let base = t.map(&v, 2 * P, FLAG_PERM_READ)?;
        kassert!(read_byte(base) == Ok(0xab) && read_byte(base + P + 99) == Ok(0xcd));
        kassert!(read_byte(base + P + 100) == Ok(0), "bytes past the end are not exposed");
        kassert!(t.space.translate(base).is_some_and(|(p, w)| p == phys && !w));
        kassert!(Vmo::from_physical(phys + 1, P).map(|_| ()) == Err(Status::InvalidArgs));
    }
    kassert!(committed_pages() == committed);
    crate::mm::frame::free_contiguous(phys, 2);
    Ok(())
});

ktest!(vm_map_range_commits_and_maps_now, || {
    let t = Loaded::new()?;
    let v = vmo(3)?;
    let base = t.map(&v, 4 * P, RW | FLAG_MAP_RANGE)?;
    kassert!(v.committed_bytes() == 3 * P);
    kassert!((0..3).all(|i| t.space.translate(base + i * P).is_some()), "not mapped up front");
    kassert!(t.space.translate(base + 3 * P).is_none(), "mapped past the VMO's end");
    Ok(())
});

ktest!(vm_specific_and_overwrite, || {
    let t = Loaded::new()?;
    let flags = FLAG_CAN_MAP_SPECIFIC | FLAG_CAN_MAP_READ | FLAG_CAN_MAP_WRITE;
    let (sub, sub_base) = t.root.allocate(0, 16 * P, flags).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(sub.base() == sub_base && sub.size() == 16 * P);
    let (a, b) = (vmo(4)?, vmo(4)?);
    a.write(0, &[0xaa; 8]).map_err(|e| alloc::format!("{e:?}"))?;
    b.write(0, &[0xbb; 8]).map_err(|e| alloc::format!("{e:?}"))?;
    let r = all_rights();
    let at = sub.map(2 * P, &a, 0, 4 * P, RW | FLAG_SPECIFIC, r, r).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(at == sub_base + 2 * P);
    kassert!(read_byte(at + P) == Ok(0));
    kassert!(sub.map(4 * P, &b, 0, P, RW | FLAG_SPECIFIC, r, r) == Err(Status::NoMemory), "overlap");
    kassert!(sub.map(4 * P, &b, 0, P, RW, r, r) == Err(Status::InvalidArgs), "offset without SPECIFIC");
    kassert!(sub.map(15 * P, &b, 0, 2 * P, RW | FLAG_SPECIFIC, r, r) == Err(Status::InvalidArgs), "outside");
    kassert!(sub.map(0, &b, 0, P, RW | FLAG_PERM_EXECUTE | FLAG_SPECIFIC, r, r) == Err(Status::AccessDenied));
    kassert!(sub.map(0, &b, 0, P, RW, r, Rights::READ) == Err(Status::AccessDenied), "no MAP right");
    kassert!(t.root.allocate(sub_base - USER_BASE, P, FLAG_SPECIFIC).map(|_| ()) == Err(Status::NoMemory));
    let over = sub.map(3 * P, &b, 0, P, RW | FLAG_SPECIFIC_OVERWRITE, r, r).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(over == at + P);
    kassert!(read_byte(at + P) == Ok(0xbb), "the overwrite's VMO shows through");
    kassert!(read_byte(at) == Ok(0xaa) && read_byte(at + 2 * P) == Ok(0), "the pieces around it stay");
    kassert!(t.root.unmap(sub_base + P, P) == Err(Status::InvalidArgs), "partly over a sub-region");
    kassert!(sub.destroy() == Ok(()));
    kassert!(sub.destroy() == Err(Status::BadState));
    kassert!(sub.map(0, &b, 0, P, RW, r, r) == Err(Status::BadState));
    kassert!(read_byte(at) == Err(Status::InvalidArgs), "destroy unmaps");
    kassert!(a.mapping_spaces() == 0 && b.mapping_spaces() == 0);
    // The range is free again.
    let again = t.root.map(sub_base - USER_BASE, &a, 0, P, RW | FLAG_SPECIFIC, r, r);
    kassert!(again == Ok(sub_base));
    Ok(())
});

ktest!(vm_vdso_code_mapping_is_locked, || {
    let t = Loaded::new()?;
    let v = vmo(3)?;
    v.set_vdso_code_range(P, 2 * P);
    let r = all_rights();
    let rx = FLAG_PERM_READ | FLAG_PERM_EXECUTE;
    kassert!(t.root.map(0, &v, 0, 3 * P, rx, r, r) == Err(Status::AccessDenied), "wrong range");
    kassert!(t.space.vdso_code_range().is_none(), "a refused map left a mapping");
    let data = t.root.map(0, &v, 0, P, FLAG_PERM_READ, r, r).map_err(|e| alloc::format!("{e:?}"))?;
    let code = t.root.map(0, &v, P, 2 * P, rx, r, r).map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(t.space.vdso_code_range() == Some((code, code + 2 * P)));
    kassert!(t.root.map(0, &v, P, 2 * P, rx, r, r) == Err(Status::AccessDenied), "a second one");
    kassert!(read_byte(code) == Ok(0));
    kassert!(t.root.unmap(code, P) == Err(Status::AccessDenied));
    kassert!(t.root.unmap(code - 16 * P, 64 * P) == Err(Status::AccessDenied), "a range around it");
    kassert!(t.root.protect(code, 2 * P, FLAG_PERM_READ) == Err(Status::AccessDenied));
    kassert!(t.root.protect(code, 3 * P, FLAG_PERM_READ) == Err(Status::AccessDenied), "walk reaches it first");
    kassert!(t.root.protect(code + 1, P, FLAG_PERM_READ) == Err(Status::InvalidArgs), "earlier checks win");
    let spec = t.root.map(code - USER_BASE, &v, 0, P, FLAG_PERM_READ | FLAG_SPECIFIC_OVERWRITE, r, r);
    kassert!(spec == Err(Status::AccessDenied), "overwrite");
    kassert!(t.space.translate(code).is_some() && read_byte(code + P) == Ok(0), "the mapping survived");
    kassert!(t.root.unmap(data, P) == Ok(()), "other mappings of the VMO are ordinary");
    // Teardown may remove it.
    kassert!(t.space.destroy() == Ok(()));
    kassert!(read_byte(code) == Err(Status::InvalidArgs));
    Ok(())
});

ktest!(vm_tlb_shootdown_reaches_other_cpus, || {
    let others = smp::online_count().saturating_sub(1);
    if others == 0 {
        log::info!("ktest: vm_tlb_shootdown_reaches_other_cpus skipped: one CPU");
        return Ok(());
    }
    let t = Loaded::new()?;
    let v = vmo(1)?;
    let base = t.map(&v, P, RW)?;
    copy_to_user(base as usize, &[0x5a]).map_err(|e| alloc::format!("{e:?}"))?;
    let space = &t.space;
    let (saw, faulted, active) = (AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0));
    // Load the space on every other CPU and read through it there, so each
    // caches the translation.
    ipi::call_on_others(&|| {
        space.activate();
        if space.is_active_on(cpu_index()) {
            active.fetch_add(1, Ordering::Relaxed);
        }
        if read_byte(base) == Ok(0x5a) {
            saw.fetch_add(1, Ordering::Relaxed);
        }
    });
    kassert!(active.load(Ordering::Relaxed) == others && saw.load(Ordering::Relaxed) == others);
    kassert!(t.root.unmap(base, P) == Ok(()));
    // A CPU that kept its cached translation would still read 0x5a.
    ipi::call_on_others(&|| {
        if read_byte(base) == Err(Status::InvalidArgs) {
            faulted.fetch_add(1, Ordering::Relaxed);
        }
        AddressSpace::deactivate();
    });
    kassert!(faulted.load(Ordering::Relaxed) == others, "{} of {others} CPUs faulted", faulted.load(Ordering::Relaxed));
    kassert!((0..smp::online_count()).all(|cpu| cpu == cpu_index() || !space.is_active_on(cpu)));
    Ok(())
});

/// Builds and tears down a bit of everything.
fn churn() -> Result<(), String> {
    let t = Loaded::new()?;
    let v = vmo(8)?;
    let base = t.map(&v, 8 * P, RW)?;
    copy_to_user(base as usize, &[1u8; 3 * 4096]).map_err(|e| alloc::format!("{e:?}"))?;
    let (sub, _) =
        t.root.allocate(0, 64 * P, FLAG_CAN_MAP_READ | FLAG_CAN_MAP_WRITE).map_err(|e| alloc::format!("{e:?}"))?;
    let w = vmo(4)?;
    let at = sub
        .map(0, &w, 0, 4 * P, RW | FLAG_MAP_RANGE, all_rights(), all_rights())
        .map_err(|e| alloc::format!("{e:?}"))?;
    kassert!(read_byte(at + 3 * P) == Ok(0));
    kassert!(t.root.unmap(base + P, P) == Ok(()));
    kassert!(v.set_size(2 * P) == Ok(()));
    let far = vmo(1 << 30)?;
    kassert!(far.write(((1 << 30) - 1) * P, &[1]) == Ok(1), "a page at the far end of a 4 TiB VMO");
    // The space goes away with sub-regions and mappings still in it.
    drop(sub);
    Ok(())
}

ktest!(vm_accounting_returns_to_baseline, || {
    let _no_preempt = NoPreempt::new();
    // Warm the heap's slabs first: they never shrink.
    churn()?;
    let frames = crate::mm::frame::stats().free_frames;
    let (committed, vmos, heap) = (committed_pages(), live_vmos(), crate::mm::heap::in_use());
    churn()?;
    kassert!(committed_pages() == committed, "committed pages {} != {committed}", committed_pages());
    kassert!(live_vmos() == vmos, "live VMOs {} != {vmos}", live_vmos());
    kassert!(crate::mm::heap::in_use() == heap, "heap {} != {heap}", crate::mm::heap::in_use());
    let now = crate::mm::frame::stats().free_frames;
    kassert!(now == frames, "free frames {now} != {frames}");
    Ok(())
});

ktest!(vm_retired_space_leaves_idle_cpus, || {
    let others = smp::online_count().saturating_sub(1);
    if others == 0 {
        log::info!("ktest: vm_retired_space_leaves_idle_cpus skipped: one CPU");
        return Ok(());
    }
    let space = AddressSpace::new().map_err(|e| alloc::format!("AddressSpace::new: {e:?}"))?;
    // Loaded on every other CPU, where the idle thread then keeps it.
    ipi::call_on_others(&|| space.activate());
    let loaded_elsewhere =
        |s: &AddressSpace| (0..smp::online_count()).any(|cpu| cpu != cpu_index() && s.is_active_on(cpu));
    kassert!(loaded_elsewhere(&space) && Arc::strong_count(&space) == 1 + others as usize);
    // Retiring only kicks them; each lets go when its idle loop wakes.
    space.retire();
    let deadline = crate::time::now_ns() + 1_000_000_000;
    while (loaded_elsewhere(&space) || Arc::strong_count(&space) != 1) && crate::time::now_ns() < deadline {
        core::hint::spin_loop();
    }
    kassert!(!loaded_elsewhere(&space), "a CPU still has the retired space loaded");
    kassert!(Arc::strong_count(&space) == 1, "{} references left", Arc::strong_count(&space));
    Ok(())
});
