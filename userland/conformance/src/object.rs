//! `mx_object_get_info` (§5.3), `mx_object_signal`/`_signal_peer` (§5.4),
//! `mx_object_wait_one` (§5.5), `mx_object_wait_many` (§5.6), and magnetar's
//! `MX_INFO_KERNEL_COUNTS`.

use core::ptr::null_mut;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Channel, Event, EventPair, Handle, Port, Resource, Rights, Status, Timer};
use mx_abi::object::{InfoHandleBasic, INFO_KERNEL_COUNTS};
use mx_abi::types::WaitItem;

cases![
    info_unknown_topic_is_not_supported_before_handle_check,
    info_handle_valid_reports_ok_or_bad_handle,
    info_handle_valid_never_touches_buffer,
    info_handle_basic_of_event,
    info_handle_basic_reports_the_handles_rights,
    info_handle_basic_of_port_is_not_waitable,
    info_handle_basic_needs_no_rights,
    info_handle_basic_bad_handle,
    info_single_record_too_small_reports_sizes,
    info_writes_only_the_record,
    info_single_record_null_buffer_of_size_zero,
    info_bad_buffer_pointer_is_invalid_args,
    info_bad_actual_or_avail_pointer_is_invalid_args,
    info_actual_and_avail_are_optional,
    info_checks_rights_before_type,
    info_wrong_object_type,
    info_array_truncates_and_reports_avail,
    kernel_counts_follow_events,
    kernel_counts_count_handles_in_messages,
    kernel_counts_need_the_root_resource,
    signal_sets_and_clears_event_bits,
    signal_clears_before_it_sets,
    signal_event_rejects_other_bits,
    signal_channel_allows_user_bits_only,
    signal_timer_allows_user_bits_only,
    signal_needs_signal_right,
    signal_bad_handle,
    signal_port_lacks_signal_right,
    signal_peer_changes_the_other_end_only,
    signal_peer_on_channel,
    signal_peer_needs_signal_peer_right,
    signal_peer_on_event_is_access_denied,
    signal_peer_mask_checked_before_peer_closed,
    signal_peer_channel_rejects_signaled,
    wait_one_past_deadline_with_signal_set_is_ok,
    wait_one_timeout_writes_observed,
    wait_one_times_out_at_the_deadline,
    wait_one_needs_read_right,
    wait_one_bad_handle,
    wait_one_port_is_not_supported,
    wait_one_observed_is_optional,
    wait_one_bad_observed_is_invalid_args,
    wait_one_wakes_when_signaled,
    wait_one_ok_even_if_signal_cleared_before_wakeup,
    wait_one_canceled_when_handle_closed,
    wait_many_writes_pending_for_all_items,
    wait_many_timeout_writes_pending,
    wait_many_count_zero_sleeps_until_deadline,
    wait_many_null_items_is_invalid_args,
    wait_many_more_than_1024_items_is_invalid_args,
    wait_many_accepts_1024_items,
    wait_many_unreadable_items_is_invalid_args,
    wait_many_item_errors_in_array_order,
    wait_many_write_back_fault_is_invalid_args,
    wait_many_wakes_on_any_item,
    wait_many_canceled_when_handle_closed,
];

fn get_info_raw(raw: u32, topic: u32, buf: *mut u8, size: usize, actual: *mut usize, avail: *mut usize) -> i32 {
    // SAFETY: the cases pass valid pointers or deliberately bad ones the kernel must refuse.
    unsafe { mx_object_get_info(raw, topic, buf.cast(), size, actual, avail) }
}

fn info_unknown_topic_is_not_supported_before_handle_check() -> Outcome {
    let (mut actual, mut avail) = (0, 0);
    for topic in [0u32, 5, 6, 19, 0xffff] {
        expect_status!(get_info_raw(NOT_A_HANDLE, topic, null_mut(), 0, &mut actual, &mut avail), Status::NotSupported);
    }
    Ok(())
}

fn info_handle_valid_reports_ok_or_bad_handle() -> Outcome {
    let event = ok!(Event::create());
    expect_status!(get_info_raw(event.raw(), 1, null_mut(), 0, null_mut(), null_mut()), Status::Ok);
    expect_status!(get_info_raw(NOT_A_HANDLE, 1, null_mut(), 0, null_mut(), null_mut()), Status::BadHandle);
    let raw = event.into_handle().into_raw();
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(raw) }, Status::Ok);
    expect_status!(get_info_raw(raw, 1, null_mut(), 0, null_mut(), null_mut()), Status::BadHandle);
    Ok(())
}

fn info_handle_valid_never_touches_buffer() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0xa5u8; 64];
    let (mut actual, mut avail) = (7usize, 7usize);
    expect_status!(get_info_raw(event.raw(), 1, buf.as_mut_ptr(), buf.len(), &mut actual, &mut avail), Status::Ok);
    expect!(buf.iter().all(|&b| b == 0xa5), "the buffer was written");
    expect_status!(get_info_raw(event.raw(), 1, KERNEL_ADDR as *mut u8, 64, null_mut(), null_mut()), Status::Ok);
    Ok(())
}

fn info_handle_basic_of_event() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0u8; 32];
    let (mut actual, mut avail) = (9usize, 9usize);
    expect_status!(get_info_raw(event.raw(), 2, buf.as_mut_ptr(), 32, &mut actual, &mut avail), Status::Ok);
    expect_eq!((actual, avail), (1, 1));
    let info = InfoHandleBasic::from_bytes(&buf);
    expect!(info.koid >= 1024, "koid {}", info.koid);
    expect_eq!(info.rights, 0x100f);
    expect_eq!(info.obj_type, 5);
    expect_eq!(info.related_koid, 0);
    expect_eq!(info.props, 1);
    expect_eq!(&buf[28..32], &[0u8; 4][..]);
    Ok(())
}

fn info_handle_basic_reports_the_handles_rights() -> Outcome {
    let event = ok!(Event::create());
    let dup = ok!(event.duplicate(Rights::READ | Rights::SIGNAL));
    let (a, b) = (ok!(basic(event.raw())), ok!(basic(dup.raw())));
    expect_eq!(b.koid, a.koid);
    expect_eq!(b.rights, (Rights::READ | Rights::SIGNAL).bits());
    Ok(())
}

fn info_handle_basic_of_port_is_not_waitable() -> Outcome {
    let port = ok!(Port::create());
    let info = ok!(basic(port.raw()));
    expect_eq!((info.rights, info.obj_type, info.related_koid, info.props), (0xf, 6, 0, 0));
    Ok(())
}

fn info_handle_basic_needs_no_rights() -> Outcome {
    let event = ok!(Event::create());
    let bare = ok!(event.duplicate(Rights::NONE));
    let info = ok!(basic(bare.raw()));
    expect_eq!(info.rights, 0);
    expect_eq!(info.koid, koid(event.raw()));
    Ok(())
}

fn info_handle_basic_bad_handle() -> Outcome {
    let mut buf = [0u8; 32];
    expect_status!(get_info_raw(NOT_A_HANDLE, 2, buf.as_mut_ptr(), 32, null_mut(), null_mut()), Status::BadHandle);
    expect_status!(get_info_raw(0, 2, buf.as_mut_ptr(), 32, null_mut(), null_mut()), Status::BadHandle);
    Ok(())
}

fn info_single_record_too_small_reports_sizes() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0xa5u8; 32];
    let (mut actual, mut avail) = (9usize, 9usize);
    expect_status!(get_info_raw(event.raw(), 2, buf.as_mut_ptr(), 31, &mut actual, &mut avail), Status::BufferTooSmall);
    expect_eq!((actual, avail), (0, 1));
    expect!(buf.iter().all(|&b| b == 0xa5), "a record too big for the buffer was written");
    Ok(())
}

fn info_single_record_null_buffer_of_size_zero() -> Outcome {
    let root = root_resource();
    let (mut actual, mut avail) = (9usize, 9usize);
    expect_status!(get_info_raw(root, 18, null_mut(), 0, &mut actual, &mut avail), Status::BufferTooSmall);
    expect_eq!((actual, avail), (0, 1));
    Ok(())
}

fn info_bad_buffer_pointer_is_invalid_args() -> Outcome {
    let event = ok!(Event::create());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(get_info_raw(event.raw(), 2, bad as *mut u8, 32, null_mut(), null_mut()), Status::InvalidArgs);
    }
    Ok(())
}

fn info_bad_actual_or_avail_pointer_is_invalid_args() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0u8; 32];
    let mut count = 0usize;
    for bad in [UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(
            get_info_raw(event.raw(), 2, buf.as_mut_ptr(), 32, bad as *mut usize, &mut count),
            Status::InvalidArgs
        );
        expect_status!(
            get_info_raw(event.raw(), 2, buf.as_mut_ptr(), 32, &mut count, bad as *mut usize),
            Status::InvalidArgs
        );
    }
    Ok(())
}

fn info_actual_and_avail_are_optional() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0u8; 32];
    expect_status!(get_info_raw(event.raw(), 2, buf.as_mut_ptr(), 32, null_mut(), null_mut()), Status::Ok);
    expect_eq!(InfoHandleBasic::from_bytes(&buf).koid, koid(event.raw()));
    Ok(())
}

fn info_checks_rights_before_type() -> Outcome {
    // MX_INFO_PROCESS needs READ on a process: an event without READ is
    // ACCESS_DENIED, with READ it is WRONG_TYPE.
    let event = ok!(Event::create());
    let no_read = ok!(event.duplicate(Rights::SIGNAL));
    let mut buf = [0u8; 8];
    expect_status!(get_info_raw(no_read.raw(), 3, buf.as_mut_ptr(), 8, null_mut(), null_mut()), Status::AccessDenied);
    expect_status!(get_info_raw(event.raw(), 3, buf.as_mut_ptr(), 8, null_mut(), null_mut()), Status::WrongType);
    expect_status!(get_info_raw(NOT_A_HANDLE, 3, buf.as_mut_ptr(), 8, null_mut(), null_mut()), Status::BadHandle);
    Ok(())
}

fn info_wrong_object_type() -> Outcome {
    let event = ok!(Event::create());
    let port = ok!(Port::create());
    let mut buf = [0u8; 64];
    expect_status!(get_info_raw(event.raw(), 18, buf.as_mut_ptr(), 24, null_mut(), null_mut()), Status::WrongType);
    expect_status!(get_info_raw(port.raw(), 7, buf.as_mut_ptr(), 16, null_mut(), null_mut()), Status::WrongType);
    expect_status!(get_info_raw(event.raw(), 10, buf.as_mut_ptr(), 8, null_mut(), null_mut()), Status::WrongType);
    Ok(())
}

fn park(event: &Event) {
    let _ = event.handle().wait_one(mx::Signals::USER_0, after(2_000_000_000));
}

fn info_array_truncates_and_reports_avail() -> Outcome {
    // MX_INFO_PROCESS_THREADS of this process: the main thread and one helper.
    let event = ok!(Event::create());
    let helper = ok!(spawn(park, &event));
    let helper_koid = koid(helper.thread().raw());
    let me = process_self();
    let mut koids = [0u64; 4];
    let (mut actual, mut avail) = (9usize, 9usize);
    let buf = koids.as_mut_ptr().cast::<u8>();
    expect_status!(get_info_raw(me, 4, buf, 0, &mut actual, &mut avail), Status::Ok);
    expect_eq!((actual, avail), (0, 2));
    expect_status!(get_info_raw(me, 4, buf, 15, &mut actual, &mut avail), Status::Ok);
    expect_eq!((actual, avail), (1, 2));
    expect_eq!(koids[1], 0);
    expect_status!(get_info_raw(me, 4, buf, 32, &mut actual, &mut avail), Status::Ok);
    expect_eq!((actual, avail), (2, 2));
    expect!(koids[..2].contains(&helper_koid), "{:?} lacks the helper {helper_koid}", &koids[..2]);
    expect!(koids[0] != koids[1] && koids[0] != 0 && koids[1] != 0, "{:?}", &koids[..2]);
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    ok!(helper.join());
    Ok(())
}

fn kernel_counts_follow_events() -> Outcome {
    let before = ok!(objects_and_handles());
    let event = ok!(Event::create());
    expect_eq!(ok!(objects_and_handles()), (before.0 + 1, before.1 + 1));
    let dup = ok!(event.duplicate(Rights::SAME_RIGHTS));
    expect_eq!(ok!(objects_and_handles()), (before.0 + 1, before.1 + 2));
    drop(event);
    expect_eq!(ok!(objects_and_handles()), (before.0 + 1, before.1 + 1));
    drop(dup);
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn kernel_counts_count_handles_in_messages() -> Outcome {
    let before = ok!(objects_and_handles());
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    expect_eq!(ok!(objects_and_handles()), (before.0 + 3, before.1 + 3));
    ok!(a.write(b"x", &mut alloc::vec![event.into_handle()]));
    // The event's handle now lives in the message.
    expect_eq!(ok!(objects_and_handles()), (before.0 + 3, before.1 + 3));
    drop(b);
    // Closing the end that held the message closes the handle inside.
    expect_eq!(ok!(objects_and_handles()), (before.0 + 1, before.1 + 1));
    drop(a);
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn kernel_counts_need_the_root_resource() -> Outcome {
    let root = Resource::from_handle(Handle::from_raw(root_resource()));
    let child = root.create_child(mx_abi::ResourceKind::Mmio as u32, 0, 0xfff);
    let _ = root.into_handle().into_raw();
    let child = ok!(child);
    let event = ok!(Event::create());
    let mut buf = [0u8; 64];
    expect_status!(
        get_info_raw(child.raw(), INFO_KERNEL_COUNTS, buf.as_mut_ptr(), 64, null_mut(), null_mut()),
        Status::AccessDenied
    );
    expect_status!(
        get_info_raw(event.raw(), INFO_KERNEL_COUNTS, buf.as_mut_ptr(), 64, null_mut(), null_mut()),
        Status::WrongType
    );
    let (mut actual, mut avail) = (9, 9);
    expect_status!(
        get_info_raw(root_resource(), INFO_KERNEL_COUNTS, buf.as_mut_ptr(), 63, &mut actual, &mut avail),
        Status::BufferTooSmall
    );
    expect_eq!((actual, avail), (0, 1));
    Ok(())
}

fn signal(raw: u32, clear: u32, set: u32) -> i32 {
    // SAFETY: no pointers.
    unsafe { mx_object_signal(raw, clear, set) }
}

fn signal_peer(raw: u32, clear: u32, set: u32) -> i32 {
    // SAFETY: no pointers.
    unsafe { mx_object_signal_peer(raw, clear, set) }
}

fn signal_sets_and_clears_event_bits() -> Outcome {
    let event = ok!(Event::create());
    expect_eq!(signals(event.raw()), LAST);
    expect_status!(signal(event.raw(), 0, U0 | SIGNALED | 0x8000_0000), Status::Ok);
    expect_eq!(signals(event.raw()), LAST | U0 | SIGNALED | 0x8000_0000);
    expect_status!(signal(event.raw(), SIGNALED | 0x8000_0000, 0), Status::Ok);
    expect_eq!(signals(event.raw()), LAST | U0);
    expect_status!(signal(event.raw(), 0, 0xff00_0000), Status::Ok);
    expect_eq!(signals(event.raw()), LAST | 0xff00_0000);
    Ok(())
}

fn signal_clears_before_it_sets() -> Outcome {
    let event = ok!(Event::create());
    expect_status!(signal(event.raw(), U0 | U1, U0), Status::Ok);
    expect_eq!(signals(event.raw()), LAST | U0);
    expect_status!(signal(event.raw(), U0 | U1, U1), Status::Ok);
    expect_eq!(signals(event.raw()), LAST | U1);
    Ok(())
}

fn signal_event_rejects_other_bits() -> Outcome {
    let event = ok!(Event::create());
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_1));
    for bad in [READABLE, WRITABLE, PEER_CLOSED, 1 << 4, LAST, HANDLE_CLOSED] {
        expect_status!(signal(event.raw(), 0, U0 | bad), Status::InvalidArgs);
        expect_status!(signal(event.raw(), bad, 0), Status::InvalidArgs);
    }
    expect_eq!(signals(event.raw()), LAST | U1);
    Ok(())
}

fn signal_channel_allows_user_bits_only() -> Outcome {
    let (a, _b) = ok!(Channel::create());
    expect_status!(signal(a.raw(), 0, 0xff00_0000), Status::Ok);
    expect_eq!(signals(a.raw()), WRITABLE | LAST | 0xff00_0000);
    for bad in [SIGNALED, READABLE, WRITABLE, PEER_CLOSED] {
        expect_status!(signal(a.raw(), 0, bad), Status::InvalidArgs);
        expect_status!(signal(a.raw(), bad, 0), Status::InvalidArgs);
    }
    expect_eq!(signals(a.raw()), WRITABLE | LAST | 0xff00_0000);
    Ok(())
}

fn signal_timer_allows_user_bits_only() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(signal(timer.raw(), 0, SIGNALED), Status::InvalidArgs);
    expect_status!(signal(timer.raw(), 0, U1), Status::Ok);
    expect_eq!(signals(timer.raw()), LAST | U1);
    Ok(())
}

fn signal_needs_signal_right() -> Outcome {
    let event = ok!(Event::create());
    let no_signal = ok!(event.duplicate(Rights::READ | Rights::WRITE | Rights::DUPLICATE | Rights::TRANSFER));
    expect_status!(signal(no_signal.raw(), 0, U0), Status::AccessDenied);
    // The rights check comes before the mask check.
    expect_status!(signal(no_signal.raw(), 0, READABLE), Status::AccessDenied);
    expect_eq!(signals(event.raw()) & U0, 0);
    Ok(())
}

fn signal_bad_handle() -> Outcome {
    expect_status!(signal(NOT_A_HANDLE, 0, U0), Status::BadHandle);
    expect_status!(signal(0, 0, U0), Status::BadHandle);
    expect_status!(signal_peer(NOT_A_HANDLE, 0, U0), Status::BadHandle);
    Ok(())
}

fn signal_port_lacks_signal_right() -> Outcome {
    // A port's handles never carry SIGNAL, so the lookup refuses first.
    let port = ok!(Port::create());
    expect_status!(signal(port.raw(), 0, U0), Status::AccessDenied);
    Ok(())
}

fn signal_peer_changes_the_other_end_only() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    expect_status!(signal_peer(a.raw(), 0, U0 | SIGNALED), Status::Ok);
    expect_eq!(signals(b.raw()), LAST | U0 | SIGNALED);
    expect_eq!(signals(a.raw()), LAST);
    expect_status!(signal_peer(a.raw(), SIGNALED, 0), Status::Ok);
    expect_eq!(signals(b.raw()), LAST | U0);
    Ok(())
}

fn signal_peer_on_channel() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(signal_peer(b.raw(), 0, U1), Status::Ok);
    expect_eq!(signals(a.raw()), WRITABLE | LAST | U1);
    expect_eq!(signals(b.raw()), WRITABLE | LAST);
    Ok(())
}

fn signal_peer_needs_signal_peer_right() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    let limited = ok!(a.duplicate(Rights::SIGNAL | Rights::READ));
    expect_status!(signal_peer(limited.raw(), 0, U0), Status::AccessDenied);
    expect_eq!(signals(b.raw()), LAST);
    Ok(())
}

fn signal_peer_on_event_is_access_denied() -> Outcome {
    // Events never carry SIGNAL_PEER: the rights check refuses them.
    let event = ok!(Event::create());
    expect_status!(signal_peer(event.raw(), 0, U0), Status::AccessDenied);
    Ok(())
}

fn signal_peer_mask_checked_before_peer_closed() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    drop(b);
    expect_status!(signal_peer(a.raw(), 0, READABLE), Status::InvalidArgs);
    expect_status!(signal_peer(a.raw(), 0, U0), Status::PeerClosed);
    let (c, d) = ok!(Channel::create());
    drop(d);
    expect_status!(signal_peer(c.raw(), 0, U0), Status::PeerClosed);
    Ok(())
}

fn signal_peer_channel_rejects_signaled() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(signal_peer(a.raw(), 0, SIGNALED), Status::InvalidArgs);
    expect_eq!(signals(b.raw()), WRITABLE | LAST);
    Ok(())
}

fn wait_one_raw(raw: u32, waitfor: u32, deadline: u64, observed: *mut u32) -> i32 {
    // SAFETY: the cases pass a valid or deliberately bad pointer.
    unsafe { mx_object_wait_one(raw, waitfor, deadline, observed) }
}

fn wait_one_past_deadline_with_signal_set_is_ok() -> Outcome {
    let event = ok!(Event::create());
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    for deadline in [0, PAST, mx::time_monotonic()] {
        let mut observed = 0;
        expect_status!(wait_one_raw(event.raw(), U0 | U1, deadline, &mut observed), Status::Ok);
        expect_eq!(observed, U0 | LAST);
    }
    Ok(())
}

fn wait_one_timeout_writes_observed() -> Outcome {
    let event = ok!(Event::create());
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_1));
    let mut observed = 0;
    expect_status!(wait_one_raw(event.raw(), U0, PAST, &mut observed), Status::TimedOut);
    expect_eq!(observed, U1 | LAST);
    Ok(())
}

fn wait_one_times_out_at_the_deadline() -> Outcome {
    let event = ok!(Event::create());
    let deadline = after(10_000_000);
    let mut observed = 0;
    expect_status!(wait_one_raw(event.raw(), U0, deadline, &mut observed), Status::TimedOut);
    let now = mx::time_monotonic();
    expect!(now >= deadline, "returned {} ns early", deadline - now);
    expect_eq!(observed, LAST);
    Ok(())
}

fn wait_one_needs_read_right() -> Outcome {
    let event = ok!(Event::create());
    let no_read = ok!(event.duplicate(Rights::SIGNAL | Rights::WRITE));
    let mut observed = 0x55;
    expect_status!(wait_one_raw(no_read.raw(), U0, PAST, &mut observed), Status::AccessDenied);
    expect_eq!(observed, 0x55);
    Ok(())
}

fn wait_one_bad_handle() -> Outcome {
    let mut observed = 0;
    expect_status!(wait_one_raw(NOT_A_HANDLE, U0, PAST, &mut observed), Status::BadHandle);
    expect_status!(wait_one_raw(0, U0, PAST, &mut observed), Status::BadHandle);
    Ok(())
}

fn wait_one_port_is_not_supported() -> Outcome {
    let port = ok!(Port::create());
    let mut observed = 0;
    expect_status!(wait_one_raw(port.raw(), U0, PAST, &mut observed), Status::NotSupported);
    Ok(())
}

fn wait_one_observed_is_optional() -> Outcome {
    let event = ok!(Event::create());
    expect_status!(wait_one_raw(event.raw(), U0, PAST, null_mut()), Status::TimedOut);
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    expect_status!(wait_one_raw(event.raw(), U0, PAST, null_mut()), Status::Ok);
    Ok(())
}

fn wait_one_bad_observed_is_invalid_args() -> Outcome {
    let event = ok!(Event::create());
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    for bad in [UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(wait_one_raw(event.raw(), U0, PAST, bad as *mut u32), Status::InvalidArgs);
        expect_status!(wait_one_raw(event.raw(), U1, PAST, bad as *mut u32), Status::InvalidArgs);
    }
    Ok(())
}

struct Shared {
    event: Event,
    status: AtomicI32,
    observed: AtomicU32,
    at: AtomicU64,
}

fn shared(event: Event) -> Shared {
    Shared { event, status: AtomicI32::new(1), observed: AtomicU32::new(0), at: AtomicU64::new(0) }
}

fn signal_later(s: &Shared) {
    // SAFETY: no pointers.
    unsafe { mx_nanosleep(after(5_000_000)) };
    s.at.store(mx::time_monotonic(), Ordering::SeqCst);
    let _ = s.event.handle().signal(mx::Signals::NONE, mx::Signals::USER_1);
}

fn wait_one_wakes_when_signaled() -> Outcome {
    let s = shared(ok!(Event::create()));
    let helper = ok!(spawn(signal_later, &s));
    let mut observed = 0;
    expect_status!(wait_one_raw(s.event.raw(), U1, u64::MAX, &mut observed), Status::Ok);
    expect!(mx::time_monotonic() >= s.at.load(Ordering::SeqCst), "woke before the signal");
    expect_eq!(observed & U1, U1);
    ok!(helper.join());
    Ok(())
}

fn wait_on_shared_handle(s: &Shared) {
    let mut observed = 0;
    let status = wait_one_raw(s.observed.load(Ordering::SeqCst), U0, after(2_000_000_000), &mut observed);
    s.observed.store(observed, Ordering::SeqCst);
    s.status.store(status, Ordering::SeqCst);
}

fn wait_one_canceled_when_handle_closed() -> Outcome {
    let s = shared(ok!(Event::create()));
    ok!(s.event.handle().signal(mx::Signals::NONE, mx::Signals::USER_1));
    let dup = ok!(s.event.duplicate(Rights::SAME_RIGHTS)).into_handle().into_raw();
    s.observed.store(dup, Ordering::SeqCst);
    let helper = ok!(spawn(wait_on_shared_handle, &s));
    ok!(wait_blocked(&helper));
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(dup) }, Status::Ok);
    ok!(helper.join());
    expect_status!(s.status.load(Ordering::SeqCst), Status::Canceled);
    // LAST_HANDLE comes back as the handle goes, racing the end of the
    // wait; the rest is exact.
    expect_eq!(s.observed.load(Ordering::SeqCst) & !LAST, U1 | HANDLE_CLOSED);
    Ok(())
}

fn item(handle: u32, waitfor: u32) -> WaitItem {
    WaitItem { handle, waitfor, pending: 0xdead }
}

fn wait_many_raw(items: *mut WaitItem, count: u32, deadline: u64) -> i32 {
    // SAFETY: the cases pass a valid or deliberately bad array.
    unsafe { mx_object_wait_many(items, count, deadline) }
}

fn wait_many_writes_pending_for_all_items() -> Outcome {
    let (a, b) = (ok!(Event::create()), ok!(Event::create()));
    let (c, _d) = ok!(Channel::create());
    ok!(b.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    let mut items = [item(a.raw(), U0), item(b.raw(), U0), item(c.raw(), READABLE)];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 3, PAST), Status::Ok);
    expect_eq!(items[0].pending, LAST);
    expect_eq!(items[1].pending, LAST | U0);
    expect_eq!(items[2].pending, LAST | WRITABLE);
    expect_eq!((items[0].handle, items[0].waitfor), (a.raw(), U0));
    Ok(())
}

fn wait_many_timeout_writes_pending() -> Outcome {
    let (a, b) = (ok!(Event::create()), ok!(Event::create()));
    ok!(b.handle().signal(mx::Signals::NONE, mx::Signals::USER_1));
    let mut items = [item(a.raw(), U0), item(b.raw(), U0)];
    let deadline = after(5_000_000);
    expect_status!(wait_many_raw(items.as_mut_ptr(), 2, deadline), Status::TimedOut);
    expect!(mx::time_monotonic() >= deadline, "returned early");
    expect_eq!((items[0].pending, items[1].pending), (LAST, LAST | U1));
    Ok(())
}

fn wait_many_count_zero_sleeps_until_deadline() -> Outcome {
    let deadline = after(5_000_000);
    expect_status!(wait_many_raw(null_mut(), 0, deadline), Status::TimedOut);
    expect!(mx::time_monotonic() >= deadline, "returned early");
    expect_status!(wait_many_raw(KERNEL_ADDR as *mut WaitItem, 0, PAST), Status::TimedOut);
    Ok(())
}

fn wait_many_null_items_is_invalid_args() -> Outcome {
    expect_status!(wait_many_raw(null_mut(), 1, PAST), Status::InvalidArgs);
    expect_status!(wait_many_raw(null_mut(), 2000, PAST), Status::InvalidArgs);
    Ok(())
}

fn wait_many_more_than_1024_items_is_invalid_args() -> Outcome {
    let event = ok!(Event::create());
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    let mut items = alloc::vec![item(event.raw(), U0); 1025];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 1025, PAST), Status::InvalidArgs);
    expect_eq!(items[0].pending, 0xdead);
    Ok(())
}

fn wait_many_accepts_1024_items() -> Outcome {
    let event = ok!(Event::create());
    let mut items = alloc::vec![item(event.raw(), U0); 1024];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 1024, PAST), Status::TimedOut);
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    expect_status!(wait_many_raw(items.as_mut_ptr(), 1024, PAST), Status::Ok);
    expect!(items.iter().all(|i| i.pending == U0 | LAST), "not every item's pending was written");
    Ok(())
}

fn wait_many_unreadable_items_is_invalid_args() -> Outcome {
    for bad in [UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(wait_many_raw(bad as *mut WaitItem, 1, PAST), Status::InvalidArgs);
    }
    Ok(())
}

fn wait_many_item_errors_in_array_order() -> Outcome {
    let event = ok!(Event::create());
    let no_read = ok!(event.duplicate(Rights::SIGNAL));
    let port = ok!(Port::create());
    let mut items = [item(event.raw(), U0), item(NOT_A_HANDLE, U0), item(no_read.raw(), U0)];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 3, PAST), Status::BadHandle);
    let mut items = [item(no_read.raw(), U0), item(NOT_A_HANDLE, U0)];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 2, PAST), Status::AccessDenied);
    let mut items = [item(port.raw(), U0), item(NOT_A_HANDLE, U0)];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 2, PAST), Status::NotSupported);
    let mut items = [item(event.raw(), U0), item(port.raw(), U0)];
    expect_status!(wait_many_raw(items.as_mut_ptr(), 2, PAST), Status::NotSupported);
    expect_eq!(items[0].pending, 0xdead);
    Ok(())
}

fn wait_many_write_back_fault_is_invalid_args() -> Outcome {
    // The items sit in a read-only mapping: readable, not writable.
    let event = ok!(Event::create());
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    let vmo = ok!(mx::Vmo::create(4096));
    let it = item(event.raw(), U0);
    let mut bytes = [0u8; 12];
    bytes[0..4].copy_from_slice(&it.handle.to_le_bytes());
    bytes[4..8].copy_from_slice(&it.waitfor.to_le_bytes());
    ok!(vmo.write_all(&bytes, 0));
    let vmar = ok!(mxrt::vmar_root().ok_or(Status::BadState));
    let addr = ok!(vmar.map(0, &vmo, 0, 4096, mx_abi::VmFlags::PERM_READ));
    let status = wait_many_raw(addr as *mut WaitItem, 1, PAST);
    // SAFETY: nothing else uses this mapping.
    let _ = unsafe { vmar.unmap(addr, 4096) };
    expect_status!(status, Status::InvalidArgs);
    Ok(())
}

struct Many {
    a: Event,
    b: Event,
    a_raw: AtomicU32,
    status: AtomicI32,
    pending: [AtomicU32; 2],
}

fn wait_many_helper(m: &Many) {
    let mut items = [item(m.a_raw.load(Ordering::SeqCst), U0), item(m.b.raw(), U0)];
    let status = wait_many_raw(items.as_mut_ptr(), 2, after(2_000_000_000));
    m.pending[0].store(items[0].pending, Ordering::SeqCst);
    m.pending[1].store(items[1].pending, Ordering::SeqCst);
    m.status.store(status, Ordering::SeqCst);
}

fn new_many() -> Result<Many, alloc::string::String> {
    let a = ok!(Event::create());
    let a_raw = AtomicU32::new(a.raw());
    Ok(Many {
        a,
        b: ok!(Event::create()),
        a_raw,
        status: AtomicI32::new(1),
        pending: [AtomicU32::new(0), AtomicU32::new(0)],
    })
}

fn wait_many_wakes_on_any_item() -> Outcome {
    let m = ok!(new_many());
    let helper = ok!(spawn(wait_many_helper, &m));
    ok!(wait_blocked(&helper));
    ok!(m.b.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    ok!(helper.join());
    expect_status!(m.status.load(Ordering::SeqCst), Status::Ok);
    expect_eq!(m.pending[0].load(Ordering::SeqCst), LAST);
    expect_eq!(m.pending[1].load(Ordering::SeqCst), LAST | U0);
    Ok(())
}

fn wait_many_canceled_when_handle_closed() -> Outcome {
    let m = ok!(new_many());
    let dup = ok!(m.a.duplicate(Rights::SAME_RIGHTS)).into_handle().into_raw();
    m.a_raw.store(dup, Ordering::SeqCst);
    let helper = ok!(spawn(wait_many_helper, &m));
    ok!(wait_blocked(&helper));
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_handle_close(dup) }, Status::Ok);
    ok!(helper.join());
    expect_status!(m.status.load(Ordering::SeqCst), Status::Canceled);
    // LAST_HANDLE comes back as the handle goes, racing the end of the wait.
    expect_eq!(m.pending[0].load(Ordering::SeqCst) & !LAST, HANDLE_CLOSED);
    expect_eq!(m.pending[1].load(Ordering::SeqCst), LAST);
    Ok(())
}

fn info_writes_only_the_record() -> Outcome {
    let event = ok!(Event::create());
    let mut buf = [0xa5u8; 64];
    let (mut actual, mut avail) = (9usize, 9usize);
    expect_status!(get_info_raw(event.raw(), 2, buf.as_mut_ptr(), 64, &mut actual, &mut avail), Status::Ok);
    expect_eq!((actual, avail), (1, 1));
    expect_eq!(InfoHandleBasic::from_bytes(buf[..32].try_into().unwrap_or(&[0; 32])).koid, koid(event.raw()));
    expect!(buf[32..].iter().all(|&b| b == 0xa5), "bytes past the record were written");
    Ok(())
}

fn wait_for_u0(s: &Shared) {
    let mut observed = 0;
    let status = wait_one_raw(s.event.raw(), U0, after(2_000_000_000), &mut observed);
    s.observed.store(observed, Ordering::SeqCst);
    s.status.store(status, Ordering::SeqCst);
}

fn wait_one_ok_even_if_signal_cleared_before_wakeup() -> Outcome {
    // A signal asserted at any moment of the wait satisfies it.
    let s = shared(ok!(Event::create()));
    let helper = ok!(spawn(wait_for_u0, &s));
    ok!(wait_blocked(&helper));
    expect_status!(signal(s.event.raw(), 0, U0), Status::Ok);
    expect_status!(signal(s.event.raw(), U0, 0), Status::Ok);
    ok!(helper.join());
    expect_status!(s.status.load(Ordering::SeqCst), Status::Ok);
    Ok(())
}
