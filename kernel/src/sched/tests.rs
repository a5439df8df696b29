//! In-kernel tests of threads, the scheduler and wait queues (`ktest=sched`).

use super::{
    sleep_until, spawn, spawn_kernel_thread, yield_now, Thread, ThreadOptions, ThreadState, WaitQueue, WakeReason,
    INFINITE, PRIORITY_DEFAULT, PRIORITY_HIGH, PRIORITY_HIGHEST, PRIORITY_LOW,
};
use crate::sync::IrqSpinlock;
use crate::time::now_ns;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use mx_abi::Status;

const MS: u64 = 1_000_000;

fn cpus() -> u32 {
    crate::arch::x86::smp::online_count()
}

/// Two CPUs to pin to, other than the one the tests run on when possible.
fn two_cpus() -> (Option<u32>, Option<u32>) {
    match cpus() {
        0 | 1 => (None, None),
        2 => (Some(0), Some(1)),
        n => (Some(n - 2), Some(n - 1)),
    }
}

/// Joins `thread`, then waits until the caller holds its only reference,
/// so no test leaves the reaper freeing memory while the next one runs.
fn join(thread: &Arc<Thread>, within_ns: u64) -> Result<i32, String> {
    let code = thread.join(now_ns() + within_ns).map_err(|s| format!("join of {} failed: {s}", thread.name()))?;
    wait_sole_owner(thread)?;
    Ok(code)
}

/// Waits until the scheduler's and reaper's references are gone, so
/// dropping `thread` frees it.
fn wait_sole_owner(thread: &Arc<Thread>) -> Result<(), String> {
    let give_up = now_ns() + 2_000 * MS;
    while Arc::strong_count(thread) > 1 {
        if now_ns() > give_up {
            return Err(format!("{} still referenced {} times", thread.name(), Arc::strong_count(thread)));
        }
        yield_now();
    }
    Ok(())
}

struct PingPong {
    turn: IrqSpinlock<(u32, u32)>,
    ping: WaitQueue,
    pong: WaitQueue,
}

const ROUNDS: u32 = 10_000;

/// One side of the ping-pong: waits for its turn (`me`), passes the turn on.
fn play(game: &PingPong, me: u32) -> Result<(), Status> {
    let (mine, theirs) = if me == 0 { (&game.ping, &game.pong) } else { (&game.pong, &game.ping) };
    loop {
        let mut turn = game.turn.lock();
        if turn.1 >= ROUNDS {
            return Ok(());
        }
        if turn.0 == me {
            turn.0 = 1 - me;
            if me == 1 {
                turn.1 += 1;
            }
            drop(turn);
            theirs.wake_one(0);
            continue;
        }
        match mine.block(turn, now_ns() + 5_000 * MS) {
            WakeReason::Woken(_) => {}
            WakeReason::TimedOut => return Err(Status::TimedOut),
            WakeReason::Interrupted => return Err(Status::InternalIntrRetry),
        }
    }
}

crate::ktest!(sched_ping_pong_across_cpus, || {
    let game = Arc::new(PingPong { turn: IrqSpinlock::new((0, 0)), ping: WaitQueue::new(), pong: WaitQueue::new() });
    let failures = Arc::new(AtomicU32::new(0));
    let (a, b) = two_cpus();
    let started = now_ns();
    let mut threads = Vec::new();
    for (me, cpu) in [(0, a), (1, b)] {
        let (game, failures) = (game.clone(), failures.clone());
        let options = ThreadOptions { affinity: cpu, ..ThreadOptions::new(if me == 0 { "ping" } else { "pong" }) };
        threads.push(
            spawn(&options, move || {
                if play(&game, me).is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|s| format!("spawn: {s}"))?,
        );
    }
    for thread in &threads {
        join(thread, 30_000 * MS)?;
    }
    kassert!(failures.load(Ordering::Relaxed) == 0, "a player timed out");
    kassert!(game.turn.lock().1 == ROUNDS);
    kassert!(a.is_none() || threads[0].cpu() != threads[1].cpu(), "players shared a CPU");
    log::info!("ktest: {ROUNDS} ping-pong rounds in {} ms", (now_ns() - started) / MS);
    Ok(())
});

crate::ktest!(sched_preempts_cpu_bound_threads, || {
    let cpu = Some(cpus() - 1);
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let mut threads = Vec::new();
    for i in 0..2 {
        let (stop, counters) = (stop.clone(), counters.clone());
        let options = ThreadOptions { affinity: cpu, ..ThreadOptions::new("spinner") };
        threads.push(
            spawn(&options, move || {
                while !stop.load(Ordering::Relaxed) {
                    counters[i].fetch_add(1, Ordering::Relaxed);
                }
            })
            .map_err(|s| format!("spawn: {s}"))?,
        );
    }
    // Neither spinner yields: both progressing means the slice timer works.
    let _ = sleep_until(now_ns() + 8 * super::TIME_SLICE_NS);
    let seen = [counters[0].load(Ordering::Relaxed), counters[1].load(Ordering::Relaxed)];
    let _ = sleep_until(now_ns() + 4 * super::TIME_SLICE_NS);
    let later = [counters[0].load(Ordering::Relaxed), counters[1].load(Ordering::Relaxed)];
    stop.store(true, Ordering::Relaxed);
    for thread in &threads {
        join(thread, 2_000 * MS)?;
    }
    kassert!(seen[0] > 0 && seen[1] > 0, "a spinner never ran: {seen:?}");
    kassert!(later[0] > seen[0] && later[1] > seen[1], "a spinner stopped progressing: {seen:?} -> {later:?}");
    Ok(())
});

crate::ktest!(sched_higher_priority_runs_first, || {
    // On one CPU, the test thread at the highest priority makes a low, a
    // high and a default thread ready, then drops below them all: they must
    // run highest first.
    let cpu = cpus() - 1;
    let me = super::current();
    let (old_priority, old_affinity) = (me.priority(), me.affinity());
    me.set_affinity(Some(cpu)).map_err(|s| format!("set_affinity: {s}"))?;
    yield_now();
    me.set_priority(PRIORITY_HIGHEST).map_err(|s| format!("set_priority: {s}"))?;
    let order = Arc::new(IrqSpinlock::new(Vec::new()));
    let mut threads = Vec::new();
    for (name, priority) in [("low", PRIORITY_LOW), ("high", PRIORITY_HIGH), ("default", PRIORITY_DEFAULT)] {
        let order = order.clone();
        let options = ThreadOptions { priority, affinity: Some(cpu), ..ThreadOptions::new(name) };
        threads.push(spawn(&options, move || order.lock().push(priority)).map_err(|s| format!("spawn: {s}"))?);
    }
    let before = order.lock().len();
    me.set_priority(super::PRIORITY_LOWEST).map_err(|s| format!("set_priority: {s}"))?;
    let restored = me.set_priority(old_priority).and(me.set_affinity(old_affinity));
    for thread in &threads {
        join(thread, 2_000 * MS)?;
    }
    restored.map_err(|s| format!("restoring: {s}"))?;
    kassert!(before == 0, "{before} threads ran before the test thread stepped down");
    let order = order.lock().clone();
    kassert!(order == [PRIORITY_HIGH, PRIORITY_DEFAULT, PRIORITY_LOW], "ran in order {order:?}");
    Ok(())
});

crate::ktest!(sched_sleep_until_is_accurate, || {
    // Never early, ever. Late by less than 5 ms in the best of a few tries
    // per length: the emulator's host may deschedule a virtual CPU now and
    // then, but a wake-up that waits for some later tick is late every time.
    let mut worst_best = 0;
    for ahead in [MS, 3 * MS, 10 * MS] {
        let mut best = u64::MAX;
        for _ in 0..5 {
            let deadline = now_ns() + ahead;
            sleep_until(deadline).map_err(|s| format!("sleep: {s}"))?;
            let woke = now_ns();
            kassert!(woke >= deadline, "woke {} ns early", deadline - woke);
            best = best.min(woke - deadline);
            if best < MS {
                break;
            }
        }
        worst_best = worst_best.max(best);
    }
    kassert!(worst_best < 5 * MS, "woke up at best {} us late", worst_best / 1000);
    // A deadline in the past only yields.
    sleep_until(0).map_err(|s| format!("sleep(0): {s}"))?;
    Ok(())
});

crate::ktest!(sched_block_with_past_deadline_times_out, || {
    let lock = IrqSpinlock::new(());
    let queue = WaitQueue::new();
    let started = now_ns();
    let reason = queue.block(lock.lock(), started.saturating_sub(1));
    kassert!(reason == WakeReason::TimedOut, "got {reason:?}");
    let reason = queue.block(lock.lock(), 0);
    kassert!(reason == WakeReason::TimedOut, "got {reason:?}");
    kassert!(now_ns() - started < MS, "took {} us", (now_ns() - started) / 1000);
    kassert!(queue.is_empty());
    // The guard was released: the lock can be taken again.
    drop(lock.lock());
    // A short deadline times out too, after blocking.
    let deadline = now_ns() + 2 * MS;
    let reason = queue.block(lock.lock(), deadline);
    kassert!(reason == WakeReason::TimedOut && now_ns() >= deadline, "got {reason:?}");
    kassert!(queue.is_empty());
    Ok(())
});

crate::ktest!(sched_kill_while_blocked_interrupts, || {
    let shared = Arc::new((IrqSpinlock::new(()), WaitQueue::new(), IrqSpinlock::new(None)));
    let waiter = {
        let shared = shared.clone();
        spawn_kernel_thread("victim", PRIORITY_DEFAULT, move || {
            let reason = shared.1.block(shared.0.lock(), INFINITE);
            // Blocking again after a kill returns at once.
            let again = shared.1.block(shared.0.lock(), INFINITE);
            let slept = sleep_until(INFINITE);
            *shared.2.lock() = Some((reason, again, slept));
        })
        .map_err(|s| format!("spawn: {s}"))?
    };
    let give_up = now_ns() + 2_000 * MS;
    while waiter.state() != ThreadState::Blocked {
        kassert!(now_ns() < give_up, "the victim never blocked");
        yield_now();
    }
    waiter.kill();
    join(&waiter, 2_000 * MS)?;
    let outcome = shared.2.lock().take();
    kassert!(
        outcome == Some((WakeReason::Interrupted, WakeReason::Interrupted, Err(Status::InternalIntrRetry))),
        "got {outcome:?}"
    );
    kassert!(shared.1.is_empty());
    Ok(())
});

crate::ktest!(sched_wake_storm_loses_nothing, || {
    // Consumers take tokens, producers add them one at a time with a
    // wake_one each; every token must be consumed.
    const CONSUMERS: u32 = 6;
    const PRODUCERS: u32 = 3;
    const TOKENS: u32 = 2_000;
    let shared = Arc::new((IrqSpinlock::new((0u32, 0u32)), WaitQueue::new()));
    let mut threads = Vec::new();
    for i in 0..CONSUMERS {
        let shared = shared.clone();
        threads.push(
            spawn_kernel_thread("consumer", PRIORITY_DEFAULT, move || loop {
                let mut state = shared.0.lock();
                if state.1 == PRODUCERS * TOKENS {
                    drop(state);
                    // Pass the end on: other consumers may be waiting.
                    shared.1.wake_all(0);
                    return;
                }
                if state.0 > 0 {
                    state.0 -= 1;
                    state.1 += 1;
                    continue;
                }
                if shared.1.block(state, INFINITE) == WakeReason::Interrupted {
                    return;
                }
            })
            .map_err(|s| format!("spawn consumer {i}: {s}"))?,
        );
    }
    for i in 0..PRODUCERS {
        let shared = shared.clone();
        threads.push(
            spawn_kernel_thread("producer", PRIORITY_DEFAULT, move || {
                for n in 0..TOKENS {
                    shared.0.lock().0 += 1;
                    shared.1.wake_one(0);
                    if n % 64 == 0 {
                        yield_now();
                    }
                }
            })
            .map_err(|s| format!("spawn producer {i}: {s}"))?,
        );
    }
    let deadline = now_ns() + 20_000 * MS;
    for thread in &threads {
        if join(thread, deadline.saturating_sub(now_ns())).is_err() {
            let state = *shared.0.lock();
            for t in &threads {
                t.kill();
            }
            return Err(format!("stuck with {} tokens left, {} consumed", state.0, state.1));
        }
    }
    let state = *shared.0.lock();
    kassert!(state == (0, PRODUCERS * TOKENS), "ended with {state:?}");
    Ok(())
});

crate::ktest!(sched_exit_frees_stack_and_heap, || {
    const THREADS: usize = 12;
    fn round() -> Result<(), String> {
        let mut threads = Vec::new();
        for i in 0..THREADS {
            let data: Vec<u64> = (0..64).collect();
            threads.push(
                spawn_kernel_thread("short", PRIORITY_DEFAULT, move || {
                    let len = data.len() as i32;
                    // `exit` does not unwind: drop what the thread owns first.
                    drop(data);
                    if i % 2 == 0 {
                        super::exit(len);
                    }
                })
                .map_err(|s| format!("spawn: {s}"))?,
            );
        }
        for (i, thread) in threads.iter().enumerate() {
            let code = join(thread, 2_000 * MS)?;
            kassert!(thread.state() == ThreadState::Dead);
            kassert!(code == if i % 2 == 0 { 64 } else { 0 }, "exit code {code}");
        }
        // The last references go here, not in the reaper: make the freed
        // slots reusable now, as the reaper's next pass would.
        drop(threads);
        crate::mm::kstack::recycle_freed();
        Ok(())
    }
    // The first round may grow page tables for new stack slots; later
    // rounds reuse the same slots.
    round()?;
    let frames = crate::mm::frame::stats().free_frames;
    let heap = crate::mm::heap::in_use();
    round()?;
    // The reaper may still hold a thread of the round for a moment (a CI
    // run once saw one frame short): give it up to a second.
    let deadline = now_ns() + 1_000 * MS;
    loop {
        crate::mm::kstack::recycle_freed();
        let (frames_after, heap_after) = (crate::mm::frame::stats().free_frames, crate::mm::heap::in_use());
        if frames_after == frames && heap_after == heap {
            return Ok(());
        }
        if now_ns() >= deadline {
            kassert!(frames_after == frames, "free frames {frames} -> {frames_after}");
            kassert!(heap_after == heap, "heap in use {heap} -> {heap_after}");
        }
        let _ = sleep_until(now_ns() + 10 * MS);
    }
});

crate::ktest!(sched_join_with_deadline, || {
    let thread = spawn_kernel_thread("sleeper", PRIORITY_DEFAULT, || {
        let _ = sleep_until(now_ns() + 30 * MS);
        super::exit(7);
    })
    .map_err(|s| format!("spawn: {s}"))?;
    let started = now_ns();
    let early = thread.join(started + 5 * MS);
    kassert!(early == Err(Status::TimedOut), "early join gave {early:?}");
    kassert!(now_ns() >= started + 5 * MS);
    kassert!(thread.join(0) == Err(Status::TimedOut));
    kassert!(thread.join(INFINITE) == Ok(7));
    // Joining a dead thread returns at once, whatever the deadline.
    kassert!(thread.join(0) == Ok(7));
    wait_sole_owner(&thread)?;
    Ok(())
});

crate::ktest!(sched_priority_and_affinity_changes, || {
    kassert!(super::current().set_priority(32) == Err(Status::InvalidArgs));
    kassert!(super::current().set_priority(-1) == Err(Status::InvalidArgs));
    let me = super::current();
    let old = me.priority();
    me.set_priority(PRIORITY_HIGH).map_err(|s| format!("set_priority: {s}"))?;
    kassert!(me.priority() == PRIORITY_HIGH);
    me.set_priority(old).map_err(|s| format!("set_priority: {s}"))?;
    // Hop across every CPU by affinity.
    for cpu in 0..cpus() {
        me.set_affinity(Some(cpu)).map_err(|s| format!("set_affinity({cpu}): {s}"))?;
        yield_now();
        kassert!(crate::arch::x86::percpu::cpu_index() == cpu, "still on cpu{}", crate::arch::x86::percpu::cpu_index());
    }
    me.set_affinity(None).map_err(|s| format!("set_affinity: {s}"))?;
    kassert!(me.set_affinity(Some(u32::MAX - 1)) == Err(Status::InvalidArgs));
    Ok(())
});

crate::ktest!(sched_fpu_state_survives_switches, || {
    // Two threads with FPU state on one CPU keep their own XMM0 across
    // many switches.
    let cpu = Some(cpus() - 1);
    let bad = Arc::new(AtomicU32::new(0));
    let mut threads = Vec::new();
    for value in [0x1111_2222_3333_4444u64, 0x5555_6666_7777_8888] {
        let bad = bad.clone();
        let options = ThreadOptions { affinity: cpu, fpu: true, ..ThreadOptions::new("fpu") };
        threads.push(
            spawn(&options, move || {
                use crate::arch::x86::fpu::{test_read_xmm0, test_write_xmm0};
                test_write_xmm0(value);
                for _ in 0..200 {
                    yield_now();
                    if test_read_xmm0() != value {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|s| format!("spawn: {s}"))?,
        );
    }
    for thread in &threads {
        join(thread, 5_000 * MS)?;
    }
    kassert!(bad.load(Ordering::Relaxed) == 0, "XMM0 lost {} times", bad.load(Ordering::Relaxed));
    Ok(())
});

crate::ktest!(sched_runtime_and_owner, || {
    let thread = spawn_kernel_thread("runner", PRIORITY_DEFAULT, || {
        let until = now_ns() + 5 * MS;
        while now_ns() < until {
            core::hint::spin_loop();
        }
    })
    .map_err(|s| format!("spawn: {s}"))?;
    thread.set_owner(Arc::new(42u32));
    kassert!(thread.owner().and_then(|o| o.downcast::<u32>().ok()).is_some_and(|v| *v == 42));
    join(&thread, 2_000 * MS)?;
    // The reaper dropped the owner with the thread.
    kassert!(thread.owner().is_none());
    let ran = thread.runtime_ns();
    kassert!((5 * MS..1_000 * MS).contains(&ran), "ran {ran} ns");
    Ok(())
});
