//! `mx_vmar_allocate`, `mx_vmar_map`, `mx_vmar_unmap`, `mx_vmar_protect`,
//! `mx_vmar_destroy`, `MX_INFO_VMAR` (§5.20 to §5.22) and the vDSO mapping
//! rules (§2.3).

use crate::fixture::*;
use crate::harness::Outcome;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Handle, Process, Rights, Status, Vmar, Vmo};
use mx_abi::object::{InfoHandleBasic, InfoTopic};
use mx_abi::VmFlags as F;

cases![
    root_vmar_covers_user_space,
    allocate_rights_follow_can_map,
    allocate_info_and_type,
    allocate_size_unaligned_or_zero,
    allocate_bad_flags,
    allocate_needs_parent_rights,
    allocate_rights_before_type,
    allocate_wrong_type,
    allocate_can_map_beyond_parent,
    allocate_offset_without_specific,
    allocate_specific_needs_can_map_specific,
    allocate_specific_at_offset,
    allocate_specific_outside_or_unaligned,
    allocate_specific_overlap_no_memory,
    allocate_no_room_no_memory,
    allocate_in_destroyed_parent,
    allocate_bad_out_pointers_undone,
    map_write_through_mapping,
    map_len_rounded_up,
    map_needs_map_right,
    map_perm_needs_vmo_rights,
    map_perm_needs_vmar_rights,
    map_write_or_exec_without_read,
    map_can_map_flag_invalid,
    map_check_order,
    map_bad_flags,
    map_vmo_offset_unaligned_or_overflow,
    map_in_destroyed_vmar,
    map_len_zero,
    map_beyond_can_map,
    map_offset_without_specific,
    map_specific_needs_can_map_specific,
    map_specific_outside,
    map_specific_overlap_no_memory,
    map_specific_overwrite_replaces,
    map_range_commits_now,
    map_bad_out_pointer_undone,
    map_wrong_types,
    unmap_bad_args,
    unmap_empty_range_ok,
    unmap_splits_mapping,
    unmap_destroys_whole_subregion,
    unmap_partial_subregion_invalid,
    unmap_in_destroyed_vmar,
    protect_bad_args,
    protect_needs_handle_rights,
    protect_nothing_mapped_not_found,
    protect_gap_not_found,
    protect_subregion_invalid,
    protect_beyond_ceiling_denied,
    protect_raise_within_ceiling,
    protect_read_only_faults_writer,
    protect_in_destroyed_vmar,
    destroy_twice_bad_state,
    destroy_is_recursive,
    destroy_frees_range,
    destroy_wrong_type,
    info_vmar_wrong_type,
    vdso_unmap_denied,
    vdso_protect_denied,
    vdso_second_exec_mapping_denied,
    vdso_exec_mapping_must_be_exact,
    vdso_overwrite_denied,
    vdso_read_only_mapping_allowed,
    vdso_own_unmap_denied,
    vdso_own_protect_through_root_invalid,
];

const RW: F = F::PERM_READ.union(F::PERM_WRITE);

fn vmo(size: u64) -> Result<Vmo, alloc::string::String> {
    Vmo::create(size).map_err(|s| alloc::format!("vmo_create: {s:?}"))
}

fn allocate(parent: u32, offset: usize, size: usize, flags: u32) -> (i32, u32, usize) {
    let (mut h, mut addr) = (0, 0);
    let s = unsafe { mx_vmar_allocate(parent, offset, size, flags, &mut h, &mut addr) };
    if s == 0 {
        drop(Handle::from_raw(h));
    }
    (s, h, addr)
}

fn map(vmar: u32, offset: usize, vmo: u32, vmo_offset: u64, len: usize, flags: F) -> (i32, usize) {
    map_raw(vmar, offset, vmo, vmo_offset, len, flags.bits())
}

fn map_raw(vmar: u32, offset: usize, vmo: u32, vmo_offset: u64, len: usize, flags: u32) -> (i32, usize) {
    let mut addr = 0;
    let s = unsafe { mx_vmar_map(vmar, offset, vmo, vmo_offset, len, flags, &mut addr) };
    (s, addr)
}

fn info(h: &Handle) -> Result<(u64, u64), Status> {
    let i: mx_abi::object::InfoVmar = h.info(InfoTopic::Vmar)?;
    Ok((i.base, i.len))
}

fn rights(h: u32) -> u32 {
    basic(h).map(|b| b.rights).unwrap_or(u32::MAX)
}

fn root_vmar_covers_user_space() -> Outcome {
    let root = ok!(root());
    expect_eq!(ok!(info(root.handle())), (0x100_0000, 0x7fff_feff_f000));
    Ok(())
}

fn allocate_rights_follow_can_map() -> Outcome {
    let root = ok!(root());
    for (flags, want) in [
        (F::empty(), 0x3),
        (F::CAN_MAP_READ, 0x7),
        (F::CAN_MAP_READ | F::CAN_MAP_WRITE, 0xf),
        (F::CAN_MAP_EXECUTE, 0x13),
        (F::CAN_MAP_READ | F::CAN_MAP_WRITE | F::CAN_MAP_EXECUTE | F::CAN_MAP_SPECIFIC, 0x1f),
    ] {
        let (child, _) = ok!(root.allocate(0, 4096, flags));
        expect_eq!(rights(child.raw()), want);
        ok!(unsafe { child.destroy() });
    }
    Ok(())
}

fn allocate_info_and_type() -> Outcome {
    let r = ok!(region(3, RW_SPECIFIC));
    expect_eq!(ok!(info(r.vmar.handle())), (r.addr as u64, 3 * 4096));
    let b: InfoHandleBasic = ok!(r.vmar.handle().info(InfoTopic::HandleBasic));
    expect_eq!(b.obj_type, 18);
    expect_eq!(b.props, 0);
    expect!(r.addr % 4096 == 0 && r.addr >= 0x100_0000);
    Ok(())
}

fn allocate_size_unaligned_or_zero() -> Outcome {
    let root = ok!(root());
    expect_status!(allocate(root.raw(), 0, 100, F::CAN_MAP_READ.bits()).0, Status::InvalidArgs);
    expect_status!(allocate(root.raw(), 0, 0, F::CAN_MAP_READ.bits()).0, Status::InvalidArgs);
    Ok(())
}

fn allocate_bad_flags() -> Outcome {
    let root = ok!(root());
    for bad in [F::PERM_READ, F::PERM_WRITE, F::SPECIFIC_OVERWRITE, F::MAP_RANGE] {
        expect_status!(allocate(root.raw(), 0, 4096, bad.bits()).0, Status::InvalidArgs);
    }
    expect_status!(allocate(root.raw(), 0, 4096, 1 << 20).0, Status::InvalidArgs);
    Ok(())
}

fn allocate_needs_parent_rights() -> Outcome {
    let root = ok!(root());
    let no_write = ok!(with_rights(root.handle(), Rights::DUPLICATE | Rights::READ | Rights::EXECUTE));
    expect_status!(allocate(no_write.raw(), 0, 4096, F::CAN_MAP_WRITE.bits()).0, Status::AccessDenied);
    expect_status!(allocate(no_write.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::Ok);
    let no_exec = ok!(with_rights(root.handle(), Rights::READ | Rights::WRITE));
    expect_status!(allocate(no_exec.raw(), 0, 4096, F::CAN_MAP_EXECUTE.bits()).0, Status::AccessDenied);
    let none = ok!(with_rights(root.handle(), Rights::NONE));
    expect_status!(allocate(none.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::AccessDenied);
    expect_status!(allocate(none.raw(), 0, 4096, 0).0, Status::Ok);
    Ok(())
}

/// The lookup checks the rights the CAN_MAP flags need before the type.
fn allocate_rights_before_type() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let no_read = ok!(with_rights(&event, Rights::WRITE));
    expect_status!(allocate(no_read.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::AccessDenied);
    Ok(())
}

fn allocate_wrong_type() -> Outcome {
    let event = ok!(Event::create());
    expect_status!(allocate(event.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::WrongType);
    expect_status!(allocate(NOT_A_HANDLE, 0, 4096, 0).0, Status::BadHandle);
    Ok(())
}

fn allocate_can_map_beyond_parent() -> Outcome {
    let r = ok!(region(2, F::CAN_MAP_READ));
    expect_status!(
        allocate(r.vmar.raw(), 0, 4096, (F::CAN_MAP_READ | F::CAN_MAP_WRITE).bits()).0,
        Status::AccessDenied
    );
    expect_status!(allocate(r.vmar.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::Ok);
    Ok(())
}

fn allocate_offset_without_specific() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    expect_status!(allocate(r.vmar.raw(), 4096, 4096, F::CAN_MAP_READ.bits()).0, Status::InvalidArgs);
    Ok(())
}

fn allocate_specific_needs_can_map_specific() -> Outcome {
    let r = ok!(region(4, F::CAN_MAP_READ));
    expect_status!(allocate(r.vmar.raw(), 4096, 4096, (F::SPECIFIC | F::CAN_MAP_READ).bits()).0, Status::AccessDenied);
    Ok(())
}

fn allocate_specific_at_offset() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let (s, _, addr) = allocate(r.vmar.raw(), 8192, 4096, (F::SPECIFIC | F::CAN_MAP_READ).bits());
    expect_status!(s, Status::Ok);
    expect_eq!(addr, r.addr + 8192);
    Ok(())
}

fn allocate_specific_outside_or_unaligned() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let f = (F::SPECIFIC | F::CAN_MAP_READ).bits();
    expect_status!(allocate(r.vmar.raw(), 3 * 4096, 8192, f).0, Status::InvalidArgs);
    expect_status!(allocate(r.vmar.raw(), 1 << 40, 4096, f).0, Status::InvalidArgs);
    expect_status!(allocate(r.vmar.raw(), 100, 4096, f).0, Status::InvalidArgs);
    expect_status!(allocate(r.vmar.raw(), usize::MAX & !4095, 4096, f).0, Status::InvalidArgs);
    Ok(())
}

fn allocate_specific_overlap_no_memory() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let f = (F::SPECIFIC | F::CAN_MAP_READ).bits();
    let (first, _) = ok!(r.vmar.allocate(4096, 8192, F::SPECIFIC | F::CAN_MAP_READ));
    expect_status!(allocate(r.vmar.raw(), 8192, 8192, f).0, Status::NoMemory);
    expect_status!(allocate(r.vmar.raw(), 0, 8192, f).0, Status::NoMemory);
    drop(first);
    Ok(())
}

fn allocate_no_room_no_memory() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let (_first, _) = ok!(r.vmar.allocate(0, 4096, F::SPECIFIC | F::CAN_MAP_READ));
    expect_status!(allocate(r.vmar.raw(), 0, 8192, F::CAN_MAP_READ.bits()).0, Status::NoMemory);
    expect_status!(allocate(r.vmar.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::Ok);
    Ok(())
}

fn allocate_in_destroyed_parent() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    ok!(unsafe { r.vmar.destroy() });
    expect_status!(allocate(r.vmar.raw(), 0, 4096, F::CAN_MAP_READ.bits()).0, Status::BadState);
    // Bad flags and an unaligned size are found first; a zero size after.
    expect_status!(allocate(r.vmar.raw(), 0, 4096, F::PERM_READ.bits()).0, Status::InvalidArgs);
    expect_status!(allocate(r.vmar.raw(), 0, 10, 0).0, Status::InvalidArgs);
    expect_status!(allocate(r.vmar.raw(), 0, 0, 0).0, Status::BadState);
    Ok(())
}

fn allocate_bad_out_pointers_undone() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let before = ok!(counts());
    let f = (F::SPECIFIC | F::CAN_MAP_READ).bits();
    let mut h = 0;
    let mut addr = 0usize;
    for bad in [0usize, KERNEL_ADDR, UNMAPPED_ADDR] {
        expect_status!(
            unsafe { mx_vmar_allocate(r.vmar.raw(), 0, 4096, f, bad as *mut _, &mut addr) },
            Status::InvalidArgs
        );
        expect_status!(
            unsafe { mx_vmar_allocate(r.vmar.raw(), 0, 4096, f, &mut h, bad as *mut _) },
            Status::InvalidArgs
        );
    }
    let after = ok!(counts());
    expect_eq!((after.objects, after.handles), (before.objects, before.handles));
    // The range is free again.
    expect_status!(allocate(r.vmar.raw(), 0, 4096, f).0, Status::Ok);
    Ok(())
}

fn map_write_through_mapping() -> Outcome {
    let m = ok!(mapped(2, 2));
    poke(m.addr + 4096 + 8, 0x0102_0304_0506_0708);
    let mut buf = [0u8; 8];
    ok!(m.vmo.read_exact(&mut buf, 4096 + 8));
    expect_eq!(u64::from_le_bytes(buf), 0x0102_0304_0506_0708);
    ok!(m.vmo.write_all(&0xfeed_u64.to_le_bytes(), 16));
    expect_eq!(peek(m.addr + 16), 0xfeed);
    Ok(())
}

fn map_len_rounded_up() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let v = ok!(vmo(8192));
    expect_eq!(map(r.vmar.raw(), 0, v.raw(), 0, 1, RW | F::SPECIFIC).0, 0);
    // The whole first page is mapped: a second mapping there overlaps ...
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 1, RW | F::SPECIFIC).0, Status::NoMemory);
    // ... and the second page is free.
    expect_status!(map(r.vmar.raw(), 4096, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::Ok);
    poke(r.addr + 4088, 9);
    expect_eq!(peek(r.addr + 4088), 9);
    Ok(())
}

fn map_needs_map_right() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    let no_map = ok!(with_rights(v.handle(), Rights::DEFAULT_VMO - Rights::MAP));
    expect_status!(map(r.vmar.raw(), 0, no_map.raw(), 0, 4096, F::PERM_READ).0, Status::AccessDenied);
    expect_status!(map(r.vmar.raw(), 0, no_map.raw(), 0, 4096, F::empty()).0, Status::AccessDenied);
    Ok(())
}

fn map_perm_needs_vmo_rights() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    let no_write = ok!(with_rights(v.handle(), Rights::DEFAULT_VMO - Rights::WRITE));
    expect_status!(map(r.vmar.raw(), 0, no_write.raw(), 0, 4096, RW).0, Status::AccessDenied);
    let no_read = ok!(with_rights(v.handle(), Rights::DEFAULT_VMO - Rights::READ));
    expect_status!(map(r.vmar.raw(), 0, no_read.raw(), 0, 4096, F::PERM_READ).0, Status::AccessDenied);
    expect_status!(map(r.vmar.raw(), 0, no_write.raw(), 0, 4096, F::PERM_READ).0, Status::Ok);
    Ok(())
}

fn map_perm_needs_vmar_rights() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    let read_only = ok!(with_rights(r.vmar.handle(), Rights::READ));
    expect_status!(map(read_only.raw(), 0, v.raw(), 0, 4096, RW).0, Status::AccessDenied);
    expect_status!(map(read_only.raw(), 0, v.raw(), 0, 4096, F::PERM_READ).0, Status::Ok);
    Ok(())
}

fn map_write_or_exec_without_read() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_WRITE).0, Status::InvalidArgs);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_EXECUTE).0, Status::InvalidArgs);
    Ok(())
}

fn map_can_map_flag_invalid() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    for bad in [F::CAN_MAP_READ, F::CAN_MAP_WRITE, F::CAN_MAP_EXECUTE] {
        expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_READ | bad).0, Status::InvalidArgs);
    }
    Ok(())
}

fn map_check_order() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    let no_map_no_write = ok!(with_rights(v.handle(), Rights::READ));
    // (3) MAP before (4) WRITE without READ.
    expect_status!(map(r.vmar.raw(), 0, no_map_no_write.raw(), 0, 4096, F::PERM_WRITE).0, Status::AccessDenied);
    let no_write = ok!(with_rights(v.handle(), Rights::READ | Rights::MAP));
    // (5) a CAN_MAP bit before (6) a permission the handles do not allow.
    expect_status!(map(r.vmar.raw(), 0, no_write.raw(), 0, 4096, RW | F::CAN_MAP_READ).0, Status::InvalidArgs);
    // (6) before (7) COMPACT.
    expect_status!(map(r.vmar.raw(), 0, no_write.raw(), 0, 4096, RW | F::COMPACT).0, Status::AccessDenied);
    // (7) before (8) an unaligned VMO offset.
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 1, 4096, RW | F::COMPACT).0, Status::InvalidArgs);
    // (1) the VMAR handle before (2) the VMO handle.
    expect_status!(map(NOT_A_HANDLE, 0, NOT_A_HANDLE, 0, 4096, RW).0, Status::BadHandle);
    Ok(())
}

fn map_bad_flags() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    for bad in [F::COMPACT.bits(), F::CAN_MAP_SPECIFIC.bits(), 1 << 20, 1 << 31] {
        expect_status!(map_raw(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_READ.bits() | bad).0, Status::InvalidArgs);
    }
    Ok(())
}

fn map_vmo_offset_unaligned_or_overflow() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 100, 4096, RW).0, Status::InvalidArgs);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), !4095u64, 8192, RW).0, Status::InvalidArgs);
    Ok(())
}

fn map_in_destroyed_vmar() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    ok!(unsafe { r.vmar.destroy() });
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, RW).0, Status::BadState);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 1, 4096, RW).0, Status::InvalidArgs);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 0, RW).0, Status::BadState);
    Ok(())
}

fn map_len_zero() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 0, RW).0, Status::InvalidArgs);
    Ok(())
}

fn map_beyond_can_map() -> Outcome {
    let r = ok!(region(1, F::CAN_MAP_READ | F::CAN_MAP_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, RW).0, Status::AccessDenied);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_READ | F::PERM_EXECUTE).0, Status::AccessDenied);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_READ).0, Status::Ok);
    Ok(())
}

fn map_offset_without_specific() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 4096, v.raw(), 0, 4096, RW).0, Status::InvalidArgs);
    Ok(())
}

fn map_specific_needs_can_map_specific() -> Outcome {
    let r = ok!(region(2, F::CAN_MAP_READ | F::CAN_MAP_WRITE));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 4096, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::AccessDenied);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, RW | F::SPECIFIC_OVERWRITE).0, Status::AccessDenied);
    Ok(())
}

fn map_specific_outside() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let v = ok!(vmo(8192));
    expect_status!(map(r.vmar.raw(), 4096, v.raw(), 0, 8192, RW | F::SPECIFIC).0, Status::InvalidArgs);
    expect_status!(map(r.vmar.raw(), 100, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::InvalidArgs);
    expect_status!(map(r.vmar.raw(), 1 << 40, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::InvalidArgs);
    Ok(())
}

fn map_specific_overlap_no_memory() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let v = ok!(vmo(8192));
    expect_status!(map(r.vmar.raw(), 4096, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::Ok);
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 8192, RW | F::SPECIFIC).0, Status::NoMemory);
    // No room anywhere for two more pages either.
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 8192, RW).0, Status::NoMemory);
    Ok(())
}

fn map_specific_overwrite_replaces() -> Outcome {
    let m = ok!(mapped(2, 2));
    poke(m.addr, 1);
    poke(m.addr + 4096, 2);
    let other = ok!(vmo(4096));
    ok!(other.write_all(&42u64.to_le_bytes(), 0));
    let (s, addr) = map(m.region.vmar.raw(), 4096, other.raw(), 0, 4096, RW | F::SPECIFIC_OVERWRITE);
    expect_status!(s, Status::Ok);
    expect_eq!(addr, m.addr + 4096);
    expect_eq!(peek(m.addr), 1);
    expect_eq!(peek(m.addr + 4096), 42);
    Ok(())
}

fn map_range_commits_now() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let v = ok!(vmo(4 * 4096));
    let before = ok!(counts());
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 3 * 4096, RW | F::MAP_RANGE).0, Status::Ok);
    expect_eq!(ok!(counts()).committed_pages, before.committed_pages + 3);
    Ok(())
}

fn map_bad_out_pointer_undone() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    for bad in [0usize, KERNEL_ADDR, UNMAPPED_ADDR] {
        let s = unsafe { mx_vmar_map(r.vmar.raw(), 0, v.raw(), 0, 4096, (RW | F::SPECIFIC).bits(), bad as *mut _) };
        expect_status!(s, Status::InvalidArgs);
    }
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::Ok);
    Ok(())
}

fn map_wrong_types() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(v.raw(), 0, v.raw(), 0, 4096, RW).0, Status::WrongType);
    expect_status!(map(r.vmar.raw(), 0, r.vmar.raw(), 0, 4096, RW).0, Status::WrongType);
    expect_status!(map(r.vmar.raw(), 0, NOT_A_HANDLE, 0, 4096, RW).0, Status::BadHandle);
    Ok(())
}

fn unmap(h: u32, addr: usize, len: usize) -> i32 {
    unsafe { mx_vmar_unmap(h, addr, len) }
}

fn unmap_bad_args() -> Outcome {
    let m = ok!(mapped(1, 2));
    let h = m.region.vmar.raw();
    expect_status!(unmap(h, m.addr + 1, 4096), Status::InvalidArgs);
    expect_status!(unmap(h, m.addr, 0), Status::InvalidArgs);
    expect_status!(unmap(h, m.addr + 4096, 8192), Status::InvalidArgs);
    expect_status!(unmap(h, m.addr - 4096, 4096), Status::InvalidArgs);
    expect_status!(unmap(h, KERNEL_ADDR, 4096), Status::InvalidArgs);
    expect_status!(unmap(h, m.addr, usize::MAX), Status::InvalidArgs);
    let event = ok!(Event::create());
    expect_status!(unmap(event.raw(), m.addr, 4096), Status::WrongType);
    expect_status!(unmap(NOT_A_HANDLE, m.addr, 4096), Status::BadHandle);
    expect_eq!(peek(m.addr), 0);
    Ok(())
}

fn unmap_empty_range_ok() -> Outcome {
    let m = ok!(mapped(1, 2));
    expect_status!(unmap(m.region.vmar.raw(), m.addr + 4096, 4096), Status::Ok);
    // Needs no right; `len` is rounded up (100 bytes unmap the page).
    let bare = ok!(with_rights(m.region.vmar.handle(), Rights::NONE));
    expect_status!(unmap(bare.raw(), m.addr, 100), Status::Ok);
    let v = ok!(vmo(4096));
    expect_status!(map(m.region.vmar.raw(), 0, v.raw(), 0, 4096, RW | F::SPECIFIC).0, Status::Ok);
    Ok(())
}

fn unmap_splits_mapping() -> Outcome {
    let m = ok!(mapped(3, 3));
    for i in 0..3 {
        poke(m.addr + i * 4096, i as u64 + 1);
    }
    expect_status!(unmap(m.region.vmar.raw(), m.addr + 4096, 4096), Status::Ok);
    expect_eq!(peek(m.addr), 1);
    expect_eq!(peek(m.addr + 8192), 3);
    let v = ok!(vmo(4096));
    expect_eq!(map(m.region.vmar.raw(), 4096, v.raw(), 0, 4096, RW | F::SPECIFIC), (0, m.addr + 4096));
    expect_eq!(peek(m.addr + 4096), 0);
    Ok(())
}

fn unmap_destroys_whole_subregion() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let (sub, addr) = ok!(r.vmar.allocate(4096, 8192, F::SPECIFIC | F::CAN_MAP_READ));
    expect_eq!(addr, r.addr + 4096);
    expect_status!(unmap(r.vmar.raw(), r.addr, 4 * 4096), Status::Ok);
    let v = ok!(vmo(4096));
    expect_status!(map(sub.raw(), 0, v.raw(), 0, 4096, F::PERM_READ).0, Status::BadState);
    Ok(())
}

fn unmap_partial_subregion_invalid() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let (sub, _) = ok!(r.vmar.allocate(4096, 8192, F::SPECIFIC | F::CAN_MAP_READ));
    expect_status!(unmap(r.vmar.raw(), r.addr, 8192), Status::InvalidArgs);
    // It survived.
    let v = ok!(vmo(4096));
    expect_status!(map(sub.raw(), 0, v.raw(), 0, 4096, F::PERM_READ).0, Status::Ok);
    Ok(())
}

fn unmap_in_destroyed_vmar() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    ok!(unsafe { r.vmar.destroy() });
    expect_status!(unmap(r.vmar.raw(), r.addr, 4096), Status::BadState);
    expect_status!(unmap(r.vmar.raw(), r.addr + 1, 4096), Status::InvalidArgs);
    Ok(())
}

fn protect(h: u32, addr: usize, len: usize, flags: u32) -> i32 {
    unsafe { mx_vmar_protect(h, addr, len, flags) }
}

fn protect_bad_args() -> Outcome {
    let m = ok!(mapped(1, 2));
    let h = m.region.vmar.raw();
    let r = F::PERM_READ.bits();
    // (Through the root VMAR, whose handle has every right the flags need.)
    let root = ok!(root());
    expect_status!(protect(root.raw(), m.addr, 4096, F::PERM_WRITE.bits()), Status::InvalidArgs);
    expect_status!(protect(root.raw(), m.addr, 4096, F::PERM_EXECUTE.bits()), Status::InvalidArgs);
    expect_status!(protect(h, m.addr + 1, 4096, r), Status::InvalidArgs);
    expect_status!(protect(h, m.addr, 0, r), Status::InvalidArgs);
    expect_status!(protect(h, m.addr, 4096, r | F::SPECIFIC.bits()), Status::InvalidArgs);
    expect_status!(protect(h, m.addr, 4096, r | (1 << 20)), Status::InvalidArgs);
    expect_status!(protect(h, m.addr, 3 * 4096, r), Status::InvalidArgs);
    expect_status!(protect(h, KERNEL_ADDR, 4096, r), Status::InvalidArgs);
    expect_eq!(peek(m.addr), 0);
    Ok(())
}

fn protect_needs_handle_rights() -> Outcome {
    let m = ok!(mapped(1, 1));
    let ro = ok!(with_rights(m.region.vmar.handle(), Rights::READ));
    expect_status!(protect(ro.raw(), m.addr, 4096, RW.bits()), Status::AccessDenied);
    expect_status!(protect(ro.raw(), m.addr, 4096, F::PERM_READ.bits()), Status::Ok);
    ok!(unsafe { m.region.vmar.protect(m.addr, 4096, RW) });
    // Rights before type: an event without WRITE, asked for PERM_WRITE.
    let event = ok!(Event::create()).into_handle();
    let ev_ro = ok!(with_rights(&event, Rights::READ));
    expect_status!(protect(ev_ro.raw(), m.addr, 4096, RW.bits()), Status::AccessDenied);
    expect_status!(protect(event.raw(), m.addr, 4096, RW.bits()), Status::WrongType);
    Ok(())
}

fn protect_nothing_mapped_not_found() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, F::PERM_READ.bits()), Status::NotFound);
    Ok(())
}

fn protect_gap_not_found() -> Outcome {
    let m = ok!(mapped(1, 2));
    expect_status!(protect(m.region.vmar.raw(), m.addr, 8192, F::PERM_READ.bits()), Status::NotFound);
    poke(m.addr, 5);
    expect_eq!(peek(m.addr), 5);
    Ok(())
}

fn protect_subregion_invalid() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let (_sub, _) = ok!(r.vmar.allocate(0, 4096, F::SPECIFIC | F::CAN_MAP_READ));
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, F::PERM_READ.bits()), Status::InvalidArgs);
    Ok(())
}

fn protect_beyond_ceiling_denied() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    let ro = ok!(with_rights(v.handle(), Rights::READ | Rights::MAP));
    expect_status!(map(r.vmar.raw(), 0, ro.raw(), 0, 4096, F::PERM_READ | F::SPECIFIC).0, Status::Ok);
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, RW.bits()), Status::AccessDenied);
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, (F::PERM_READ | F::PERM_EXECUTE).bits()), Status::AccessDenied);
    Ok(())
}

fn protect_raise_within_ceiling() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(r.vmar.raw(), 0, v.raw(), 0, 4096, F::PERM_READ | F::SPECIFIC).0, Status::Ok);
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, RW.bits()), Status::Ok);
    poke(r.addr, 99);
    let mut buf = [0u8; 8];
    ok!(v.read_exact(&mut buf, 0));
    expect_eq!(u64::from_le_bytes(buf), 99);
    Ok(())
}

/// Writing a page made read-only by `mx_vmar_protect` kills the writer.
fn protect_read_only_faults_writer() -> Outcome {
    expect_eq!(ok!(crate::child::run("fault:protect-ro")), -1);
    Ok(())
}

fn protect_in_destroyed_vmar() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    ok!(unsafe { r.vmar.destroy() });
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, F::PERM_READ.bits()), Status::BadState);
    expect_status!(protect(r.vmar.raw(), r.addr, 4096, F::PERM_WRITE.bits()), Status::InvalidArgs);
    Ok(())
}

fn destroy_twice_bad_state() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    expect_status!(unsafe { mx_vmar_destroy(r.vmar.raw()) }, Status::Ok);
    expect_status!(unsafe { mx_vmar_destroy(r.vmar.raw()) }, Status::BadState);
    // The handle stays open and still answers MX_INFO_VMAR.
    expect_status!(
        unsafe { mx_handle_close(ok!(r.vmar.duplicate(Rights::SAME_RIGHTS)).into_handle().into_raw()) },
        Status::Ok
    );
    Ok(())
}

fn destroy_is_recursive() -> Outcome {
    let r = ok!(region(4, RW_SPECIFIC));
    let (sub, _) = ok!(r.vmar.allocate(0, 8192, RW_SPECIFIC));
    let (subsub, _) = ok!(sub.allocate(0, 4096, RW_SPECIFIC));
    let v = ok!(vmo(4096));
    expect_status!(map(subsub.raw(), 0, v.raw(), 0, 4096, RW).0, Status::Ok);
    let before = ok!(counts());
    expect_status!(unsafe { mx_vmar_destroy(r.vmar.raw()) }, Status::Ok);
    expect_status!(map(subsub.raw(), 0, v.raw(), 0, 4096, RW).0, Status::BadState);
    expect_status!(unsafe { mx_vmar_destroy(sub.raw()) }, Status::BadState);
    expect_status!(unsafe { mx_vmar_destroy(subsub.raw()) }, Status::BadState);
    expect_eq!(ok!(counts()).handles, before.handles);
    Ok(())
}

fn destroy_frees_range() -> Outcome {
    let r = ok!(region(2, RW_SPECIFIC));
    let (sub, addr) = ok!(r.vmar.allocate(0, 8192, F::SPECIFIC | F::CAN_MAP_READ));
    ok!(unsafe { sub.destroy() });
    let (again, addr2) = ok!(r.vmar.allocate(0, 8192, F::SPECIFIC | F::CAN_MAP_READ));
    expect_eq!(addr2, addr);
    drop(again);
    Ok(())
}

fn destroy_wrong_type() -> Outcome {
    let v = ok!(vmo(4096));
    expect_status!(unsafe { mx_vmar_destroy(v.raw()) }, Status::WrongType);
    expect_status!(unsafe { mx_vmar_destroy(NOT_A_HANDLE) }, Status::BadHandle);
    let r = ok!(region(1, RW_SPECIFIC));
    let bare = ok!(with_rights(r.vmar.handle(), Rights::NONE));
    expect_status!(unsafe { mx_vmar_destroy(bare.raw()) }, Status::Ok);
    Ok(())
}

fn info_vmar_wrong_type() -> Outcome {
    let v = ok!(vmo(4096));
    expect_eq!(info(v.handle()), Err(Status::WrongType));
    let r = ok!(region(1, RW_SPECIFIC));
    let bare = ok!(with_rights(r.vmar.handle(), Rights::NONE));
    expect_eq!(ok!(info(&bare)), (r.addr as u64, 4096));
    Ok(())
}

/// A new, never started process with the vDSO code mapped R+X at the
/// start of a region of its own (with room for more after it), as a
/// loader maps it: (process, root VMAR, that region, vDSO VMO, vDSO base,
/// code size).
struct VdsoProcess {
    _process: Process,
    root: Vmar,
    region: Vmar,
    vdso: Vmo,
    base: usize,
    code: usize,
}

fn vdso_process() -> Result<VdsoProcess, alloc::string::String> {
    let job = core::mem::ManuallyDrop::new(Handle::from_raw(crate::child::job()));
    let vdso = core::mem::ManuallyDrop::new(Vmo::from_handle(Handle::from_raw(crate::child::vdso())));
    let vdso = vdso.duplicate(Rights::SAME_RIGHTS).map_err(|s| alloc::format!("no vDSO grant: {s:?}"))?;
    let mut head = [0u8; 4096];
    vdso.read_exact(&mut head, 0).map_err(|s| alloc::format!("vdso read: {s:?}"))?;
    let code = mx::vdso::first_segment_len(&head).map_err(|e| alloc::format!("vdso header: {e:?}"))?;
    let code = code.next_multiple_of(4096);
    let (process, root) = Process::create(&job, "vdso-test").map_err(|s| alloc::format!("process_create: {s:?}"))?;
    let flags = F::CAN_MAP_READ | F::CAN_MAP_WRITE | F::CAN_MAP_EXECUTE | F::CAN_MAP_SPECIFIC;
    let (region, base) = root.allocate(0, code + 4 * 4096, flags).map_err(|s| alloc::format!("allocate: {s:?}"))?;
    region
        .map(0, &vdso, 0, code, F::PERM_READ | F::PERM_EXECUTE | F::SPECIFIC)
        .map_err(|s| alloc::format!("map vDSO code: {s:?}"))?;
    Ok(VdsoProcess { _process: process, root, region, vdso, base, code })
}

fn vdso_unmap_denied() -> Outcome {
    let p = ok!(vdso_process());
    expect_status!(unmap(p.region.raw(), p.base, p.code), Status::AccessDenied);
    expect_status!(unmap(p.region.raw(), p.base + 4096, 4096), Status::AccessDenied);
    expect_status!(unmap(p.region.raw(), p.base, p.code + 4096), Status::AccessDenied);
    // Nor by removing the region around it.
    expect_status!(unmap(p.root.raw(), p.base, p.code + 4 * 4096), Status::AccessDenied);
    // After it, the region is free to unmap.
    expect_status!(unmap(p.region.raw(), p.base + p.code, 4096), Status::Ok);
    Ok(())
}

fn vdso_protect_denied() -> Outcome {
    let p = ok!(vdso_process());
    let h = p.region.raw();
    expect_status!(protect(h, p.base, p.code, (F::PERM_READ | F::PERM_EXECUTE).bits()), Status::AccessDenied);
    expect_status!(protect(h, p.base, 4096, F::PERM_READ.bits()), Status::AccessDenied);
    expect_status!(protect(h, p.base, p.code, RW.bits()), Status::AccessDenied);
    Ok(())
}

fn vdso_second_exec_mapping_denied() -> Outcome {
    let p = ok!(vdso_process());
    let rx = F::PERM_READ | F::PERM_EXECUTE;
    expect_status!(map(p.root.raw(), 0, p.vdso.raw(), 0, p.code, rx).0, Status::AccessDenied);
    Ok(())
}

fn vdso_exec_mapping_must_be_exact() -> Outcome {
    let job = core::mem::ManuallyDrop::new(Handle::from_raw(crate::child::job()));
    let code = ok!(vdso_process()).code;
    let vdso = core::mem::ManuallyDrop::new(Vmo::from_handle(Handle::from_raw(crate::child::vdso())));
    let (_p, vmar) = ok!(Process::create(&job, "vdso-test"));
    let rx = F::PERM_READ | F::PERM_EXECUTE;
    expect_status!(map(vmar.raw(), 0, vdso.raw(), 4096, code - 4096, rx).0, Status::AccessDenied);
    expect_status!(map(vmar.raw(), 0, vdso.raw(), 0, code - 4096, rx).0, Status::AccessDenied);
    expect_status!(map(vmar.raw(), 0, vdso.raw(), 0, code + 4096, rx).0, Status::AccessDenied);
    expect_status!(map(vmar.raw(), 0, vdso.raw(), 0, code, rx).0, Status::Ok);
    Ok(())
}

fn vdso_overwrite_denied() -> Outcome {
    let p = ok!(vdso_process());
    let v = ok!(vmo(8192));
    let (s, _) = map(p.region.raw(), 0, v.raw(), 0, 4096, RW | F::SPECIFIC_OVERWRITE);
    expect_status!(s, Status::AccessDenied);
    let (s, _) = map(p.region.raw(), p.code - 4096, v.raw(), 0, 8192, RW | F::SPECIFIC_OVERWRITE);
    expect_status!(s, Status::AccessDenied);
    Ok(())
}

fn vdso_read_only_mapping_allowed() -> Outcome {
    let p = ok!(vdso_process());
    expect_status!(map(p.root.raw(), 0, p.vdso.raw(), 0, p.code, F::PERM_READ).0, Status::Ok);
    Ok(())
}

fn vdso_own_unmap_denied() -> Outcome {
    expect_eq!(ok!(crate::child::run("vdso-unmap")), Status::AccessDenied as i32);
    Ok(())
}

/// The own vDSO lies in a region of its own inside the root VMAR, so a
/// protect through the root VMAR covers a sub-region: INVALID_ARGS (§5.22
/// step 7 comes before step 8); the child survives to report it.
fn vdso_own_protect_through_root_invalid() -> Outcome {
    expect_eq!(ok!(crate::child::run("vdso-protect")), Status::InvalidArgs as i32);
    Ok(())
}
