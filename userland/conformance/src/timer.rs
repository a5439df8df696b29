//! Timers: `mx_timer_create`, `mx_timer_set`, `mx_timer_cancel` (§5.27).

use crate::harness::Outcome;
use crate::support::*;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status, ok};
use mx::sys::*;
use mx::{Event, Port, Rights, Status, Timer};

cases![
    create_rights_type_and_signals,
    create_accepts_the_three_slack_options,
    create_rejects_options_above_two,
    create_needs_the_monotonic_clock,
    create_bad_out_pointer_creates_nothing,
    set_past_deadline_signals_at_once,
    set_zero_deadline_signals_at_once,
    fires_at_its_deadline,
    earlier_timer_is_not_held_up_by_a_later_one,
    set_rearms_and_clears_signaled,
    cancel_clears_signaled,
    cancel_stops_a_pending_deadline,
    cancel_of_an_unarmed_timer_is_ok,
    set_lookup_errors,
    cancel_lookup_errors,
    firing_queues_an_async_packet,
    closing_an_armed_timer_releases_it,
];

fn create_raw(options: u32, clock: u32, out: *mut u32) -> i32 {
    // SAFETY: a valid or deliberately bad out-pointer.
    unsafe { mx_timer_create(options, clock, out) }
}

fn set_raw(raw: u32, deadline: u64) -> i32 {
    // SAFETY: no pointers.
    unsafe { mx_timer_set(raw, deadline, 0) }
}

fn cancel_raw(raw: u32) -> i32 {
    // SAFETY: no pointers.
    unsafe { mx_timer_cancel(raw) }
}

fn create_rights_type_and_signals() -> Outcome {
    let mut raw = 0;
    expect_status!(create_raw(0, 0, &mut raw), Status::Ok);
    let timer = own(raw);
    let info = ok!(basic(timer.raw()));
    expect_eq!((info.rights, info.obj_type, info.related_koid, info.props), (0x100f, 22, 0, 1));
    expect_eq!(signals(timer.raw()), LAST);
    Ok(())
}

fn create_accepts_the_three_slack_options() -> Outcome {
    for options in 0..3 {
        let mut raw = 0;
        expect_status!(create_raw(options, 0, &mut raw), Status::Ok);
        drop(own(raw));
    }
    Ok(())
}

fn create_rejects_options_above_two() -> Outcome {
    let before = ok!(objects_and_handles());
    for options in [3u32, 4, 0xffff_ffff] {
        let mut raw = 0;
        expect_status!(create_raw(options, 0, &mut raw), Status::InvalidArgs);
        expect_eq!(raw, 0);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn create_needs_the_monotonic_clock() -> Outcome {
    let before = ok!(objects_and_handles());
    for clock in [1u32, 2, 3, 0xffff_ffff] {
        let mut raw = 0;
        expect_status!(create_raw(0, clock, &mut raw), Status::InvalidArgs);
        expect_eq!(raw, 0);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn create_bad_out_pointer_creates_nothing() -> Outcome {
    let _warm = ok!(Timer::create());
    let before = ok!(objects_and_handles());
    for bad in [0usize, UNMAPPED_ADDR, KERNEL_ADDR] {
        expect_status!(create_raw(0, 0, bad as *mut u32), Status::InvalidArgs);
    }
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}

fn set_past_deadline_signals_at_once() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(set_raw(timer.raw(), PAST), Status::Ok);
    expect_eq!(signals(timer.raw()), SIGNALED | LAST);
    expect_status!(set_raw(timer.raw(), mx::time_monotonic()), Status::Ok);
    expect_eq!(signals(timer.raw()), SIGNALED | LAST);
    Ok(())
}

fn set_zero_deadline_signals_at_once() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(set_raw(timer.raw(), 0), Status::Ok);
    expect_eq!(signals(timer.raw()), SIGNALED | LAST);
    Ok(())
}

fn fires_at_its_deadline() -> Outcome {
    let timer = ok!(Timer::create());
    let deadline = after(30_000_000);
    expect_status!(set_raw(timer.raw(), deadline), Status::Ok);
    expect_eq!(signals(timer.raw()), LAST);
    let mut observed = 0;
    // SAFETY: `observed` is valid.
    let status = unsafe { mx_object_wait_one(timer.raw(), SIGNALED, after(2_000_000_000), &mut observed) };
    let now = mx::time_monotonic();
    expect_status!(status, Status::Ok);
    expect!(now >= deadline, "fired {} ns early", deadline - now);
    expect_eq!(observed, SIGNALED | LAST);
    Ok(())
}

fn earlier_timer_is_not_held_up_by_a_later_one() -> Outcome {
    let (late, early) = (ok!(Timer::create()), ok!(Timer::create()));
    expect_status!(set_raw(late.raw(), after(10_000_000_000)), Status::Ok);
    let deadline = after(5_000_000);
    expect_status!(set_raw(early.raw(), deadline), Status::Ok);
    // SAFETY: no out-pointer.
    let status = unsafe { mx_object_wait_one(early.raw(), SIGNALED, after(1_000_000_000), core::ptr::null_mut()) };
    expect_status!(status, Status::Ok);
    expect_eq!(signals(late.raw()), LAST);
    Ok(())
}

fn set_rearms_and_clears_signaled() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(set_raw(timer.raw(), PAST), Status::Ok);
    let deadline = after(30_000_000);
    expect_status!(set_raw(timer.raw(), deadline), Status::Ok);
    expect_eq!(signals(timer.raw()), LAST);
    // SAFETY: no out-pointer.
    let status = unsafe { mx_object_wait_one(timer.raw(), SIGNALED, after(1_000_000_000), core::ptr::null_mut()) };
    expect_status!(status, Status::Ok);
    expect!(mx::time_monotonic() >= deadline, "fired early");
    Ok(())
}

fn cancel_clears_signaled() -> Outcome {
    let timer = ok!(Timer::create());
    ok!(timer.handle().signal(mx::Signals::NONE, mx::Signals::USER_0));
    expect_status!(set_raw(timer.raw(), PAST), Status::Ok);
    expect_status!(cancel_raw(timer.raw()), Status::Ok);
    expect_eq!(signals(timer.raw()), U0 | LAST);
    Ok(())
}

fn cancel_stops_a_pending_deadline() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(set_raw(timer.raw(), after(5_000_000)), Status::Ok);
    expect_status!(cancel_raw(timer.raw()), Status::Ok);
    let mut observed = 0;
    // SAFETY: `observed` is valid.
    let status = unsafe { mx_object_wait_one(timer.raw(), SIGNALED, after(20_000_000), &mut observed) };
    expect_status!(status, Status::TimedOut);
    expect_eq!(observed, LAST);
    Ok(())
}

fn cancel_of_an_unarmed_timer_is_ok() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(cancel_raw(timer.raw()), Status::Ok);
    expect_status!(cancel_raw(timer.raw()), Status::Ok);
    expect_eq!(signals(timer.raw()), LAST);
    Ok(())
}

fn set_lookup_errors() -> Outcome {
    let timer = ok!(Timer::create());
    let no_write = ok!(timer.duplicate(Rights::READ | Rights::SIGNAL));
    let event = ok!(Event::create());
    expect_status!(set_raw(NOT_A_HANDLE, PAST), Status::BadHandle);
    expect_status!(set_raw(no_write.raw(), PAST), Status::AccessDenied);
    expect_status!(set_raw(event.raw(), PAST), Status::WrongType);
    expect_eq!(signals(timer.raw()), 0);
    expect_eq!(signals(event.raw()), LAST);
    Ok(())
}

fn cancel_lookup_errors() -> Outcome {
    let timer = ok!(Timer::create());
    expect_status!(set_raw(timer.raw(), PAST), Status::Ok);
    let no_write = ok!(timer.duplicate(Rights::READ));
    let port = ok!(Port::create());
    expect_status!(cancel_raw(NOT_A_HANDLE), Status::BadHandle);
    expect_status!(cancel_raw(no_write.raw()), Status::AccessDenied);
    expect_status!(cancel_raw(port.raw()), Status::WrongType);
    expect_eq!(signals(timer.raw()) & SIGNALED, SIGNALED);
    Ok(())
}

fn firing_queues_an_async_packet() -> Outcome {
    let timer = ok!(Timer::create());
    let port = ok!(Port::create());
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_object_wait_async(timer.raw(), port.raw(), 0x77, SIGNALED, 0) }, Status::Ok);
    expect_status!(set_raw(timer.raw(), after(2_000_000)), Status::Ok);
    let mut p = [0u8; 48];
    // SAFETY: `p` holds a packet.
    expect_status!(unsafe { mx_port_wait(port.raw(), after(1_000_000_000), p.as_mut_ptr().cast(), 0) }, Status::Ok);
    let word = |at: usize| u32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    expect_eq!((p[0], word(8), word(12), word(16), word(20), word(24)), (0x77, 1, 0, SIGNALED, SIGNALED | LAST, 1));
    Ok(())
}

fn closing_an_armed_timer_releases_it() -> Outcome {
    let before = ok!(objects_and_handles());
    let timer = ok!(Timer::create());
    expect_status!(set_raw(timer.raw(), after(1_000_000)), Status::Ok);
    drop(timer);
    expect_eq!(ok!(objects_and_handles()), before);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(after(3_000_000)) }, Status::Ok);
    expect_eq!(ok!(objects_and_handles()), before);
    Ok(())
}
