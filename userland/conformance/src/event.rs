//! `mx_event_create` and `mx_eventpair_create` (§5.12), with the signal
//! rules of events and eventpairs (§1.4, §5.4).

use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, EventPair, Rights, Status};

cases![
    event_create_rights_and_type,
    event_create_starts_with_last_handle_only,
    event_create_bad_options,
    event_create_bad_out_pointer_creates_nothing,
    event_koids_are_distinct,
    event_accepts_all_user_bits_and_signaled,
    last_handle_follows_the_handle_count,
    eventpair_create_rights_and_peers,
    eventpair_create_bad_options_is_not_supported,
    eventpair_create_bad_out_pointer_creates_nothing,
    eventpair_signal_changes_own_end_only,
    eventpair_signal_rejects_peer_closed_bit,
    eventpair_peer_closed_after_last_handle,
    eventpair_peer_closed_wakes_a_waiter,
    eventpair_peer_closed_keeps_other_signals,
];

fn create_event_raw(options: u32, out: *mut u32) -> i32 {
    // SAFETY: a valid or deliberately bad out-pointer.
    unsafe { mx_event_create(options, out) }
}

fn create_pair_raw(options: u32, a: *mut u32, b: *mut u32) -> i32 {
    // SAFETY: valid or deliberately bad out-pointers.
    unsafe { mx_eventpair_create(options, a, b) }
}

fn event_create_rights_and_type() -> Outcome {
    let mut raw = 0;
    expect_status!(create_event_raw(0, &mut raw), Status::Ok);
    let event = own(raw);
    let info = ok!(basic(event.raw()));
    expect_eq!((info.rights, info.obj_type, info.related_koid, info.props), (0x100f, 5, 0, 1));
    Ok(())
}

fn event_create_starts_with_last_handle_only() -> Outcome {
    let event = ok!(Event::create());
    expect_eq!(signals(event.raw()), LAST);
    Ok(())
}

fn event_create_bad_options() -> Outcome {
    let before = ok!(objects_and_handles());
    for options in [1u32, 2, 0x8000_0000] {
        let mut raw = 0;
        expect_status!(create_event_raw(options, &mut raw), Status::InvalidArgs);
        expect_eq!(raw, 0);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn event_create_bad_out_pointer_creates_nothing() -> Outcome {
    let before = ok!(objects_and_handles());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(create_event_raw(0, bad as *mut u32), Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn event_koids_are_distinct() -> Outcome {
    let (a, b) = (ok!(Event::create()), ok!(Event::create()));
    let (ka, kb) = (koid(a.raw()), koid(b.raw()));
    expect!(ka >= 1024 && kb >= 1024 && ka != kb, "koids {ka} and {kb}");
    Ok(())
}

fn event_accepts_all_user_bits_and_signaled() -> Outcome {
    let event = ok!(Event::create());
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_object_signal(event.raw(), 0, 0xff00_0008) }, Status::Ok);
    expect_eq!(signals(event.raw()), 0xff00_0008 | LAST);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_object_signal(event.raw(), 0xff00_0008, 0) }, Status::Ok);
    expect_eq!(signals(event.raw()), LAST);
    Ok(())
}

fn last_handle_follows_the_handle_count() -> Outcome {
    let event = ok!(Event::create());
    let dup = ok!(event.duplicate(Rights::SAME_RIGHTS));
    expect_eq!(signals(event.raw()), 0);
    let third = ok!(event.duplicate(Rights::READ));
    drop(dup);
    expect_eq!(signals(event.raw()), 0);
    drop(third);
    expect_eq!(signals(event.raw()), LAST);
    Ok(())
}

fn eventpair_create_rights_and_peers() -> Outcome {
    let (mut a, mut b) = (0, 0);
    expect_status!(create_pair_raw(0, &mut a, &mut b), Status::Ok);
    let (a, b) = (own(a), own(b));
    let (ia, ib) = (ok!(basic(a.raw())), ok!(basic(b.raw())));
    expect_eq!((ia.rights, ia.obj_type, ia.props), (0x300f, 16, 1));
    expect_eq!((ib.rights, ib.obj_type, ib.props), (0x300f, 16, 1));
    expect!(ia.koid != ib.koid, "both ends have koid {}", ia.koid);
    expect_eq!(ia.related_koid, ib.koid);
    expect_eq!(ib.related_koid, ia.koid);
    expect_eq!((signals(a.raw()), signals(b.raw())), (LAST, LAST));
    Ok(())
}

fn eventpair_create_bad_options_is_not_supported() -> Outcome {
    let before = ok!(objects_and_handles());
    let (mut a, mut b) = (0, 0);
    expect_status!(create_pair_raw(1, &mut a, &mut b), Status::NotSupported);
    expect_eq!((a, b), (0, 0));
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn eventpair_create_bad_out_pointer_creates_nothing() -> Outcome {
    let before = ok!(objects_and_handles());
    let mut good = 0;
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(create_pair_raw(0, bad as *mut u32, &mut good), Status::InvalidArgs);
        expect_status!(create_pair_raw(0, &mut good, bad as *mut u32), Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn eventpair_signal_changes_own_end_only() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_object_signal(a.raw(), 0, SIGNALED | U1) }, Status::Ok);
    expect_eq!(signals(a.raw()), SIGNALED | U1 | LAST);
    expect_eq!(signals(b.raw()), LAST);
    Ok(())
}

fn eventpair_signal_rejects_peer_closed_bit() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_object_signal(a.raw(), 0, PEER_CLOSED) }, Status::InvalidArgs);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_object_signal_peer(a.raw(), 0, PEER_CLOSED) }, Status::InvalidArgs);
    expect_eq!((signals(a.raw()), signals(b.raw())), (LAST, LAST));
    Ok(())
}

fn eventpair_peer_closed_after_last_handle() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    let b2 = ok!(b.duplicate(Rights::SAME_RIGHTS));
    drop(b);
    expect_eq!(signals(a.raw()), LAST);
    drop(b2);
    expect_eq!(signals(a.raw()), LAST | PEER_CLOSED);
    Ok(())
}

struct Waiting {
    end: EventPair,
    status: AtomicI32,
    observed: AtomicU32,
}

fn wait_peer_closed(w: &Waiting) {
    let mut observed = 0;
    // SAFETY: `observed` is valid.
    let status = unsafe { mx_object_wait_one(w.end.raw(), PEER_CLOSED, after(2_000_000_000), &mut observed) };
    w.observed.store(observed, Ordering::SeqCst);
    w.status.store(status, Ordering::SeqCst);
}

fn eventpair_peer_closed_wakes_a_waiter() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    let w = Waiting { end: a, status: AtomicI32::new(1), observed: AtomicU32::new(0) };
    let helper = ok!(spawn(wait_peer_closed, &w));
    ok!(wait_blocked(&helper));
    drop(b);
    ok!(helper.join());
    expect_status!(w.status.load(Ordering::SeqCst), Status::Ok);
    expect_eq!(w.observed.load(Ordering::SeqCst), PEER_CLOSED | LAST);
    Ok(())
}

fn eventpair_peer_closed_keeps_other_signals() -> Outcome {
    let (a, b) = ok!(EventPair::create());
    ok!(b.handle().signal_peer(mx::Signals::NONE, mx::Signals::USER_2 | mx::Signals::SIGNALED));
    drop(b);
    expect_eq!(signals(a.raw()), mx::Signals::USER_2.bits() | SIGNALED | PEER_CLOSED | LAST);
    Ok(())
}
