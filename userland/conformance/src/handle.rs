//! `mx_handle_close`, `mx_handle_duplicate`, `mx_handle_replace` (§5.1, §5.2).

use crate::harness::Outcome;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Rights, Status};

cases![
    close_invalid_is_ok,
    close_twice_is_bad_handle,
    close_not_a_handle_is_bad_handle,
    closed_value_stays_dead_after_slot_reuse,
    values_are_odd_and_nonzero,
    duplicate_same_rights,
    duplicate_subset,
    duplicate_zero_rights,
    duplicate_needs_duplicate_right,
    duplicate_rights_not_subset,
    duplicate_bad_handle,
    duplicate_bad_out_pointer_creates_nothing,
    replace_subset,
    replace_same_rights,
    replace_needs_no_right,
    replace_not_subset_consumes_source,
    replace_bad_handle,
];

fn close_invalid_is_ok() -> Outcome {
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(0) }, Status::Ok);
    Ok(())
}

fn close_twice_is_bad_handle() -> Outcome {
    let event = ok!(Event::create());
    let raw = event.into_handle().into_raw();
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(raw) }, Status::Ok);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(raw) }, Status::BadHandle);
    Ok(())
}

fn close_not_a_handle_is_bad_handle() -> Outcome {
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(NOT_A_HANDLE) }, Status::BadHandle);
    Ok(())
}

fn closed_value_stays_dead_after_slot_reuse() -> Outcome {
    let first = ok!(Event::create()).into_handle().into_raw();
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(first) }, Status::Ok);
    // The next handle reuses the slot but not the value.
    let second = ok!(Event::create()).into_handle();
    expect!(second.raw() != first, "a closed value named a new object");
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(first) }, Status::BadHandle);
    Ok(())
}

fn values_are_odd_and_nonzero() -> Outcome {
    let events: alloc::vec::Vec<_> = (0..16).map(|_| Event::create()).collect();
    for event in events {
        let raw = ok!(event).raw();
        expect!(raw & 1 == 1 && raw > 0, "handle value {raw:#x}");
    }
    Ok(())
}

fn duplicate_same_rights() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let dup = ok!(event.duplicate(Rights::SAME_RIGHTS));
    let basic_a: mx_abi::object::InfoHandleBasic = ok!(event.info(mx_abi::object::InfoTopic::HandleBasic));
    let basic_b: mx_abi::object::InfoHandleBasic = ok!(dup.info(mx_abi::object::InfoTopic::HandleBasic));
    expect_eq!(basic_a.koid, basic_b.koid);
    expect_eq!(basic_a.rights, basic_b.rights);
    expect_eq!(basic_a.rights, Rights::DEFAULT_EVENT.bits());
    Ok(())
}

fn duplicate_subset() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let dup = ok!(event.duplicate(Rights::READ | Rights::DUPLICATE));
    let basic: mx_abi::object::InfoHandleBasic = ok!(dup.info(mx_abi::object::InfoTopic::HandleBasic));
    expect_eq!(basic.rights, (Rights::READ | Rights::DUPLICATE).bits());
    Ok(())
}

fn duplicate_zero_rights() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let dup = ok!(event.duplicate(Rights::NONE));
    let basic: mx_abi::object::InfoHandleBasic = ok!(dup.info(mx_abi::object::InfoTopic::HandleBasic));
    expect_eq!(basic.rights, 0);
    Ok(())
}

fn duplicate_needs_duplicate_right() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let no_dup = ok!(with_rights(&event, Rights::READ | Rights::WRITE));
    let mut out = 0;
    // SAFETY: `out` is valid.
    expect_status!(unsafe { mx_handle_duplicate(no_dup.raw(), Rights::READ.bits(), &mut out) }, Status::AccessDenied);
    expect_eq!(out, 0);
    Ok(())
}

fn duplicate_rights_not_subset() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let limited = ok!(with_rights(&event, Rights::DUPLICATE | Rights::READ));
    let mut out = 0;
    // SAFETY: `out` is valid.
    expect_status!(
        unsafe { mx_handle_duplicate(limited.raw(), (Rights::READ | Rights::WRITE).bits(), &mut out) },
        Status::InvalidArgs
    );
    Ok(())
}

fn duplicate_bad_handle() -> Outcome {
    let mut out = 0;
    // SAFETY: `out` is valid.
    expect_status!(
        unsafe { mx_handle_duplicate(NOT_A_HANDLE, Rights::SAME_RIGHTS.bits(), &mut out) },
        Status::BadHandle
    );
    Ok(())
}

fn duplicate_bad_out_pointer_creates_nothing() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let before: mx_abi::object::InfoKernelCounts = ok!(crate::util::kernel_counts());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must reject the pointer without writing.
        expect_status!(
            unsafe { mx_handle_duplicate(event.raw(), Rights::SAME_RIGHTS.bits(), bad as *mut _) },
            Status::InvalidArgs
        );
    }
    let after: mx_abi::object::InfoKernelCounts = ok!(crate::util::kernel_counts());
    expect_eq!(after.handles, before.handles);
    Ok(())
}

fn replace_subset() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let old = event.raw();
    let new = ok!(event.replace(Rights::READ));
    let basic: mx_abi::object::InfoHandleBasic = ok!(new.info(mx_abi::object::InfoTopic::HandleBasic));
    expect_eq!(basic.rights, Rights::READ.bits());
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(old) }, Status::BadHandle);
    Ok(())
}

fn replace_same_rights() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let new = ok!(event.replace(Rights::SAME_RIGHTS));
    let basic: mx_abi::object::InfoHandleBasic = ok!(new.info(mx_abi::object::InfoTopic::HandleBasic));
    expect_eq!(basic.rights, Rights::DEFAULT_EVENT.bits());
    Ok(())
}

fn replace_needs_no_right() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let bare = ok!(with_rights(&event, Rights::NONE));
    ok!(bare.replace(Rights::NONE));
    Ok(())
}

fn replace_not_subset_consumes_source() -> Outcome {
    let event = ok!(Event::create()).into_handle();
    let limited = ok!(with_rights(&event, Rights::READ)).into_raw();
    let mut out = 0x55;
    // SAFETY: `out` is valid.
    expect_status!(unsafe { mx_handle_replace(limited, Rights::WRITE.bits(), &mut out) }, Status::InvalidArgs);
    expect_eq!(out, 0);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(limited) }, Status::BadHandle);
    Ok(())
}

fn replace_bad_handle() -> Outcome {
    let mut out = 0;
    // SAFETY: `out` is valid.
    expect_status!(unsafe { mx_handle_replace(NOT_A_HANDLE, Rights::SAME_RIGHTS.bits(), &mut out) }, Status::BadHandle);
    Ok(())
}
