//! `mx_channel_create` (§5.8), `mx_channel_read` (§5.9), `mx_channel_write`
//! (§5.10) and `mx_channel_call` (§5.11).

use alloc::vec;
use alloc::vec::Vec;
use core::ptr::{null, null_mut};
use core::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Channel, Event, EventPair, Handle, Rights, Signals, Status};
use mx_abi::types::ChannelCallArgs;

cases![
    create_rights_and_peers,
    create_starts_writable,
    create_bad_options,
    create_bad_out_pointer_creates_nothing,
    write_then_read_round_trips_bytes,
    readable_follows_the_queue,
    messages_arrive_in_order,
    read_empty_should_wait,
    read_empty_peer_closed,
    read_queued_messages_after_peer_closed,
    peer_close_clears_writable_sets_peer_closed,
    read_buffer_too_small_keeps_the_message,
    read_too_few_handle_slots_keeps_the_message,
    read_may_discard_drops_a_message_too_big,
    read_may_discard_reads_a_message_that_fits,
    read_unknown_option_is_not_supported_after_lookup,
    read_lookup_errors,
    read_actual_counts_are_optional,
    read_bad_bytes_pointer_is_invalid_args,
    write_bad_options_before_lookup,
    write_lookup_errors,
    write_max_bytes,
    write_too_many_bytes_is_out_of_range,
    write_max_handles,
    write_too_many_handles_is_out_of_range,
    write_bad_bytes_pointer_is_invalid_args,
    write_bad_handles_pointer_is_invalid_args,
    write_empty_message,
    transfer_moves_handle_with_its_rights,
    transfer_needs_transfer_right,
    write_own_handle_is_not_supported,
    write_same_handle_twice_is_invalid_args,
    write_handle_checks_come_before_duplicate_check,
    write_failure_leaves_every_handle_with_sender,
    write_to_closed_peer,
    write_to_closed_peer_keeps_handles,
    closing_an_end_closes_handles_in_its_queue,
    call_gets_the_reply_matching_its_txid,
    call_reply_carries_handles,
    call_timeout_after_sending,
    call_reply_after_timeout_is_queued,
    call_peer_closed_during_wait_is_call_failed,
    call_peer_already_closed_fails_the_write,
    call_reply_too_big_is_call_failed,
    call_reply_to_a_bad_buffer_is_call_failed,
    concurrent_calls_each_get_their_reply,
    call_bad_options,
    call_bad_args_pointer,
    call_lookup_errors,
    call_write_errors_return_directly,
];

fn write_raw(raw: u32, options: u32, bytes: *const u8, nb: u32, handles: *const u32, nh: u32) -> i32 {
    // SAFETY: the cases pass valid or deliberately bad buffers.
    unsafe { mx_channel_write(raw, options, bytes.cast(), nb, handles, nh) }
}

#[allow(clippy::too_many_arguments)]
fn read_raw(
    raw: u32,
    options: u32,
    bytes: *mut u8,
    handles: *mut u32,
    nb: u32,
    nh: u32,
    ab: *mut u32,
    ah: *mut u32,
) -> i32 {
    // SAFETY: the cases pass valid or deliberately bad buffers.
    unsafe { mx_channel_read(raw, options, bytes.cast(), handles, nb, nh, ab, ah) }
}

/// Writes bytes only.
fn send(end: &Channel, bytes: &[u8]) -> i32 {
    write_raw(end.raw(), 0, bytes.as_ptr(), bytes.len() as u32, null(), 0)
}

/// Reads one message into fresh buffers: (status, bytes, handles).
fn recv(end: &Channel) -> (i32, Vec<u8>, Vec<u32>) {
    let mut bytes = vec![0u8; 256];
    let mut handles = [0u32; 8];
    let (mut nb, mut nh) = (0, 0);
    let status = read_raw(end.raw(), 0, bytes.as_mut_ptr(), handles.as_mut_ptr(), 256, 8, &mut nb, &mut nh);
    bytes.truncate(nb as usize);
    (status, bytes, handles[..nh as usize].to_vec())
}

fn create_rights_and_peers() -> Outcome {
    let (mut a, mut b) = (0, 0);
    // SAFETY: valid out-pointers.
    expect_status!(unsafe { mx_channel_create(0, &mut a, &mut b) }, Status::Ok);
    let (a, b) = (own(a), own(b));
    let (ia, ib) = (ok!(basic(a.raw())), ok!(basic(b.raw())));
    expect_eq!((ia.rights, ia.obj_type, ia.props), (0x300e, 4, 1));
    expect_eq!((ib.rights, ib.obj_type, ib.props), (0x300e, 4, 1));
    expect_eq!((ia.related_koid, ib.related_koid), (ib.koid, ia.koid));
    Ok(())
}

fn create_starts_writable() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_eq!((signals(a.raw()), signals(b.raw())), (WRITABLE | LAST, WRITABLE | LAST));
    Ok(())
}

fn create_bad_options() -> Outcome {
    let before = ok!(objects_and_handles());
    let (mut a, mut b) = (0, 0);
    // SAFETY: valid out-pointers.
    expect_status!(unsafe { mx_channel_create(1, &mut a, &mut b) }, Status::InvalidArgs);
    expect_eq!((a, b), (0, 0));
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn create_bad_out_pointer_creates_nothing() -> Outcome {
    let before = ok!(objects_and_handles());
    let mut good = 0;
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must refuse the bad pointer.
        expect_status!(unsafe { mx_channel_create(0, bad as *mut u32, &mut good) }, Status::InvalidArgs);
        // SAFETY: as above.
        expect_status!(unsafe { mx_channel_create(0, &mut good, bad as *mut u32) }, Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn write_then_read_round_trips_bytes() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let msg: Vec<u8> = (0..=255u8).rev().collect();
    expect_status!(send(&a, &msg[..200]), Status::Ok);
    let (status, bytes, handles) = recv(&b);
    expect_status!(status, Status::Ok);
    expect_eq!(&bytes[..], &msg[..200]);
    expect!(handles.is_empty());
    // Nothing came back to the writer's own end.
    expect_status!(recv(&a).0, Status::ShouldWait);
    Ok(())
}

fn readable_follows_the_queue() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&a, b"one"), Status::Ok);
    expect_status!(send(&a, b"two"), Status::Ok);
    expect_eq!(signals(b.raw()), READABLE | WRITABLE | LAST);
    expect_eq!(signals(a.raw()), WRITABLE | LAST);
    expect_status!(recv(&b).0, Status::Ok);
    expect_eq!(signals(b.raw()), READABLE | WRITABLE | LAST);
    expect_status!(recv(&b).0, Status::Ok);
    expect_eq!(signals(b.raw()), WRITABLE | LAST);
    Ok(())
}

fn messages_arrive_in_order() -> Outcome {
    let (a, b) = ok!(Channel::create());
    for i in 0..5u8 {
        expect_status!(send(&a, &[i; 7][..usize::from(i) + 1]), Status::Ok);
    }
    for i in 0..5u8 {
        let (status, bytes, _) = recv(&b);
        expect_status!(status, Status::Ok);
        expect_eq!(bytes, vec![i; usize::from(i) + 1]);
    }
    Ok(())
}

fn read_empty_should_wait() -> Outcome {
    let (a, _b) = ok!(Channel::create());
    let (mut nb, mut nh) = (0x55, 0x55);
    expect_status!(read_raw(a.raw(), 0, null_mut(), null_mut(), 0, 0, &mut nb, &mut nh), Status::ShouldWait);
    Ok(())
}

fn read_empty_peer_closed() -> Outcome {
    let (a, b) = ok!(Channel::create());
    drop(b);
    expect_status!(recv(&a).0, Status::PeerClosed);
    Ok(())
}

fn read_queued_messages_after_peer_closed() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&b, b"first"), Status::Ok);
    expect_status!(send(&b, b"second"), Status::Ok);
    drop(b);
    let (s1, m1, _) = recv(&a);
    let (s2, m2, _) = recv(&a);
    expect_status!(s1, Status::Ok);
    expect_status!(s2, Status::Ok);
    expect_eq!((&m1[..], &m2[..]), (&b"first"[..], &b"second"[..]));
    expect_status!(recv(&a).0, Status::PeerClosed);
    Ok(())
}

fn peer_close_clears_writable_sets_peer_closed() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&b, b"x"), Status::Ok);
    drop(b);
    expect_eq!(signals(a.raw()), READABLE | PEER_CLOSED | LAST);
    expect_status!(recv(&a).0, Status::Ok);
    expect_eq!(signals(a.raw()), PEER_CLOSED | LAST);
    Ok(())
}

fn read_buffer_too_small_keeps_the_message() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    ok!(a.write(b"0123456789", &mut vec![event.into_handle()]));
    let mut bytes = [0xa5u8; 16];
    let mut handles = [0u32; 4];
    let (mut nb, mut nh) = (0, 0);
    expect_status!(
        read_raw(b.raw(), 0, bytes.as_mut_ptr(), handles.as_mut_ptr(), 9, 4, &mut nb, &mut nh),
        Status::BufferTooSmall
    );
    expect_eq!((nb, nh), (10, 1));
    expect!(bytes.iter().all(|&x| x == 0xa5), "bytes were written");
    expect_eq!(signals(b.raw()), READABLE | WRITABLE | LAST);
    let (status, msg, got) = recv(&b);
    expect_status!(status, Status::Ok);
    expect_eq!(&msg[..], &b"0123456789"[..]);
    expect_eq!(got.len(), 1);
    drop(own(got[0]));
    Ok(())
}

fn read_too_few_handle_slots_keeps_the_message() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let (e1, e2) = (ok!(Event::create()), ok!(Event::create()));
    ok!(a.write(b"ab", &mut vec![e1.into_handle(), e2.into_handle()]));
    let mut bytes = [0u8; 16];
    let mut handles = [0u32; 4];
    let (mut nb, mut nh) = (0, 0);
    expect_status!(
        read_raw(b.raw(), 0, bytes.as_mut_ptr(), handles.as_mut_ptr(), 16, 1, &mut nb, &mut nh),
        Status::BufferTooSmall
    );
    expect_eq!((nb, nh), (2, 2));
    expect_eq!(handles, [0; 4]);
    let (status, _, got) = recv(&b);
    expect_status!(status, Status::Ok);
    expect_eq!(got.len(), 2);
    got.into_iter().for_each(|h| drop(own(h)));
    Ok(())
}

fn read_may_discard_drops_a_message_too_big() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let before = ok!(objects_and_handles());
    let event = ok!(Event::create());
    ok!(a.write(b"0123456789", &mut vec![event.into_handle()]));
    let mut bytes = [0u8; 4];
    let (mut nb, mut nh) = (0, 0);
    expect_status!(
        read_raw(b.raw(), mx_abi::CHANNEL_READ_MAY_DISCARD, bytes.as_mut_ptr(), null_mut(), 4, 0, &mut nb, &mut nh),
        Status::BufferTooSmall
    );
    expect_eq!((nb, nh), (10, 1));
    expect_eq!(signals(b.raw()), WRITABLE | LAST);
    expect_status!(recv(&b).0, Status::ShouldWait);
    // The discarded message's handle was closed with it.
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn read_may_discard_reads_a_message_that_fits() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&a, b"fits"), Status::Ok);
    let mut bytes = [0u8; 8];
    let (mut nb, mut nh) = (0, 0);
    expect_status!(
        read_raw(b.raw(), mx_abi::CHANNEL_READ_MAY_DISCARD, bytes.as_mut_ptr(), null_mut(), 8, 0, &mut nb, &mut nh),
        Status::Ok
    );
    expect_eq!((nb, nh), (4, 0));
    expect_eq!(&bytes[..4], &b"fits"[..]);
    Ok(())
}

fn read_unknown_option_is_not_supported_after_lookup() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&a, b"x"), Status::Ok);
    let mut bytes = [0u8; 8];
    let (mut nb, mut nh) = (0, 0);
    for options in [2u32, 3, 0x8000_0000] {
        expect_status!(
            read_raw(b.raw(), options, bytes.as_mut_ptr(), null_mut(), 8, 0, &mut nb, &mut nh),
            Status::NotSupported
        );
    }
    expect_status!(
        read_raw(NOT_A_HANDLE, 2, bytes.as_mut_ptr(), null_mut(), 8, 0, &mut nb, &mut nh),
        Status::BadHandle
    );
    // The message is still there.
    expect_status!(recv(&b).0, Status::Ok);
    Ok(())
}

fn read_lookup_errors() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&a, b"x"), Status::Ok);
    // Channel handles carry no DUPLICATE: narrow one end by replacing it.
    let no_read = ok!(b.into_handle().replace(Rights::WRITE));
    let event = ok!(Event::create());
    let (mut nb, mut nh) = (0, 0);
    let mut bytes = [0u8; 8];
    let p = bytes.as_mut_ptr();
    expect_status!(read_raw(NOT_A_HANDLE, 0, p, null_mut(), 8, 0, &mut nb, &mut nh), Status::BadHandle);
    expect_status!(read_raw(no_read.raw(), 0, p, null_mut(), 8, 0, &mut nb, &mut nh), Status::AccessDenied);
    expect_status!(read_raw(event.raw(), 0, p, null_mut(), 8, 0, &mut nb, &mut nh), Status::WrongType);
    drop(a);
    Ok(())
}

fn read_actual_counts_are_optional() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(send(&a, b"abc"), Status::Ok);
    let mut bytes = [0u8; 8];
    expect_status!(read_raw(b.raw(), 0, bytes.as_mut_ptr(), null_mut(), 8, 0, null_mut(), null_mut()), Status::Ok);
    expect_eq!(&bytes[..3], &b"abc"[..]);
    Ok(())
}

fn read_bad_bytes_pointer_is_invalid_args() -> Outcome {
    let (a, b) = ok!(Channel::create());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(send(&a, b"abc"), Status::Ok);
        let (mut nb, mut nh) = (0, 0);
        expect_status!(read_raw(b.raw(), 0, bad as *mut u8, null_mut(), 8, 0, &mut nb, &mut nh), Status::InvalidArgs);
        // The message was already taken off the queue (contract §5.9 caution).
        expect_status!(recv(&b).0, Status::ShouldWait);
    }
    Ok(())
}

fn write_bad_options_before_lookup() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(write_raw(a.raw(), 1, b"x".as_ptr(), 1, null(), 0), Status::InvalidArgs);
    expect_status!(write_raw(NOT_A_HANDLE, 1, b"x".as_ptr(), 1, null(), 0), Status::InvalidArgs);
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_lookup_errors() -> Outcome {
    let (a, b) = ok!(Channel::create());
    // Channel handles carry no DUPLICATE: narrow one end by replacing it.
    let no_write = ok!(a.into_handle().replace(Rights::READ | Rights::TRANSFER));
    let event = ok!(Event::create());
    expect_status!(write_raw(NOT_A_HANDLE, 0, b"x".as_ptr(), 1, null(), 0), Status::BadHandle);
    expect_status!(write_raw(no_write.raw(), 0, b"x".as_ptr(), 1, null(), 0), Status::AccessDenied);
    expect_status!(write_raw(event.raw(), 0, b"x".as_ptr(), 1, null(), 0), Status::WrongType);
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_max_bytes() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let msg: Vec<u8> = (0..65536u32).map(|i| (i * 7 + 3) as u8).collect();
    expect_status!(send(&a, &msg), Status::Ok);
    let mut got = vec![0u8; 65536];
    let (mut nb, mut nh) = (0, 0);
    expect_status!(read_raw(b.raw(), 0, got.as_mut_ptr(), null_mut(), 65536, 0, &mut nb, &mut nh), Status::Ok);
    expect_eq!((nb, nh), (65536, 0));
    expect!(got == msg, "the 64 KiB message changed on the way");
    Ok(())
}

fn write_too_many_bytes_is_out_of_range() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let msg = vec![0u8; 65537];
    expect_status!(send(&a, &msg), Status::OutOfRange);
    // The size is checked before the buffer is read.
    expect_status!(write_raw(a.raw(), 0, null(), 65537, null(), 0), Status::OutOfRange);
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn events(n: usize) -> Result<Vec<Handle>, alloc::string::String> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(ok!(Event::create()).into_handle());
    }
    Ok(v)
}

fn write_max_handles() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let handles = ok!(events(64));
    let raws: Vec<u32> = handles.iter().map(Handle::raw).collect();
    let koids: Vec<u64> = raws.iter().map(|&r| koid(r)).collect();
    expect_status!(write_raw(a.raw(), 0, null(), 0, raws.as_ptr(), 64), Status::Ok);
    handles.into_iter().for_each(|h| {
        h.into_raw();
    });
    expect!(raws.iter().all(|&r| !valid(r)), "a sent handle stayed with the sender");
    let mut got = [0u32; 64];
    let (mut nb, mut nh) = (0, 0);
    expect_status!(read_raw(b.raw(), 0, null_mut(), got.as_mut_ptr(), 0, 64, &mut nb, &mut nh), Status::Ok);
    expect_eq!((nb, nh), (0, 64));
    let got_koids: Vec<u64> = got.iter().map(|&r| koid(r)).collect();
    got.iter().for_each(|&r| drop(own(r)));
    expect_eq!(got_koids, koids);
    Ok(())
}

fn write_too_many_handles_is_out_of_range() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let handles = ok!(events(65));
    let raws: Vec<u32> = handles.iter().map(Handle::raw).collect();
    expect_status!(write_raw(a.raw(), 0, null(), 0, raws.as_ptr(), 65), Status::OutOfRange);
    expect!(raws.iter().all(|&r| valid(r)), "a handle left the sender");
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_bad_bytes_pointer_is_invalid_args() -> Outcome {
    let (a, b) = ok!(Channel::create());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(write_raw(a.raw(), 0, bad as *const u8, 4, null(), 0), Status::InvalidArgs);
    }
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_bad_handles_pointer_is_invalid_args() -> Outcome {
    let (a, b) = ok!(Channel::create());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(write_raw(a.raw(), 0, b"x".as_ptr(), 1, bad as *const u32, 1), Status::InvalidArgs);
    }
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_empty_message() -> Outcome {
    let (a, b) = ok!(Channel::create());
    expect_status!(write_raw(a.raw(), 0, null(), 0, null(), 0), Status::Ok);
    expect_eq!(signals(b.raw()), READABLE | WRITABLE | LAST);
    let (mut nb, mut nh) = (9, 9);
    expect_status!(read_raw(b.raw(), 0, null_mut(), null_mut(), 0, 0, &mut nb, &mut nh), Status::Ok);
    expect_eq!((nb, nh), (0, 0));
    Ok(())
}

fn transfer_moves_handle_with_its_rights() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    let sent = ok!(event.duplicate(Rights::TRANSFER | Rights::READ | Rights::SIGNAL)).into_handle().into_raw();
    let sent_koid = koid(sent);
    expect_status!(write_raw(a.raw(), 0, b"h".as_ptr(), 1, &sent, 1), Status::Ok);
    expect!(!valid(sent), "the sent handle is still in the sender's table");
    let (status, bytes, handles) = recv(&b);
    expect_status!(status, Status::Ok);
    expect_eq!(&bytes[..], &b"h"[..]);
    expect_eq!(handles.len(), 1);
    let got = own(handles[0]);
    let info = ok!(basic(got.raw()));
    expect_eq!((info.koid, info.rights), (sent_koid, (Rights::TRANSFER | Rights::READ | Rights::SIGNAL).bits()));
    // It works: a signal through it reaches the event.
    ok!(got.signal(Signals::NONE, Signals::USER_3));
    expect_eq!(signals(event.raw()) & Signals::USER_3.bits(), Signals::USER_3.bits());
    Ok(())
}

fn transfer_needs_transfer_right() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    let stuck = ok!(event.duplicate(Rights::READ | Rights::DUPLICATE));
    let raw = stuck.raw();
    expect_status!(write_raw(a.raw(), 0, b"h".as_ptr(), 1, &raw, 1), Status::AccessDenied);
    expect!(valid(raw), "the handle left the sender");
    expect_eq!(rights(raw), (Rights::READ | Rights::DUPLICATE).bits());
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_own_handle_is_not_supported() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let raw = a.raw();
    expect_status!(write_raw(a.raw(), 0, b"h".as_ptr(), 1, &raw, 1), Status::NotSupported);
    expect!(valid(raw), "the channel's own handle left the sender");
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_same_handle_twice_is_invalid_args() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    let raws = [event.raw(), event.raw()];
    expect_status!(write_raw(a.raw(), 0, null(), 0, raws.as_ptr(), 2), Status::InvalidArgs);
    expect!(valid(event.raw()), "the handle left the sender");
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_handle_checks_come_before_duplicate_check() -> Outcome {
    let (a, _b) = ok!(Channel::create());
    let event = ok!(Event::create());
    let stuck = ok!(event.duplicate(Rights::READ));
    let raws = [stuck.raw(), stuck.raw()];
    expect_status!(write_raw(a.raw(), 0, null(), 0, raws.as_ptr(), 2), Status::AccessDenied);
    let raws = [event.raw(), event.raw(), NOT_A_HANDLE];
    expect_status!(write_raw(a.raw(), 0, null(), 0, raws.as_ptr(), 3), Status::BadHandle);
    expect!(valid(event.raw()) && valid(stuck.raw()), "a handle left the sender");
    Ok(())
}

fn write_failure_leaves_every_handle_with_sender() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let (e1, e2) = (ok!(Event::create()), ok!(Event::create()));
    let (k1, k2) = (koid(e1.raw()), koid(e2.raw()));
    let raws = [e1.raw(), e2.raw(), NOT_A_HANDLE];
    expect_status!(write_raw(a.raw(), 0, b"x".as_ptr(), 1, raws.as_ptr(), 3), Status::BadHandle);
    expect_eq!((koid(e1.raw()), koid(e2.raw())), (k1, k2));
    let raws = [e1.raw(), a.raw()];
    expect_status!(write_raw(a.raw(), 0, b"x".as_ptr(), 1, raws.as_ptr(), 2), Status::NotSupported);
    expect_eq!(koid(e1.raw()), k1);
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn write_to_closed_peer() -> Outcome {
    let (a, b) = ok!(Channel::create());
    drop(b);
    expect_status!(send(&a, b"x"), Status::PeerClosed);
    Ok(())
}

fn write_to_closed_peer_keeps_handles() -> Outcome {
    let (a, b) = ok!(Channel::create());
    drop(b);
    let event = ok!(Event::create());
    let k = koid(event.raw());
    let raw = event.raw();
    expect_status!(write_raw(a.raw(), 0, b"x".as_ptr(), 1, &raw, 1), Status::PeerClosed);
    // The handle is still the sender's, under the same value.
    expect!(valid(raw), "the handle's value no longer names it");
    expect_eq!(koid(raw), k);
    Ok(())
}

fn closing_an_end_closes_handles_in_its_queue() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let (mine, theirs) = ok!(EventPair::create());
    ok!(a.write(b"", &mut vec![theirs.into_handle()]));
    expect_eq!(signals(mine.raw()), LAST);
    drop(b);
    expect_eq!(signals(mine.raw()), LAST | PEER_CLOSED);
    Ok(())
}

// ---- mx_channel_call ----

const TXID: u32 = 0x4d58_0001;

fn call_raw(raw: u32, options: u32, deadline: u64, args: *const ChannelCallArgs, out: &mut CallOut) -> i32 {
    // SAFETY: the cases pass valid or deliberately bad pointers.
    unsafe {
        mx_channel_call(raw, options, deadline, args, &mut out.bytes_len, &mut out.handles_len, &mut out.read_status)
    }
}

#[derive(Default)]
struct CallOut {
    bytes_len: u32,
    handles_len: u32,
    read_status: i32,
}

fn args(wr: &[u8], wr_handles: &[u32], rd: &mut [u8], rd_handles: &mut [u32]) -> ChannelCallArgs {
    ChannelCallArgs {
        wr_bytes: wr.as_ptr() as u64,
        wr_handles: wr_handles.as_ptr() as u64,
        rd_bytes: rd.as_mut_ptr() as u64,
        rd_handles: rd_handles.as_mut_ptr() as u64,
        wr_num_bytes: wr.len() as u32,
        wr_num_handles: wr_handles.len() as u32,
        rd_num_bytes: rd.len() as u32,
        rd_num_handles: rd_handles.len() as u32,
    }
}

fn request() -> [u8; 8] {
    let mut r = [0u8; 8];
    r[..4].copy_from_slice(&TXID.to_le_bytes());
    r[4..].copy_from_slice(b"req!");
    r
}

/// The other end of a call, served by a helper thread.
struct Server {
    end: AtomicU32,
    /// What the server saw: the request's length and first word.
    got_len: AtomicU32,
    got_txid: AtomicU32,
    status: AtomicI32,
}

fn server(end: Channel) -> Server {
    Server {
        end: AtomicU32::new(end.into_handle().into_raw()),
        got_len: AtomicU32::new(0),
        got_txid: AtomicU32::new(0),
        status: AtomicI32::new(1),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let raw = self.end.load(Ordering::SeqCst);
        if valid(raw) {
            drop(own(raw));
        }
    }
}

/// Waits for the request and reads it; returns false on failure.
fn take_request(s: &Server) -> bool {
    let end = s.end.load(Ordering::SeqCst);
    let mut observed = 0;
    // SAFETY: `observed` is valid.
    let status = unsafe { mx_object_wait_one(end, READABLE, after(2_000_000_000), &mut observed) };
    if status != 0 {
        s.status.store(status, Ordering::SeqCst);
        return false;
    }
    let mut bytes = [0u8; 64];
    let mut handles = [0u32; 4];
    let (mut nb, mut nh) = (0, 0);
    let status = read_raw(end, 0, bytes.as_mut_ptr(), handles.as_mut_ptr(), 64, 4, &mut nb, &mut nh);
    handles[..nh as usize].iter().for_each(|&h| drop(own(h)));
    s.got_len.store(nb, Ordering::SeqCst);
    s.got_txid.store(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]), Ordering::SeqCst);
    s.status.store(status, Ordering::SeqCst);
    status == 0
}

fn reply(s: &Server, txid: u32, text: &[u8], handles: &[u32]) -> i32 {
    let mut msg = Vec::from(txid.to_le_bytes());
    msg.extend_from_slice(text);
    write_raw(s.end.load(Ordering::SeqCst), 0, msg.as_ptr(), msg.len() as u32, handles.as_ptr(), handles.len() as u32)
}

/// Replies first with another txid, then with the caller's.
fn serve_two_replies(s: &Server) {
    if take_request(s) {
        let txid = s.got_txid.load(Ordering::SeqCst);
        let first = reply(s, txid ^ 0xff, b"not yours", &[]);
        let second = reply(s, txid, b"yours", &[]);
        s.status.store(if first != 0 { first } else { second }, Ordering::SeqCst);
    }
}

fn serve_with_handle(s: &Server) {
    if take_request(s) {
        let mut event = 0;
        // SAFETY: valid out-pointer.
        unsafe { mx_event_create(0, &mut event) };
        s.status.store(reply(s, s.got_txid.load(Ordering::SeqCst), b"h", &[event]), Ordering::SeqCst);
    }
}

fn serve_then_close(s: &Server) {
    if take_request(s) {
        // SAFETY: no pointers.
        let status = unsafe { mx_handle_close(s.end.load(Ordering::SeqCst)) };
        s.status.store(status, Ordering::SeqCst);
    }
}

fn serve_big_reply(s: &Server) {
    if take_request(s) {
        s.status.store(reply(s, s.got_txid.load(Ordering::SeqCst), &[7u8; 100], &[]), Ordering::SeqCst);
    }
}

fn call_gets_the_reply_matching_its_txid() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let s = server(b);
    let helper = ok!(spawn(serve_two_replies, &s));
    let req = request();
    let mut rd = [0u8; 32];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut::default();
    expect_status!(call_raw(a.raw(), 0, after(2_000_000_000), &call_args, &mut out), Status::Ok);
    ok!(helper.join());
    expect_status!(s.status.load(Ordering::SeqCst), Status::Ok);
    expect_eq!((s.got_len.load(Ordering::SeqCst), s.got_txid.load(Ordering::SeqCst)), (8, TXID));
    expect_eq!((out.bytes_len, out.handles_len), (9, 0));
    expect_eq!(&rd[..4], &TXID.to_le_bytes()[..]);
    expect_eq!(&rd[4..9], &b"yours"[..]);
    // The other reply went into the queue as an ordinary message.
    let (status, msg, _) = recv(&a);
    expect_status!(status, Status::Ok);
    expect_eq!(&msg[4..], &b"not yours"[..]);
    expect_status!(recv(&a).0, Status::ShouldWait);
    Ok(())
}

fn call_reply_carries_handles() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let s = server(b);
    let helper = ok!(spawn(serve_with_handle, &s));
    let event = ok!(Event::create());
    let sent = event.raw();
    let req = request();
    let mut rd = [0u8; 16];
    let mut rd_handles = [0u32; 2];
    let wr_handles = [sent];
    let call_args = args(&req, &wr_handles, &mut rd, &mut rd_handles);
    let mut out = CallOut::default();
    expect_status!(call_raw(a.raw(), 0, after(2_000_000_000), &call_args, &mut out), Status::Ok);
    let _ = event.into_handle().into_raw();
    ok!(helper.join());
    expect!(!valid(sent), "the handle sent with the call stayed with the caller");
    expect_eq!((out.bytes_len, out.handles_len), (5, 1));
    let got = own(rd_handles[0]);
    let info = ok!(basic(got.raw()));
    expect_eq!((info.obj_type, info.rights), (5, 0x100f));
    Ok(())
}

fn call_timeout_after_sending() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    let (sent, sent_koid) = (event.raw(), koid(event.raw()));
    let req = request();
    let mut rd = [0u8; 16];
    let wr_handles = [sent];
    let call_args = args(&req, &wr_handles, &mut rd, &mut []);
    let mut out = CallOut::default();
    let deadline = after(5_000_000);
    expect_status!(call_raw(a.raw(), 0, deadline, &call_args, &mut out), Status::TimedOut);
    expect!(mx::time_monotonic() >= deadline, "returned early");
    let _ = event.into_handle().into_raw();
    expect!(!valid(sent), "the handle stayed with the caller");
    let (status, msg, handles) = recv(&b);
    expect_status!(status, Status::Ok);
    expect_eq!(&msg[..], &req[..]);
    expect_eq!(handles.len(), 1);
    let got = own(handles[0]);
    expect_eq!(koid(got.raw()), sent_koid);
    Ok(())
}

fn call_reply_after_timeout_is_queued() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let req = request();
    let mut rd = [0u8; 16];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut::default();
    expect_status!(call_raw(a.raw(), 0, after(1_000_000), &call_args, &mut out), Status::TimedOut);
    expect_status!(recv(&b).0, Status::Ok);
    let mut late = Vec::from(TXID.to_le_bytes());
    late.extend_from_slice(b"late");
    expect_status!(send(&b, &late), Status::Ok);
    let (status, msg, _) = recv(&a);
    expect_status!(status, Status::Ok);
    expect_eq!(msg, late);
    Ok(())
}

fn call_peer_closed_during_wait_is_call_failed() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let s = server(b);
    let helper = ok!(spawn(serve_then_close, &s));
    let req = request();
    let mut rd = [0u8; 16];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut { read_status: 1, ..CallOut::default() };
    expect_status!(call_raw(a.raw(), 0, after(2_000_000_000), &call_args, &mut out), Status::CallFailed);
    expect_status!(out.read_status, Status::PeerClosed);
    ok!(helper.join());
    expect_status!(s.status.load(Ordering::SeqCst), Status::Ok);
    Ok(())
}

fn call_peer_already_closed_fails_the_write() -> Outcome {
    let (a, b) = ok!(Channel::create());
    drop(b);
    let event = ok!(Event::create());
    let (sent, k) = (event.raw(), koid(event.raw()));
    let req = request();
    let mut rd = [0u8; 16];
    let wr_handles = [sent];
    let call_args = args(&req, &wr_handles, &mut rd, &mut []);
    let mut out = CallOut { read_status: 1, ..CallOut::default() };
    expect_status!(call_raw(a.raw(), 0, after(1_000_000), &call_args, &mut out), Status::PeerClosed);
    expect_eq!(out.read_status, 1);
    expect!(valid(sent), "the handle left the caller");
    expect_eq!(koid(sent), k);
    Ok(())
}

fn call_reply_too_big_is_call_failed() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let s = server(b);
    let helper = ok!(spawn(serve_big_reply, &s));
    let req = request();
    let mut rd = [0u8; 8];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut::default();
    expect_status!(call_raw(a.raw(), 0, after(2_000_000_000), &call_args, &mut out), Status::CallFailed);
    expect_status!(out.read_status, Status::BufferTooSmall);
    expect_eq!((out.bytes_len, out.handles_len), (104, 0));
    ok!(helper.join());
    // The reply was discarded, not queued.
    expect_status!(recv(&a).0, Status::ShouldWait);
    Ok(())
}

fn call_bad_options() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let req = request();
    let mut rd = [0u8; 8];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut::default();
    expect_status!(call_raw(a.raw(), 1, after(1_000_000), &call_args, &mut out), Status::InvalidArgs);
    expect_status!(call_raw(NOT_A_HANDLE, 1, after(1_000_000), &call_args, &mut out), Status::InvalidArgs);
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn call_bad_args_pointer() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let mut out = CallOut::default();
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(
            call_raw(a.raw(), 0, after(1_000_000), bad as *const ChannelCallArgs, &mut out),
            Status::InvalidArgs
        );
    }
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn call_lookup_errors() -> Outcome {
    // Channel handles carry no DUPLICATE: narrow ends by replacing them.
    let (a, b) = ok!(Channel::create());
    let write_only = ok!(a.into_handle().replace(Rights::WRITE));
    let (c, d) = ok!(Channel::create());
    let read_only = ok!(c.into_handle().replace(Rights::READ));
    let event = ok!(Event::create());
    let req = request();
    let mut rd = [0u8; 8];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut::default();
    let dl = after(1_000_000);
    expect_status!(call_raw(NOT_A_HANDLE, 0, dl, &call_args, &mut out), Status::BadHandle);
    expect_status!(call_raw(write_only.raw(), 0, dl, &call_args, &mut out), Status::AccessDenied);
    expect_status!(call_raw(read_only.raw(), 0, dl, &call_args, &mut out), Status::AccessDenied);
    expect_status!(call_raw(event.raw(), 0, dl, &call_args, &mut out), Status::WrongType);
    expect_status!(recv(&b).0, Status::ShouldWait);
    expect_status!(recv(&d).0, Status::ShouldWait);
    Ok(())
}

fn call_write_errors_return_directly() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let event = ok!(Event::create());
    let stuck = ok!(event.duplicate(Rights::READ));
    let big = vec![0u8; 65537];
    let mut rd = [0u8; 8];
    let mut out = CallOut { read_status: 1, ..CallOut::default() };
    let d = after(1_000_000);
    let call_args = args(&big, &[], &mut rd, &mut []);
    expect_status!(call_raw(a.raw(), 0, d, &call_args, &mut out), Status::OutOfRange);
    let req = request();
    let wr_handles = [stuck.raw()];
    let call_args = args(&req, &wr_handles, &mut rd, &mut []);
    expect_status!(call_raw(a.raw(), 0, d, &call_args, &mut out), Status::AccessDenied);
    expect!(valid(stuck.raw()), "the handle left the caller");
    let own_handle = [a.raw()];
    let call_args = args(&req, &own_handle, &mut rd, &mut []);
    expect_status!(call_raw(a.raw(), 0, d, &call_args, &mut out), Status::NotSupported);
    expect_eq!(out.read_status, 1);
    expect_status!(recv(&b).0, Status::ShouldWait);
    Ok(())
}

fn call_reply_to_a_bad_buffer_is_call_failed() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let s = server(b);
    let helper = ok!(spawn(serve_big_reply, &s));
    let req = request();
    let mut call_args = args(&req, &[], &mut [], &mut []);
    call_args.rd_bytes = KERNEL_ADDR as u64;
    call_args.rd_num_bytes = 128;
    let mut out = CallOut::default();
    expect_status!(call_raw(a.raw(), 0, after(2_000_000_000), &call_args, &mut out), Status::CallFailed);
    expect_status!(out.read_status, Status::InvalidArgs);
    ok!(helper.join());
    expect_status!(recv(&a).0, Status::ShouldWait);
    Ok(())
}

/// Two threads calling on one channel at once.
struct Calls {
    end: Channel,
    statuses: [AtomicI32; 2],
    tags: [AtomicU32; 2],
}

fn caller<const I: u32>(c: &Calls) {
    let txid = 0x100 + I;
    let mut req = [0u8; 8];
    req[..4].copy_from_slice(&txid.to_le_bytes());
    req[4..].copy_from_slice(b"call");
    let mut rd = [0u8; 16];
    let call_args = args(&req, &[], &mut rd, &mut []);
    let mut out = CallOut::default();
    let status = call_raw(c.end.raw(), 0, after(2_000_000_000), &call_args, &mut out);
    c.tags[I as usize].store(u32::from_le_bytes([rd[4], rd[5], rd[6], rd[7]]), Ordering::SeqCst);
    c.statuses[I as usize].store(status, Ordering::SeqCst);
}

fn concurrent_calls_each_get_their_reply() -> Outcome {
    let (a, b) = ok!(Channel::create());
    let c = Calls {
        end: a,
        statuses: [AtomicI32::new(1), AtomicI32::new(1)],
        tags: [AtomicU32::new(0), AtomicU32::new(0)],
    };
    let h0 = ok!(spawn(caller::<0>, &c));
    let h1 = ok!(spawn(caller::<1>, &c));
    // Take both requests, then answer them in the opposite order.
    let mut txids = Vec::new();
    while txids.len() < 2 {
        ok!(b.handle().wait_one(Signals::CHANNEL_READABLE, after(2_000_000_000)));
        let (status, msg, _) = recv(&b);
        expect_status!(status, Status::Ok);
        expect_eq!(msg.len(), 8);
        txids.push(u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]));
    }
    for &txid in txids.iter().rev() {
        let mut msg = Vec::from(txid.to_le_bytes());
        msg.extend_from_slice(&(txid ^ 0xabcd).to_le_bytes());
        expect_status!(send(&b, &msg), Status::Ok);
    }
    ok!(h0.join());
    ok!(h1.join());
    for i in 0..2u32 {
        expect_status!(c.statuses[i as usize].load(Ordering::SeqCst), Status::Ok);
        expect_eq!(c.tags[i as usize].load(Ordering::SeqCst), (0x100 + i) ^ 0xabcd);
    }
    // Both replies went to their callers: nothing is queued.
    expect_status!(recv(&c.end).0, Status::ShouldWait);
    Ok(())
}
