//! Clocks and sleeping: `mx_time_get`, `mx_nanosleep`, `mx_deadline_after`
//! (§5.27).

use crate::harness::Outcome;
use crate::util::*;
use crate::{cases, expect, expect_eq, expect_status};
use mx::sys::*;
use mx::Status;

cases![
    monotonic_never_goes_back,
    monotonic_advances_across_a_sleep,
    utc_is_monotonic_plus_a_fixed_offset,
    thread_clock_counts_running_time_only,
    unknown_clock_reads_zero,
    nanosleep_zero_yields_and_returns_ok,
    nanosleep_past_deadline_returns_at_once,
    nanosleep_sleeps_until_the_deadline,
    deadline_after_adds_to_monotonic,
    deadline_after_wraps_without_saturating,
];

fn clock(id: u32) -> u64 {
    // SAFETY: no pointers.
    unsafe { mx_time_get(id) }
}

fn monotonic_never_goes_back() -> Outcome {
    let mut last = clock(0);
    expect!(last > 0, "monotonic clock reads 0");
    for _ in 0..1000 {
        let now = clock(0);
        expect!(now >= last, "went back from {last} to {now}");
        last = now;
    }
    Ok(())
}

fn monotonic_advances_across_a_sleep() -> Outcome {
    let before = clock(0);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(before + 2_000_000) }, Status::Ok);
    let now = clock(0);
    expect!(now >= before + 2_000_000, "only {} ns passed", now - before);
    Ok(())
}

fn utc_is_monotonic_plus_a_fixed_offset() -> Outcome {
    let (m1, u1, m1b) = (clock(0), clock(1), clock(0));
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(after(2_000_000)) }, Status::Ok);
    let (m2, u2, m2b) = (clock(0), clock(1), clock(0));
    // u - m is the same offset both times, up to the time between the reads.
    let lo1 = u1.wrapping_sub(m1b) as i64;
    let hi1 = u1.wrapping_sub(m1) as i64;
    let lo2 = u2.wrapping_sub(m2b) as i64;
    let hi2 = u2.wrapping_sub(m2) as i64;
    expect!(lo1.max(lo2) <= hi1.min(hi2), "offsets [{lo1}, {hi1}] and [{lo2}, {hi2}]");
    expect!(u2 > u1, "UTC did not advance");
    Ok(())
}

fn thread_clock_counts_running_time_only() -> Outcome {
    let t0 = clock(2);
    let m0 = clock(0);
    // Run for a while.
    let mut x = 0u64;
    while clock(0) < m0 + 3_000_000 {
        x = core::hint::black_box(x.wrapping_add(1));
    }
    let t1 = clock(2);
    expect!(t1 > t0, "thread clock did not advance while running ({t0} -> {t1})");
    // Sleep for a while: the thread clock barely moves.
    let m1 = clock(0);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(m1 + 20_000_000) }, Status::Ok);
    let (t2, m2) = (clock(2), clock(0));
    expect!(t2 >= t1, "thread clock went back");
    expect!(t2 - t1 < (m2 - m1) / 2, "slept {} ns but the thread clock moved {} ns", m2 - m1, t2 - t1);
    Ok(())
}

fn unknown_clock_reads_zero() -> Outcome {
    for id in [3u32, 4, 100, 0xffff_ffff] {
        expect_eq!(clock(id), 0);
    }
    Ok(())
}

fn nanosleep_zero_yields_and_returns_ok() -> Outcome {
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(0) }, Status::Ok);
    Ok(())
}

fn nanosleep_past_deadline_returns_at_once() -> Outcome {
    let before = clock(0);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(PAST) }, Status::Ok);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(before) }, Status::Ok);
    let took = clock(0) - before;
    expect!(took < 500_000_000, "took {took} ns");
    Ok(())
}

fn nanosleep_sleeps_until_the_deadline() -> Outcome {
    let deadline = after(5_000_000);
    // SAFETY: no pointers.
    expect_status!(unsafe { mx_nanosleep(deadline) }, Status::Ok);
    let now = clock(0);
    expect!(now >= deadline, "woke {} ns early", deadline - now);
    Ok(())
}

fn deadline_after_adds_to_monotonic() -> Outcome {
    let before = clock(0);
    let d = after(1_000_000_000);
    let after_ = clock(0);
    expect!(d >= before + 1_000_000_000 && d <= after_ + 1_000_000_000, "{before} {d} {after_}");
    Ok(())
}

fn deadline_after_wraps_without_saturating() -> Outcome {
    let before = clock(0);
    let d = after(u64::MAX);
    let after_ = clock(0);
    // now + u64::MAX wraps to now - 1.
    expect!(d >= before - 1 && d < after_, "{before} {d} {after_}");
    Ok(())
}
