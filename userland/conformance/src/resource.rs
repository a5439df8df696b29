//! `mx_resource_create` (§5.29) and `MX_INFO_RESOURCE` (§1.6).

use core::ptr::null_mut;

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Rights, Status};
use mx_abi::object::InfoResource;
use mx_abi::ResourceKind;

cases![
    root_resource_is_root_kind,
    child_rights_type_and_signals,
    child_info_reports_kind_and_range,
    high_below_low_is_invalid_args_before_lookup,
    single_value_range_is_allowed,
    parent_lookup_errors,
    non_root_parent_creates_its_kind_within_its_range,
    non_root_parent_other_kind_is_access_denied,
    non_root_parent_range_outside_is_out_of_range,
    kind_is_checked_before_range,
    root_kind_child_creates_any_kind,
    kind_is_not_validated,
    bad_out_pointer_creates_nothing,
    info_resource_too_small,
    info_resource_needs_no_rights,
];

const MMIO: u32 = ResourceKind::Mmio as u32;
const IRQ: u32 = ResourceKind::Irq as u32;

fn create_raw(parent: u32, kind: u32, low: u64, high: u64, out: *mut u32) -> i32 {
    // SAFETY: a valid or deliberately bad out-pointer.
    unsafe { mx_resource_create(parent, kind, low, high, out) }
}

fn create(parent: u32, kind: u32, low: u64, high: u64) -> Result<mx::Handle, i32> {
    let mut raw = 0;
    match create_raw(parent, kind, low, high, &mut raw) {
        0 => Ok(own(raw)),
        status => Err(status),
    }
}

fn info(raw: u32) -> Result<(u32, u64, u64), alloc::string::String> {
    let mut buf = [0u8; 24];
    let (mut actual, mut avail) = (0usize, 0usize);
    // SAFETY: the buffer and counts are valid.
    let status = unsafe { mx_object_get_info(raw, 18, buf.as_mut_ptr().cast(), 24, &mut actual, &mut avail) };
    expect_status!(status, Status::Ok);
    expect_eq!((actual, avail), (1, 1));
    let r = InfoResource::from_bytes(&buf);
    Ok((r.kind, r.low, r.high))
}

fn root_resource_is_root_kind() -> Outcome {
    let (kind, _, _) = ok!(info(root_resource()));
    expect_eq!(kind, 0);
    expect_eq!(ok!(basic(root_resource())).obj_type, 15);
    Ok(())
}

fn child_rights_type_and_signals() -> Outcome {
    let child = ok!(create(root_resource(), MMIO, 0x1000, 0x1fff));
    let info = ok!(basic(child.raw()));
    expect_eq!((info.rights, info.obj_type, info.related_koid, info.props), (0x100f, 15, 0, 1));
    expect_eq!(signals(child.raw()), LAST);
    Ok(())
}

fn child_info_reports_kind_and_range() -> Outcome {
    let child = ok!(create(root_resource(), IRQ, 32, 47));
    expect_eq!(ok!(info(child.raw())), (IRQ, 32, 47));
    let hv = ok!(create(root_resource(), ResourceKind::Hypervisor as u32, 0, 0));
    expect_eq!(ok!(info(hv.raw())), (0x2000, 0, 0));
    Ok(())
}

fn high_below_low_is_invalid_args_before_lookup() -> Outcome {
    let before = ok!(objects_and_handles());
    expect_eq!(create(root_resource(), MMIO, 0x2000, 0x1fff).err(), Some(Status::InvalidArgs as i32));
    expect_eq!(create(NOT_A_HANDLE, MMIO, 1, 0).err(), Some(Status::InvalidArgs as i32));
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn single_value_range_is_allowed() -> Outcome {
    let child = ok!(create(root_resource(), IRQ, 9, 9));
    expect_eq!(ok!(info(child.raw())), (IRQ, 9, 9));
    Ok(())
}

fn parent_lookup_errors() -> Outcome {
    let root = own(root_resource());
    let no_write = root.duplicate(Rights::READ | Rights::DUPLICATE);
    let _ = root.into_raw();
    let no_write = ok!(no_write);
    let event = ok!(Event::create());
    expect_eq!(create(NOT_A_HANDLE, MMIO, 0, 1).err(), Some(Status::BadHandle as i32));
    expect_eq!(create(no_write.raw(), MMIO, 0, 1).err(), Some(Status::AccessDenied as i32));
    expect_eq!(create(event.raw(), MMIO, 0, 1).err(), Some(Status::WrongType as i32));
    Ok(())
}

fn non_root_parent_creates_its_kind_within_its_range() -> Outcome {
    let parent = ok!(create(root_resource(), MMIO, 0x1000, 0x1fff));
    let whole = ok!(create(parent.raw(), MMIO, 0x1000, 0x1fff));
    expect_eq!(ok!(info(whole.raw())), (MMIO, 0x1000, 0x1fff));
    let part = ok!(create(parent.raw(), MMIO, 0x1800, 0x1800));
    expect_eq!(ok!(info(part.raw())), (MMIO, 0x1800, 0x1800));
    Ok(())
}

fn non_root_parent_other_kind_is_access_denied() -> Outcome {
    let parent = ok!(create(root_resource(), MMIO, 0x1000, 0x1fff));
    expect_eq!(create(parent.raw(), IRQ, 0x1000, 0x1fff).err(), Some(Status::AccessDenied as i32));
    expect_eq!(create(parent.raw(), 0, 0x1000, 0x1fff).err(), Some(Status::AccessDenied as i32));
    Ok(())
}

fn non_root_parent_range_outside_is_out_of_range() -> Outcome {
    let parent = ok!(create(root_resource(), MMIO, 0x1000, 0x1fff));
    for (low, high) in [(0xfff, 0x1000), (0x1fff, 0x2000), (0, 0xffff), (0x3000, 0x4000)] {
        expect_eq!(create(parent.raw(), MMIO, low, high).err(), Some(Status::OutOfRange as i32));
    }
    Ok(())
}

fn kind_is_checked_before_range() -> Outcome {
    let parent = ok!(create(root_resource(), MMIO, 0x1000, 0x1fff));
    expect_eq!(create(parent.raw(), IRQ, 0, 0xffff_ffff).err(), Some(Status::AccessDenied as i32));
    Ok(())
}

fn root_kind_child_creates_any_kind() -> Outcome {
    let sub_root = ok!(create(root_resource(), 0, 5, 10));
    let irq = ok!(create(sub_root.raw(), IRQ, 100, 200));
    expect_eq!(ok!(info(irq.raw())), (IRQ, 100, 200));
    Ok(())
}

fn kind_is_not_validated() -> Outcome {
    let odd = ok!(create(root_resource(), 0x7777, 1, 2));
    expect_eq!(ok!(info(odd.raw())), (0x7777, 1, 2));
    Ok(())
}

fn bad_out_pointer_creates_nothing() -> Outcome {
    let before = ok!(objects_and_handles());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(create_raw(root_resource(), MMIO, 0, 1, bad as *mut u32), Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn info_resource_too_small() -> Outcome {
    let child = ok!(create(root_resource(), MMIO, 0, 1));
    let mut buf = [0xa5u8; 24];
    let (mut actual, mut avail) = (9usize, 9usize);
    // SAFETY: the buffer and counts are valid.
    let status = unsafe { mx_object_get_info(child.raw(), 18, buf.as_mut_ptr().cast(), 23, &mut actual, &mut avail) };
    expect_status!(status, Status::BufferTooSmall);
    expect_eq!((actual, avail), (0, 1));
    expect!(buf.iter().all(|&b| b == 0xa5), "the buffer was written");
    Ok(())
}

fn info_resource_needs_no_rights() -> Outcome {
    let child = ok!(create(root_resource(), MMIO, 0x10, 0x20));
    let bare = ok!(child.duplicate(Rights::NONE));
    expect_eq!(ok!(info(bare.raw())), (MMIO, 0x10, 0x20));
    let mut buf = [0u8; 24];
    // SAFETY: the buffer is valid.
    let status = unsafe { mx_object_get_info(bare.raw(), 18, buf.as_mut_ptr().cast(), 24, null_mut(), null_mut()) };
    expect_status!(status, Status::Ok);
    Ok(())
}
