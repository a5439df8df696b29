//! `mx_vmo_create`, `mx_vmo_read`, `mx_vmo_write`, `mx_vmo_get_size`,
//! `mx_vmo_set_size`, `mx_vmo_op_range` (§5.17 to §5.19; `op_range` as the
//! pinned tree's `VmObjectPaged`).

use crate::fixture::*;
use crate::harness::Outcome;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Rights, Status, Vmo};
use mx_abi::object::{InfoHandleBasic, InfoTopic};

cases![
    create_rights_and_type,
    create_zero_size,
    create_size_is_exact,
    create_max_size,
    create_options_invalid,
    create_size_too_big,
    create_bad_out_creates_nothing,
    fresh_vmo_reads_zeros,
    write_then_read_across_pages,
    read_trimmed_at_size,
    read_at_size_is_empty,
    read_past_size_out_of_range,
    read_huge_offset_out_of_range,
    write_trimmed_at_size,
    write_at_size_is_empty,
    write_past_size_out_of_range,
    read_needs_read_right,
    write_needs_write_right,
    read_rights_before_type,
    read_wrong_type,
    read_bad_handle,
    read_bad_buffer,
    write_bad_buffer,
    read_bad_buffer_before_range,
    read_buffer_checked_for_whole_len,
    write_buffer_checked_for_whole_len,
    read_into_read_only_buffer,
    read_bad_actual,
    read_zero_len_null_buffer,
    get_size_needs_no_right,
    get_size_wrong_type,
    get_size_bad_pointer,
    set_size_needs_write,
    set_size_too_big,
    set_size_exact_bytes,
    shrink_then_grow_reads_zeros,
    shrink_then_read_past_end,
    shrink_clears_mapped_pages,
    shrink_unmaps_mapped_pages,
    op_commit_commits_pages,
    op_commit_out_of_range,
    op_decommit_frees_and_zeros,
    op_lock_not_supported,
    op_unknown_invalid,
    op_lookup_committed,
    op_lookup_null_buffer,
    op_lookup_buffer_too_small,
    op_bad_handle_wrong_type,
];

fn vmo(size: u64) -> Result<Vmo, alloc::string::String> {
    Vmo::create(size).map_err(|s| alloc::format!("vmo_create({size}): {s:?}"))
}

fn read(h: u32, buf: &mut [u8], offset: u64) -> (i32, usize) {
    let mut actual = usize::MAX;
    let s = unsafe { mx_vmo_read(h, buf.as_mut_ptr().cast(), offset, buf.len(), &mut actual) };
    (s, actual)
}

fn write(h: u32, buf: &[u8], offset: u64) -> (i32, usize) {
    let mut actual = usize::MAX;
    let s = unsafe { mx_vmo_write(h, buf.as_ptr().cast(), offset, buf.len(), &mut actual) };
    (s, actual)
}

fn create_rights_and_type() -> Outcome {
    let v = ok!(vmo(4096));
    let b: InfoHandleBasic = ok!(v.handle().info(InfoTopic::HandleBasic));
    expect_eq!(b.rights, 0x10ff);
    expect_eq!(b.obj_type, 3);
    expect_eq!(b.props, 1);
    Ok(())
}

fn create_zero_size() -> Outcome {
    let v = ok!(vmo(0));
    expect_eq!(ok!(v.size()), 0);
    let mut buf = [0u8; 8];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 0));
    Ok(())
}

fn create_size_is_exact() -> Outcome {
    let v = ok!(vmo(5000));
    expect_eq!(ok!(v.size()), 5000);
    Ok(())
}

fn create_max_size() -> Outcome {
    let max = !4095u64;
    let v = ok!(vmo(max));
    expect_eq!(ok!(v.size()), max);
    let mut buf = [0xffu8; 16];
    expect_eq!(read(v.raw(), &mut buf, max - 16), (0, 16));
    expect_eq!(buf, [0u8; 16]);
    Ok(())
}

fn create_options_invalid() -> Outcome {
    let mut out = 0;
    expect_status!(unsafe { mx_vmo_create(4096, 1, &mut out) }, Status::InvalidArgs);
    expect_eq!(out, 0);
    Ok(())
}

fn create_size_too_big() -> Outcome {
    let mut out = 0;
    for size in [(!4095u64) + 1, u64::MAX] {
        expect_status!(unsafe { mx_vmo_create(size, 0, &mut out) }, Status::InvalidArgs);
    }
    // The option check comes first.
    expect_status!(unsafe { mx_vmo_create(u64::MAX, 1, &mut out) }, Status::InvalidArgs);
    Ok(())
}

fn create_bad_out_creates_nothing() -> Outcome {
    let before = ok!(counts());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR, 0x8000_0000_0000_0000] {
        expect_status!(unsafe { mx_vmo_create(4096, 0, bad as *mut _) }, Status::InvalidArgs);
    }
    let after = ok!(counts());
    expect_eq!(after.vmos, before.vmos);
    expect_eq!(after.handles, before.handles);
    Ok(())
}

fn fresh_vmo_reads_zeros() -> Outcome {
    let v = ok!(vmo(3 * 4096));
    let mut buf = alloc::vec![0x5au8; 3 * 4096];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 3 * 4096));
    expect!(buf.iter().all(|&b| b == 0), "fresh VMO not zero");
    Ok(())
}

fn write_then_read_across_pages() -> Outcome {
    let v = ok!(vmo(3 * 4096));
    let data: alloc::vec::Vec<u8> = (0..6000u32).map(|i| (i % 251) as u8).collect();
    expect_eq!(write(v.raw(), &data, 4000), (0, 6000));
    let mut back = alloc::vec![0u8; 6000];
    expect_eq!(read(v.raw(), &mut back, 4000), (0, 6000));
    expect!(back == data, "read back differs");
    let mut before = [0xffu8; 8];
    expect_eq!(read(v.raw(), &mut before, 3992), (0, 8));
    expect_eq!(before, [0u8; 8]);
    Ok(())
}

fn read_trimmed_at_size() -> Outcome {
    let v = ok!(vmo(100));
    let mut buf = [0u8; 200];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 100));
    expect_eq!(read(v.raw(), &mut buf, 50), (0, 50));
    Ok(())
}

fn read_at_size_is_empty() -> Outcome {
    let v = ok!(vmo(100));
    let mut buf = [0u8; 16];
    expect_eq!(read(v.raw(), &mut buf, 100), (0, 0));
    Ok(())
}

fn read_past_size_out_of_range() -> Outcome {
    let v = ok!(vmo(100));
    let mut buf = [0u8; 16];
    expect_status!(read(v.raw(), &mut buf, 101).0, Status::OutOfRange);
    expect_status!(read(v.raw(), &mut buf[..0], 101).0, Status::OutOfRange);
    Ok(())
}

fn read_huge_offset_out_of_range() -> Outcome {
    let v = ok!(vmo(4096));
    let mut buf = [0u8; 16];
    expect_status!(read(v.raw(), &mut buf, u64::MAX).0, Status::OutOfRange);
    expect_status!(read(v.raw(), &mut buf, u64::MAX - 4).0, Status::OutOfRange);
    Ok(())
}

fn write_trimmed_at_size() -> Outcome {
    let v = ok!(vmo(100));
    expect_eq!(write(v.raw(), &[7u8; 200], 60), (0, 40));
    let mut buf = [0u8; 100];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 100));
    expect!(buf[..60].iter().all(|&b| b == 0) && buf[60..].iter().all(|&b| b == 7));
    Ok(())
}

fn write_at_size_is_empty() -> Outcome {
    let v = ok!(vmo(100));
    expect_eq!(write(v.raw(), &[1u8; 8], 100), (0, 0));
    Ok(())
}

fn write_past_size_out_of_range() -> Outcome {
    let v = ok!(vmo(100));
    expect_status!(write(v.raw(), &[1u8; 8], 101).0, Status::OutOfRange);
    expect_status!(write(v.raw(), &[1u8; 8], u64::MAX).0, Status::OutOfRange);
    Ok(())
}

fn read_needs_read_right() -> Outcome {
    let v = ok!(vmo(100));
    let no_read = ok!(with_rights(v.handle(), Rights::DEFAULT_VMO - Rights::READ));
    let mut buf = [0u8; 8];
    expect_status!(read(no_read.raw(), &mut buf, 0).0, Status::AccessDenied);
    Ok(())
}

fn write_needs_write_right() -> Outcome {
    let v = ok!(vmo(100));
    let no_write = ok!(with_rights(v.handle(), Rights::DEFAULT_VMO - Rights::WRITE));
    expect_status!(write(no_write.raw(), &[1u8; 8], 0).0, Status::AccessDenied);
    let mut buf = [9u8; 8];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 8));
    expect_eq!(buf, [0u8; 8]);
    Ok(())
}

fn read_rights_before_type() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let bare = ok!(with_rights(&event, Rights::WRITE));
    let mut buf = [0u8; 8];
    expect_status!(read(bare.raw(), &mut buf, 0).0, Status::AccessDenied);
    Ok(())
}

fn read_wrong_type() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0u8; 8];
    expect_status!(read(event.raw(), &mut buf, 0).0, Status::WrongType);
    expect_status!(write(event.raw(), &buf, 0).0, Status::WrongType);
    Ok(())
}

fn read_bad_handle() -> Outcome {
    let mut buf = [0u8; 8];
    expect_status!(read(NOT_A_HANDLE, &mut buf, 0).0, Status::BadHandle);
    expect_status!(read(0, &mut buf, 0).0, Status::BadHandle);
    expect_status!(write(NOT_A_HANDLE, &buf, 0).0, Status::BadHandle);
    Ok(())
}

fn read_bad_buffer() -> Outcome {
    let v = ok!(vmo(4096));
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR, 0x8000_0000_0000_0000] {
        let mut actual = 0;
        expect_status!(unsafe { mx_vmo_read(v.raw(), bad as *mut _, 0, 16, &mut actual) }, Status::InvalidArgs);
    }
    Ok(())
}

fn write_bad_buffer() -> Outcome {
    let v = ok!(vmo(4096));
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR, 0x8000_0000_0000_0000] {
        let mut actual = 0;
        expect_status!(unsafe { mx_vmo_write(v.raw(), bad as *const _, 0, 16, &mut actual) }, Status::InvalidArgs);
    }
    let mut buf = [1u8; 16];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 16));
    expect_eq!(buf, [0u8; 16]);
    Ok(())
}

/// The buffer is checked (step 2) before the range (step 3).
fn read_bad_buffer_before_range() -> Outcome {
    let v = ok!(vmo(100));
    let mut actual = 0;
    expect_status!(unsafe { mx_vmo_read(v.raw(), KERNEL_ADDR as *mut _, 200, 16, &mut actual) }, Status::InvalidArgs);
    expect_status!(
        unsafe { mx_vmo_write(v.raw(), KERNEL_ADDR as *const _, 200, 16, &mut actual) },
        Status::InvalidArgs
    );
    Ok(())
}

/// Every page of the whole `len` is touched before the copy, even the part
/// that the trim to the VMO's size leaves out.
fn read_buffer_checked_for_whole_len() -> Outcome {
    let (m, page) = ok!(page_then_hole());
    let v = ok!(vmo(100));
    let mut actual = 0;
    expect_status!(unsafe { mx_vmo_read(v.raw(), page as *mut _, 0, 8192, &mut actual) }, Status::InvalidArgs);
    expect_status!(unsafe { mx_vmo_read(v.raw(), page as *mut _, 0, usize::MAX, &mut actual) }, Status::InvalidArgs);
    // What fits the mapped page is fine.
    expect_status!(unsafe { mx_vmo_read(v.raw(), page as *mut _, 0, 4096, &mut actual) }, Status::Ok);
    expect_eq!(actual, 100);
    drop(m);
    Ok(())
}

fn write_buffer_checked_for_whole_len() -> Outcome {
    let (m, page) = ok!(page_then_hole());
    let v = ok!(vmo(100));
    poke(page, 0x1122_3344_5566_7788);
    let mut actual = 0;
    expect_status!(unsafe { mx_vmo_write(v.raw(), page as *const _, 0, 4097, &mut actual) }, Status::InvalidArgs);
    expect_status!(unsafe { mx_vmo_write(v.raw(), page as *const _, 0, usize::MAX, &mut actual) }, Status::InvalidArgs);
    let mut buf = [0u8; 8];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 8));
    expect_eq!(buf, [0u8; 8]);
    drop(m);
    Ok(())
}

fn read_into_read_only_buffer() -> Outcome {
    let r = ok!(region(1, RW_SPECIFIC));
    let backing = ok!(vmo(4096));
    let addr = ok!(r.vmar.map(0, &backing, 0, 4096, mx_abi::VmFlags::PERM_READ | mx_abi::VmFlags::SPECIFIC));
    let v = ok!(vmo(100));
    ok!(v.write(&[3u8; 100], 0));
    let mut actual = 0;
    expect_status!(unsafe { mx_vmo_read(v.raw(), addr as *mut _, 0, 100, &mut actual) }, Status::InvalidArgs);
    expect_eq!(peek(addr), 0);
    Ok(())
}

fn read_bad_actual() -> Outcome {
    let v = ok!(vmo(100));
    let mut buf = [0u8; 8];
    for bad in [0usize, KERNEL_ADDR, UNMAPPED_ADDR] {
        expect_status!(
            unsafe { mx_vmo_read(v.raw(), buf.as_mut_ptr().cast(), 0, 8, bad as *mut _) },
            Status::InvalidArgs
        );
        expect_status!(unsafe { mx_vmo_write(v.raw(), buf.as_ptr().cast(), 0, 8, bad as *mut _) }, Status::InvalidArgs);
    }
    Ok(())
}

fn read_zero_len_null_buffer() -> Outcome {
    let v = ok!(vmo(100));
    let mut actual = 7;
    expect_status!(unsafe { mx_vmo_read(v.raw(), core::ptr::null_mut(), 0, 0, &mut actual) }, Status::Ok);
    expect_eq!(actual, 0);
    actual = 7;
    expect_status!(unsafe { mx_vmo_write(v.raw(), core::ptr::null(), 10, 0, &mut actual) }, Status::Ok);
    expect_eq!(actual, 0);
    Ok(())
}

fn get_size_needs_no_right() -> Outcome {
    let v = ok!(vmo(1234));
    let bare = ok!(with_rights(v.handle(), Rights::NONE));
    let mut size = 0;
    expect_status!(unsafe { mx_vmo_get_size(bare.raw(), &mut size) }, Status::Ok);
    expect_eq!(size, 1234);
    Ok(())
}

fn get_size_wrong_type() -> Outcome {
    let event = ok!(Event::create());
    let mut size = 0;
    expect_status!(unsafe { mx_vmo_get_size(event.raw(), &mut size) }, Status::WrongType);
    expect_status!(unsafe { mx_vmo_get_size(NOT_A_HANDLE, &mut size) }, Status::BadHandle);
    Ok(())
}

fn get_size_bad_pointer() -> Outcome {
    let v = ok!(vmo(100));
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(unsafe { mx_vmo_get_size(v.raw(), bad as *mut _) }, Status::InvalidArgs);
    }
    Ok(())
}

fn set_size_needs_write() -> Outcome {
    let v = ok!(vmo(100));
    let no_write = ok!(with_rights(v.handle(), Rights::DEFAULT_VMO - Rights::WRITE));
    expect_status!(unsafe { mx_vmo_set_size(no_write.raw(), 200) }, Status::AccessDenied);
    expect_eq!(ok!(v.size()), 100);
    let event = ok!(Event::create());
    expect_status!(unsafe { mx_vmo_set_size(event.raw(), 200) }, Status::WrongType);
    expect_status!(unsafe { mx_vmo_set_size(NOT_A_HANDLE, 200) }, Status::BadHandle);
    Ok(())
}

fn set_size_too_big() -> Outcome {
    let v = ok!(vmo(100));
    expect_status!(unsafe { mx_vmo_set_size(v.raw(), (!4095u64) + 1) }, Status::OutOfRange);
    expect_status!(unsafe { mx_vmo_set_size(v.raw(), u64::MAX) }, Status::OutOfRange);
    expect_eq!(ok!(v.size()), 100);
    Ok(())
}

fn set_size_exact_bytes() -> Outcome {
    let v = ok!(vmo(100));
    ok!(v.set_size(5001));
    expect_eq!(ok!(v.size()), 5001);
    let mut buf = [0u8; 16];
    expect_eq!(read(v.raw(), &mut buf, 4990), (0, 11));
    ok!(v.set_size(0));
    expect_eq!(ok!(v.size()), 0);
    Ok(())
}

fn shrink_then_grow_reads_zeros() -> Outcome {
    let v = ok!(vmo(3 * 4096));
    ok!(v.write(&[0xabu8; 3 * 4096], 0));
    ok!(v.set_size(4096 + 100));
    ok!(v.set_size(3 * 4096));
    let mut buf = alloc::vec![0u8; 3 * 4096];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 3 * 4096));
    expect!(buf[..4096].iter().all(|&b| b == 0xab), "the kept page changed");
    // The partial page is kept whole (only whole pages past the end are freed).
    expect!(buf[8192..].iter().all(|&b| b == 0), "freed page not zero after growing back");
    Ok(())
}

fn shrink_then_read_past_end() -> Outcome {
    let v = ok!(vmo(8192));
    ok!(v.set_size(100));
    let mut buf = [0u8; 16];
    expect_status!(read(v.raw(), &mut buf, 200).0, Status::OutOfRange);
    expect_eq!(read(v.raw(), &mut buf, 90), (0, 10));
    Ok(())
}

/// Pages freed by a shrink leave every mapping: growing back and reading
/// through the old mapping shows fresh zeros, never the freed frame.
fn shrink_clears_mapped_pages() -> Outcome {
    let m = ok!(mapped(2, 2));
    poke(m.addr + 4096, 0xdead_beef_dead_beef);
    expect_eq!(peek(m.addr + 4096), 0xdead_beef_dead_beef);
    ok!(m.vmo.set_size(4096));
    ok!(m.vmo.set_size(8192));
    expect_eq!(peek(m.addr + 4096), 0);
    // The kept page still maps the VMO: writes through it are visible.
    poke(m.addr, 77);
    let mut buf = [0u8; 8];
    expect_eq!(read(m.vmo.raw(), &mut buf, 0), (0, 8));
    expect_eq!(u64::from_le_bytes(buf), 77);
    Ok(())
}

/// Touching a mapped page past the end of a shrunk VMO is a fatal fault
/// (in a child).
fn shrink_unmaps_mapped_pages() -> Outcome {
    let code = ok!(crate::child::run("fault:shrunk-page"));
    expect_eq!(code, -1);
    Ok(())
}

fn op(h: u32, op: u32, offset: u64, size: u64) -> i32 {
    unsafe { mx_vmo_op_range(h, op, offset, size, core::ptr::null_mut(), 0) }
}

fn op_commit_commits_pages() -> Outcome {
    let v = ok!(vmo(4 * 4096));
    let before = ok!(counts());
    expect_status!(op(v.raw(), 1, 100, 2 * 4096), Status::Ok);
    // [100, 8292) touches pages 0, 1 and 2.
    expect_eq!(ok!(counts()).committed_pages, before.committed_pages + 3);
    expect_status!(op(v.raw(), 1, 0, 4 * 4096), Status::Ok);
    expect_eq!(ok!(counts()).committed_pages, before.committed_pages + 4);
    drop(v);
    expect_eq!(ok!(counts()).committed_pages, before.committed_pages);
    Ok(())
}

fn op_commit_out_of_range() -> Outcome {
    let v = ok!(vmo(4096));
    expect_status!(op(v.raw(), 1, 4097, 1), Status::OutOfRange);
    expect_status!(op(v.raw(), 1, 4096, 0), Status::Ok);
    // Trimmed at the size, not an error.
    expect_status!(op(v.raw(), 1, 0, 1 << 40), Status::Ok);
    Ok(())
}

fn op_decommit_frees_and_zeros() -> Outcome {
    let v = ok!(vmo(2 * 4096));
    ok!(v.write(&[5u8; 8192], 0));
    let before = ok!(counts());
    expect_status!(op(v.raw(), 2, 4096, 4096), Status::Ok);
    expect_eq!(ok!(counts()).committed_pages, before.committed_pages - 1);
    let mut buf = [1u8; 8192];
    expect_eq!(read(v.raw(), &mut buf, 0), (0, 8192));
    expect!(buf[..4096].iter().all(|&b| b == 5) && buf[4096..].iter().all(|&b| b == 0));
    expect_status!(op(v.raw(), 2, 8193, 1), Status::OutOfRange);
    Ok(())
}

fn op_lock_not_supported() -> Outcome {
    let v = ok!(vmo(4096));
    expect_status!(op(v.raw(), 3, 0, 4096), Status::NotSupported);
    expect_status!(op(v.raw(), 4, 0, 4096), Status::NotSupported);
    Ok(())
}

fn op_unknown_invalid() -> Outcome {
    let v = ok!(vmo(4096));
    for bad in [0u32, 10, 0xffff_ffff] {
        expect_status!(op(v.raw(), bad, 0, 4096), Status::InvalidArgs);
    }
    Ok(())
}

fn op_lookup_committed() -> Outcome {
    let v = ok!(vmo(2 * 4096));
    expect_status!(op(v.raw(), 1, 0, 8192), Status::Ok);
    let mut addrs = [0u64; 2];
    expect_status!(unsafe { mx_vmo_op_range(v.raw(), 5, 0, 8192, addrs.as_mut_ptr().cast(), 16) }, Status::Ok);
    expect!(addrs.iter().all(|&a| a != 0 && a % 4096 == 0), "addresses {addrs:x?}");
    expect!(addrs[0] != addrs[1]);
    Ok(())
}

fn op_lookup_null_buffer() -> Outcome {
    let v = ok!(vmo(4096));
    expect_status!(unsafe { mx_vmo_op_range(v.raw(), 5, 0, 4096, core::ptr::null_mut(), 8) }, Status::InvalidArgs);
    Ok(())
}

fn op_lookup_buffer_too_small() -> Outcome {
    let v = ok!(vmo(2 * 4096));
    expect_status!(op(v.raw(), 1, 0, 8192), Status::Ok);
    let mut addrs = [0u64; 2];
    expect_status!(
        unsafe { mx_vmo_op_range(v.raw(), 5, 0, 8192, addrs.as_mut_ptr().cast(), 8) },
        Status::BufferTooSmall
    );
    Ok(())
}

fn op_bad_handle_wrong_type() -> Outcome {
    let event = ok!(Event::create());
    expect_status!(op(event.raw(), 1, 0, 4096), Status::WrongType);
    expect_status!(op(NOT_A_HANDLE, 1, 0, 4096), Status::BadHandle);
    Ok(())
}
