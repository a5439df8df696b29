//! `mx_port_create` (§5.13), `mx_port_queue` (§5.14), `mx_port_wait`
//! (§5.15), `mx_port_cancel` (§5.16) and `mx_object_wait_async` (§5.7).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Channel, Event, Port, Rights, Status};

cases![
    create_rights_and_type,
    create_bad_options,
    create_bad_out_pointer_creates_nothing,
    queue_then_wait_returns_the_packet_byte_for_byte,
    queue_forces_user_type,
    queue_size_must_be_zero_before_lookup,
    queue_lookup_errors,
    queue_bad_packet_pointer_queues_nothing,
    wait_size_must_be_zero_before_lookup,
    wait_lookup_errors,
    wait_times_out_at_the_deadline,
    wait_bad_packet_pointer_loses_the_packet,
    packets_come_out_in_fifo_order,
    wait_wakes_a_blocked_waiter,
    each_packet_wakes_exactly_one_waiter,
    user_packet_pool_is_limited,
    closing_a_port_drops_its_packets,
    wait_async_once_packet_contents,
    wait_async_once_fires_only_once,
    wait_async_queues_at_once_when_already_asserted,
    wait_async_trigger_is_the_signals_asked_for,
    wait_async_repeating_packets,
    wait_async_repeating_adds_no_second_packet_while_queued,
    wait_async_nonzero_options_are_repeating,
    wait_async_on_channel_readable,
    wait_async_port_lookup_comes_first,
    wait_async_object_lookup_errors,
    wait_async_closing_handle_removes_registration,
    wait_async_closing_handle_keeps_queued_packet,
    cancel_removes_registration,
    cancel_removes_queued_packets,
    cancel_not_found,
    cancel_removes_a_once_packet_already_queued,
    lookups_check_rights_before_type,
    cancel_matches_the_registering_handle,
    cancel_port_lookup_errors,
    cancel_source_lookup_errors,
];

const PKT_USER: u32 = 0;
const PKT_SIGNAL_ONE: u32 = 1;
const PKT_SIGNAL_REP: u32 = 2;

fn queue_raw(raw: u32, packet: *const u8, size: usize) -> i32 {
    // SAFETY: a valid or deliberately bad packet pointer.
    unsafe { mx_port_queue(raw, packet.cast(), size) }
}

fn wait_raw(raw: u32, deadline: u64, packet: *mut u8, size: usize) -> i32 {
    // SAFETY: a valid or deliberately bad packet pointer.
    unsafe { mx_port_wait(raw, deadline, packet.cast(), size) }
}

/// A user packet: key, type, status and a payload of `fill + i`.
fn user_packet(key: u64, packet_type: u32, status: i32, fill: u8) -> [u8; 48] {
    let mut p = [0u8; 48];
    p[0..8].copy_from_slice(&key.to_le_bytes());
    p[8..12].copy_from_slice(&packet_type.to_le_bytes());
    p[12..16].copy_from_slice(&status.to_le_bytes());
    for (i, b) in p[16..].iter_mut().enumerate() {
        *b = fill.wrapping_add(i as u8);
    }
    p
}

fn queue(port: &Port, key: u64) -> i32 {
    queue_raw(port.raw(), user_packet(key, 0, 0, key as u8).as_ptr(), 0)
}

/// Waits for one packet; its status and bytes.
fn take(port: &Port, deadline: u64) -> (i32, [u8; 48]) {
    let mut p = [0u8; 48];
    let status = wait_raw(port.raw(), deadline, p.as_mut_ptr(), 0);
    (status, p)
}

fn key_of(p: &[u8; 48]) -> u64 {
    u64::from_le_bytes(p[0..8].try_into().unwrap_or_default())
}

fn u32_at(p: &[u8; 48], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().unwrap_or_default())
}

fn u64_at(p: &[u8; 48], at: usize) -> u64 {
    u64::from_le_bytes(p[at..at + 8].try_into().unwrap_or_default())
}

/// A signal packet's (key, type, status, trigger, observed, count, reserved0, reserved1).
fn signal_fields(p: &[u8; 48]) -> (u64, u32, u32, u32, u32, u64, u64, u64) {
    (key_of(p), u32_at(p, 8), u32_at(p, 12), u32_at(p, 16), u32_at(p, 20), u64_at(p, 24), u64_at(p, 32), u64_at(p, 40))
}

fn wait_async_raw(object: u32, port: u32, key: u64, signals: u32, options: u32) -> i32 {
    // SAFETY: no pointers.
    unsafe { mx_object_wait_async(object, port, key, signals, options) }
}

fn cancel_raw(port: u32, source: u32, key: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { mx_port_cancel(port, source, key) }
}

fn set(event: &Event, bits: u32) -> Outcome {
    ok!(event.handle().signal(mx::Signals::NONE, mx::Signals::from_bits_retain(bits)));
    Ok(())
}

fn clear(event: &Event, bits: u32) -> Outcome {
    ok!(event.handle().signal(mx::Signals::from_bits_retain(bits), mx::Signals::NONE));
    Ok(())
}

fn create_rights_and_type() -> Outcome {
    let mut raw = 0;
    // SAFETY: valid out-pointer.
    expect_status!(unsafe { mx_port_create(0, &mut raw) }, Status::Ok);
    let port = own(raw);
    let info = ok!(basic(port.raw()));
    expect_eq!((info.rights, info.obj_type, info.related_koid, info.props), (0xf, 6, 0, 0));
    Ok(())
}

fn create_bad_options() -> Outcome {
    let before = ok!(objects_and_handles());
    let mut raw = 0;
    // SAFETY: valid out-pointer.
    expect_status!(unsafe { mx_port_create(1, &mut raw) }, Status::InvalidArgs);
    expect_eq!(raw, 0);
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn create_bad_out_pointer_creates_nothing() -> Outcome {
    let before = ok!(objects_and_handles());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        // SAFETY: the kernel must refuse the pointer.
        expect_status!(unsafe { mx_port_create(0, bad as *mut u32) }, Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn queue_then_wait_returns_the_packet_byte_for_byte() -> Outcome {
    let port = ok!(Port::create());
    let sent = user_packet(0x0123_4567_89ab_cdef, PKT_USER, -42, 0x80);
    expect_status!(queue_raw(port.raw(), sent.as_ptr(), 0), Status::Ok);
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(got, sent);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn queue_forces_user_type() -> Outcome {
    let port = ok!(Port::create());
    let sent = user_packet(9, 0x42, 0, 1);
    expect_status!(queue_raw(port.raw(), sent.as_ptr(), 0), Status::Ok);
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(u32_at(&got, 8), PKT_USER);
    expect_eq!((&got[..8], &got[12..]), (&sent[..8], &sent[12..]));
    Ok(())
}

fn queue_size_must_be_zero_before_lookup() -> Outcome {
    let port = ok!(Port::create());
    let p = user_packet(1, 0, 0, 0);
    expect_status!(queue_raw(port.raw(), p.as_ptr(), 48), Status::InvalidArgs);
    expect_status!(queue_raw(port.raw(), p.as_ptr(), 1), Status::InvalidArgs);
    expect_status!(queue_raw(NOT_A_HANDLE, p.as_ptr(), 48), Status::InvalidArgs);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn queue_lookup_errors() -> Outcome {
    let port = ok!(Port::create());
    let read_only = ok!(port.duplicate(Rights::READ));
    let event = ok!(Event::create());
    let p = user_packet(1, 0, 0, 0);
    expect_status!(queue_raw(NOT_A_HANDLE, p.as_ptr(), 0), Status::BadHandle);
    expect_status!(queue_raw(read_only.raw(), p.as_ptr(), 0), Status::AccessDenied);
    expect_status!(queue_raw(event.raw(), p.as_ptr(), 0), Status::WrongType);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn queue_bad_packet_pointer_queues_nothing() -> Outcome {
    let port = ok!(Port::create());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(queue_raw(port.raw(), bad as *const u8, 0), Status::InvalidArgs);
    }
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn wait_size_must_be_zero_before_lookup() -> Outcome {
    let port = ok!(Port::create());
    expect_status!(queue(&port, 5), Status::Ok);
    let mut p = [0u8; 48];
    expect_status!(wait_raw(port.raw(), PAST, p.as_mut_ptr(), 48), Status::InvalidArgs);
    expect_status!(wait_raw(NOT_A_HANDLE, PAST, p.as_mut_ptr(), 48), Status::InvalidArgs);
    // Nothing was taken.
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(key_of(&got), 5);
    Ok(())
}

fn wait_lookup_errors() -> Outcome {
    let port = ok!(Port::create());
    expect_status!(queue(&port, 5), Status::Ok);
    let write_only = ok!(port.duplicate(Rights::WRITE));
    let event = ok!(Event::create());
    let mut p = [0u8; 48];
    expect_status!(wait_raw(NOT_A_HANDLE, PAST, p.as_mut_ptr(), 0), Status::BadHandle);
    expect_status!(wait_raw(write_only.raw(), PAST, p.as_mut_ptr(), 0), Status::AccessDenied);
    expect_status!(wait_raw(event.raw(), PAST, p.as_mut_ptr(), 0), Status::WrongType);
    expect_status!(take(&port, PAST).0, Status::Ok);
    Ok(())
}

fn wait_times_out_at_the_deadline() -> Outcome {
    let port = ok!(Port::create());
    let mut p = [0xa5u8; 48];
    expect_status!(wait_raw(port.raw(), PAST, p.as_mut_ptr(), 0), Status::TimedOut);
    let deadline = after(5_000_000);
    expect_status!(wait_raw(port.raw(), deadline, p.as_mut_ptr(), 0), Status::TimedOut);
    expect!(mx::time_monotonic() >= deadline, "returned early");
    expect!(p.iter().all(|&b| b == 0xa5), "the packet buffer was written");
    Ok(())
}

fn wait_bad_packet_pointer_loses_the_packet() -> Outcome {
    let port = ok!(Port::create());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(queue(&port, 1), Status::Ok);
        expect_status!(wait_raw(port.raw(), PAST, bad as *mut u8, 0), Status::InvalidArgs);
        // The packet had been dequeued (contract §5.15).
        expect_status!(take(&port, PAST).0, Status::TimedOut);
    }
    Ok(())
}

fn packets_come_out_in_fifo_order() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(queue(&port, 1), Status::Ok);
    expect_status!(wait_async_raw(event.raw(), port.raw(), 2, U0, 0), Status::Ok);
    ok!(set(&event, U0));
    for key in 3..8 {
        expect_status!(queue(&port, key), Status::Ok);
    }
    for key in 1..8 {
        let (status, got) = take(&port, PAST);
        expect_status!(status, Status::Ok);
        expect_eq!(key_of(&got), key);
    }
    Ok(())
}

struct Waiter {
    port: Port,
    key: AtomicU64,
    status: AtomicI32,
}

fn wait_once(w: &Waiter) {
    let mut p = [0u8; 48];
    let status = wait_raw(w.port.raw(), after(2_000_000_000), p.as_mut_ptr(), 0);
    w.key.store(key_of(&p), Ordering::SeqCst);
    w.status.store(status, Ordering::SeqCst);
}

fn wait_wakes_a_blocked_waiter() -> Outcome {
    let w = Waiter { port: ok!(Port::create()), key: AtomicU64::new(0), status: AtomicI32::new(1) };
    let helper = ok!(spawn(wait_once, &w));
    ok!(wait_blocked(&helper));
    expect_status!(queue(&w.port, 77), Status::Ok);
    ok!(helper.join());
    expect_status!(w.status.load(Ordering::SeqCst), Status::Ok);
    expect_eq!(w.key.load(Ordering::SeqCst), 77);
    Ok(())
}

struct Pool {
    port: Port,
    keys: [AtomicU64; 3],
    statuses: [AtomicI32; 3],
}

fn pool_waiter<const I: usize>(p: &Pool) {
    let mut pkt = [0u8; 48];
    let status = wait_raw(p.port.raw(), after(2_000_000_000), pkt.as_mut_ptr(), 0);
    p.keys[I].store(key_of(&pkt), Ordering::SeqCst);
    p.statuses[I].store(status, Ordering::SeqCst);
}

fn each_packet_wakes_exactly_one_waiter() -> Outcome {
    let p = Pool {
        port: ok!(Port::create()),
        keys: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
        statuses: [AtomicI32::new(1), AtomicI32::new(1), AtomicI32::new(1)],
    };
    let h0 = ok!(spawn(pool_waiter::<0>, &p));
    let h1 = ok!(spawn(pool_waiter::<1>, &p));
    let h2 = ok!(spawn(pool_waiter::<2>, &p));
    ok!(wait_blocked(&h0));
    ok!(wait_blocked(&h1));
    ok!(wait_blocked(&h2));
    // Two packets for three waiters: two of them end, one stays blocked.
    expect_status!(queue(&p.port, 101), Status::Ok);
    expect_status!(queue(&p.port, 102), Status::Ok);
    let done = || p.statuses.iter().filter(|s| s.load(Ordering::SeqCst) != 1).count();
    let deadline = after(1_000_000_000);
    while done() < 2 && mx::time_monotonic() < deadline {
        // SAFETY: no pointers.
        unsafe { mx_nanosleep(after(200_000)) };
    }
    // SAFETY: no pointers.
    unsafe { mx_nanosleep(after(2_000_000)) };
    expect_eq!(done(), 2);
    expect_status!(queue(&p.port, 103), Status::Ok);
    ok!(h0.join());
    ok!(h1.join());
    ok!(h2.join());
    let mut keys: Vec<u64> = Vec::new();
    for i in 0..3 {
        expect_status!(p.statuses[i].load(Ordering::SeqCst), Status::Ok);
        keys.push(p.keys[i].load(Ordering::SeqCst));
    }
    keys.sort_unstable();
    expect_eq!(keys, alloc::vec![101, 102, 103]);
    expect_status!(take(&p.port, PAST).0, Status::TimedOut);
    Ok(())
}

fn user_packet_pool_is_limited() -> Outcome {
    // 16384 user packets may be queued in all ports together.
    let port = ok!(Port::create());
    let p = user_packet(1, 0, 0, 0);
    let mut queued = 0u32;
    loop {
        let status = queue_raw(port.raw(), p.as_ptr(), 0);
        if status != 0 {
            expect_status!(status, Status::NoMemory);
            break;
        }
        queued += 1;
        if queued > 20000 {
            break;
        }
    }
    expect_eq!(queued, 16384);
    // A second port shares the same pool.
    let other = ok!(Port::create());
    expect_status!(queue(&other, 2), Status::NoMemory);
    // Taking one packet frees one slot.
    expect_status!(take(&port, PAST).0, Status::Ok);
    expect_status!(queue(&other, 2), Status::Ok);
    drop(port);
    expect_status!(queue(&other, 3), Status::Ok);
    Ok(())
}

fn closing_a_port_drops_its_packets() -> Outcome {
    let before = ok!(objects_and_handles());
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    for key in 0..10 {
        expect_status!(queue(&port, key), Status::Ok);
    }
    expect_status!(wait_async_raw(event.raw(), port.raw(), 1, U0, 1), Status::Ok);
    ok!(set(&event, U0));
    drop(port);
    drop(event);
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn wait_async_once_packet_contents() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 0xfeed_0000_0001, U0, 0), Status::Ok);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    ok!(set(&event, U0));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(signal_fields(&got), (0xfeed_0000_0001, PKT_SIGNAL_ONE, 0, U0, U0 | LAST, 1, 0, 0));
    Ok(())
}

fn wait_async_once_fires_only_once() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 1, U0, 0), Status::Ok);
    ok!(set(&event, U0));
    expect_status!(take(&port, PAST).0, Status::Ok);
    ok!(clear(&event, U0));
    ok!(set(&event, U0));
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    // The registration is gone: there is nothing to cancel.
    expect_status!(cancel_raw(port.raw(), event.raw(), 1), Status::NotFound);
    Ok(())
}

fn wait_async_queues_at_once_when_already_asserted() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    ok!(set(&event, U1 | SIGNALED));
    expect_status!(wait_async_raw(event.raw(), port.raw(), 3, U1, 0), Status::Ok);
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(signal_fields(&got), (3, PKT_SIGNAL_ONE, 0, U1, U1 | SIGNALED | LAST, 1, 0, 0));
    Ok(())
}

fn wait_async_trigger_is_the_signals_asked_for() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 4, U0 | U1 | SIGNALED, 0), Status::Ok);
    ok!(set(&event, U1));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(signal_fields(&got), (4, PKT_SIGNAL_ONE, 0, U0 | U1 | SIGNALED, U1 | LAST, 1, 0, 0));
    Ok(())
}

fn wait_async_repeating_packets() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 5, U0, 1), Status::Ok);
    ok!(set(&event, U0));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(signal_fields(&got), (5, PKT_SIGNAL_REP, 0, U0, U0 | LAST, 1, 0, 0));
    ok!(clear(&event, U0));
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    ok!(set(&event, U0 | U1));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(signal_fields(&got), (5, PKT_SIGNAL_REP, 0, U0, U0 | U1 | LAST, 1, 0, 0));
    expect_status!(cancel_raw(port.raw(), event.raw(), 5), Status::Ok);
    Ok(())
}

fn wait_async_repeating_adds_no_second_packet_while_queued() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 6, U0, 1), Status::Ok);
    ok!(set(&event, U0));
    ok!(clear(&event, U0));
    ok!(set(&event, U0));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(u32_at(&got, 8), PKT_SIGNAL_REP);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn wait_async_nonzero_options_are_repeating() -> Outcome {
    // Contract §5.7: any options value other than 0 is treated as REPEATING.
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 7, U0, 2), Status::Ok);
    ok!(set(&event, U0));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(u32_at(&got, 8), PKT_SIGNAL_REP);
    ok!(clear(&event, U0));
    ok!(set(&event, U0));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(key_of(&got), 7);
    Ok(())
}

fn wait_async_on_channel_readable() -> Outcome {
    let port = ok!(Port::create());
    let (a, b) = ok!(Channel::create());
    expect_status!(wait_async_raw(b.raw(), port.raw(), 8, READABLE | PEER_CLOSED, 0), Status::Ok);
    ok!(a.write(b"ping", &mut Vec::new()));
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(
        signal_fields(&got),
        (8, PKT_SIGNAL_ONE, 0, READABLE | PEER_CLOSED, READABLE | WRITABLE | LAST, 1, 0, 0)
    );
    Ok(())
}

fn wait_async_port_lookup_comes_first() -> Outcome {
    let port = ok!(Port::create());
    let read_only = ok!(port.duplicate(Rights::READ));
    let event = ok!(Event::create());
    // The object handle is bad too: the port's error wins.
    expect_status!(wait_async_raw(NOT_A_HANDLE, NOT_A_HANDLE, 1, U0, 0), Status::BadHandle);
    expect_status!(wait_async_raw(NOT_A_HANDLE, read_only.raw(), 1, U0, 0), Status::AccessDenied);
    expect_status!(wait_async_raw(NOT_A_HANDLE, event.raw(), 1, U0, 0), Status::WrongType);
    expect_status!(wait_async_raw(event.raw(), read_only.raw(), 1, U0, 0), Status::AccessDenied);
    Ok(())
}

fn wait_async_object_lookup_errors() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    let no_read = ok!(event.duplicate(Rights::SIGNAL));
    let other_port = ok!(Port::create());
    expect_status!(wait_async_raw(NOT_A_HANDLE, port.raw(), 1, U0, 0), Status::BadHandle);
    expect_status!(wait_async_raw(no_read.raw(), port.raw(), 1, U0, 0), Status::AccessDenied);
    expect_status!(wait_async_raw(other_port.raw(), port.raw(), 1, U0, 0), Status::NotSupported);
    ok!(set(&event, U0));
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn wait_async_closing_handle_removes_registration() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    let dup = ok!(event.duplicate(Rights::SAME_RIGHTS));
    expect_status!(wait_async_raw(dup.raw(), port.raw(), 9, U0, 1), Status::Ok);
    drop(dup);
    ok!(set(&event, U0));
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn wait_async_closing_handle_keeps_queued_packet() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    let dup = ok!(event.duplicate(Rights::SAME_RIGHTS));
    expect_status!(wait_async_raw(dup.raw(), port.raw(), 10, U0, 0), Status::Ok);
    ok!(set(&event, U0));
    drop(dup);
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!(signal_fields(&got), (10, PKT_SIGNAL_ONE, 0, U0, U0, 1, 0, 0));
    Ok(())
}

fn cancel_removes_registration() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 11, U0, 0), Status::Ok);
    expect_status!(cancel_raw(port.raw(), event.raw(), 11), Status::Ok);
    ok!(set(&event, U0));
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    expect_status!(cancel_raw(port.raw(), event.raw(), 11), Status::NotFound);
    Ok(())
}

fn cancel_removes_queued_packets() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(queue(&port, 11), Status::Ok);
    expect_status!(wait_async_raw(event.raw(), port.raw(), 11, U0, 1), Status::Ok);
    ok!(set(&event, U0));
    expect_status!(cancel_raw(port.raw(), event.raw(), 11), Status::Ok);
    // Only the user packet with the same key is left.
    let (status, got) = take(&port, PAST);
    expect_status!(status, Status::Ok);
    expect_eq!((key_of(&got), u32_at(&got, 8)), (11, PKT_USER));
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}

fn cancel_not_found() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    expect_status!(cancel_raw(port.raw(), event.raw(), 1), Status::NotFound);
    expect_status!(wait_async_raw(event.raw(), port.raw(), 1, U0, 0), Status::Ok);
    expect_status!(cancel_raw(port.raw(), event.raw(), 2), Status::NotFound);
    let other = ok!(Port::create());
    expect_status!(cancel_raw(other.raw(), event.raw(), 1), Status::NotFound);
    expect_status!(cancel_raw(port.raw(), event.raw(), 1), Status::Ok);
    Ok(())
}

fn cancel_matches_the_registering_handle() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    let dup = ok!(event.duplicate(Rights::SAME_RIGHTS));
    expect_status!(wait_async_raw(event.raw(), port.raw(), 12, U0, 0), Status::Ok);
    expect_status!(cancel_raw(port.raw(), dup.raw(), 12), Status::NotFound);
    ok!(set(&event, U0));
    expect_status!(take(&port, PAST).0, Status::Ok);
    Ok(())
}

fn cancel_port_lookup_errors() -> Outcome {
    let port = ok!(Port::create());
    let read_only = ok!(port.duplicate(Rights::READ));
    let event = ok!(Event::create());
    expect_status!(wait_async_raw(event.raw(), port.raw(), 1, U0, 0), Status::Ok);
    expect_status!(cancel_raw(NOT_A_HANDLE, NOT_A_HANDLE, 1), Status::BadHandle);
    expect_status!(cancel_raw(read_only.raw(), NOT_A_HANDLE, 1), Status::AccessDenied);
    expect_status!(cancel_raw(event.raw(), event.raw(), 1), Status::WrongType);
    // Still registered.
    expect_status!(cancel_raw(port.raw(), event.raw(), 1), Status::Ok);
    Ok(())
}

fn cancel_source_lookup_errors() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    let no_read = ok!(event.duplicate(Rights::SIGNAL));
    expect_status!(cancel_raw(port.raw(), NOT_A_HANDLE, 1), Status::BadHandle);
    expect_status!(cancel_raw(port.raw(), no_read.raw(), 1), Status::AccessDenied);
    expect_status!(cancel_raw(port.raw(), port.raw(), 1), Status::NotSupported);
    Ok(())
}

fn cancel_removes_a_once_packet_already_queued() -> Outcome {
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    ok!(set(&event, U0));
    expect_status!(wait_async_raw(event.raw(), port.raw(), 13, U0, 0), Status::Ok);
    expect_status!(cancel_raw(port.raw(), event.raw(), 13), Status::Ok);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    expect_status!(cancel_raw(port.raw(), event.raw(), 13), Status::NotFound);
    Ok(())
}

fn lookups_check_rights_before_type() -> Outcome {
    // An event handle lacking the right a port argument needs is
    // ACCESS_DENIED, not WRONG_TYPE (contract §4).
    let port = ok!(Port::create());
    let event = ok!(Event::create());
    let bare = ok!(event.duplicate(Rights::NONE));
    let p = user_packet(1, 0, 0, 0);
    let mut buf = [0u8; 48];
    expect_status!(queue_raw(bare.raw(), p.as_ptr(), 0), Status::AccessDenied);
    expect_status!(wait_raw(bare.raw(), PAST, buf.as_mut_ptr(), 0), Status::AccessDenied);
    expect_status!(wait_async_raw(event.raw(), bare.raw(), 1, U0, 0), Status::AccessDenied);
    expect_status!(cancel_raw(bare.raw(), event.raw(), 1), Status::AccessDenied);
    expect_status!(take(&port, PAST).0, Status::TimedOut);
    Ok(())
}
