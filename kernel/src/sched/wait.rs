//! Wait queues: how a thread blocks until an object wakes it, a deadline
//! passes, or it is killed. Also `sleep_until`, a wait nobody wakes.

use super::thread::{current_ref, CurrentRef, State, WakeCode};
use super::{lock, program_timer, reschedule, this_cpu, QueueAdapter, Sched, SchedGuard, INFINITE};
use crate::sync::{IrqSpinlock, IrqSpinlockGuard};
use alloc::sync::Arc;
use core::sync::atomic::Ordering;
use intrusive_collections::LinkedList;
use mx_abi::Status;

/// Why [`WaitQueue::block`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// A waker called `wake_one`/`wake_all` with this status (e.g. `MX_OK`).
    Woken(i32),
    /// The deadline passed (or had already passed).
    TimedOut,
    /// The thread was killed (or, later, suspended).
    Interrupted,
}

impl From<WakeCode> for WakeReason {
    fn from(code: WakeCode) -> WakeReason {
        match code {
            WakeCode::Woken(status) => WakeReason::Woken(status),
            WakeCode::TimedOut => WakeReason::TimedOut,
            WakeCode::Interrupted => WakeReason::Interrupted,
            // Resumed without a recorded reason: treat as a plain wake-up;
            // callers re-check their condition anyway.
            WakeCode::None => WakeReason::Woken(Status::Ok.into_raw()),
        }
    }
}

/// Threads blocked on one condition, woken first-in first-out.
///
/// Links live in the threads, so blocking and waking allocate nothing.
/// The list has its own lock, nested inside the scheduler lock (which every
/// change also holds), so `is_empty` can be asked without the latter.
pub struct WaitQueue {
    list: IrqSpinlock<LinkedList<QueueAdapter>>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("WaitQueue").field("empty", &self.is_empty()).finish()
    }
}

impl WaitQueue {
    pub const fn new() -> WaitQueue {
        WaitQueue { list: IrqSpinlock::new(LinkedList::new(QueueAdapter::NEW)) }
    }

    /// Blocks the current thread until a wake, the deadline (absolute ns,
    /// `u64::MAX` = none), or a kill.
    ///
    /// `guard` is a held lock of the object's state that protects the
    /// condition; it is released only after the thread is on the queue, so
    /// a wake-up made under the same lock cannot be lost. The lock is NOT
    /// re-taken on return. A deadline already past returns `TimedOut` and a
    /// killed thread `Interrupted`, both without blocking.
    pub fn block<T>(&self, guard: IrqSpinlockGuard<'_, T>, deadline: u64) -> WakeReason {
        let mut g = lock();
        let me = match enqueue_current(&mut g, self, deadline) {
            Ok(me) => me,
            Err(reason) => {
                drop(g);
                drop(guard);
                return reason;
            }
        };
        // Interrupts stay off (the object lock had them off) until `guard`
        // goes. From here a waker may already take us off the queue: if we
        // are still on this CPU it only marks us running again.
        drop(g);
        drop(guard);
        let mut g = lock();
        finish_block(&mut g, &me)
    }

    /// Wakes the longest-waiting thread with `status`; false if none waited.
    pub fn wake_one(&self, status: i32) -> bool {
        let mut g = lock();
        let woken = wake_locked(&mut g, self, WakeCode::Woken(status));
        super::preempt_if_needed(&mut g);
        woken
    }

    /// Wakes every waiting thread with `status`; returns how many.
    pub fn wake_all(&self, status: i32) -> usize {
        let mut g = lock();
        let mut count = 0;
        while wake_locked(&mut g, self, WakeCode::Woken(status)) {
            count += 1;
        }
        super::preempt_if_needed(&mut g);
        count
    }

    pub fn is_empty(&self) -> bool {
        self.list.lock().is_empty()
    }
}

impl Drop for WaitQueue {
    fn drop(&mut self) {
        // A blocked thread borrows its queue until it returns from `block`,
        // so a queue being dropped has no waiters.
        debug_assert!(self.list.lock().is_empty(), "wait queue dropped with waiters");
    }
}

/// Puts the current thread on `wq` (and its CPU's timer queue when there is
/// a deadline), marked blocked. `Err` when it must not block: killed, or
/// the deadline has passed.
fn enqueue_current(g: &mut SchedGuard, wq: &WaitQueue, deadline: u64) -> Result<CurrentRef, WakeReason> {
    let me = current_ref();
    debug_assert!(!me.is_idle(), "the idle thread cannot block");
    if me.is_killed() {
        return Err(WakeReason::Interrupted);
    }
    if deadline != INFINITE && deadline <= crate::time::now_ns() {
        return Err(WakeReason::TimedOut);
    }
    let cpu = this_cpu();
    let Some(current) = g.cpus[cpu].current.clone() else { return Err(WakeReason::Interrupted) };
    me.take_wake_code();
    me.set_state(State::Blocked);
    me.waiting_on.store(wq as *const WaitQueue as *mut WaitQueue, Ordering::Relaxed);
    if deadline != INFINITE {
        g.arm_timer(cpu, current.clone(), deadline);
        program_timer(&mut g.cpus[cpu]);
    }
    wq.list.lock().push_back(current);
    Ok(me)
}

/// Switches away unless the wait has already ended; returns why it ended.
fn finish_block(g: &mut SchedGuard, me: &CurrentRef) -> WakeReason {
    if me.state() == State::Blocked {
        reschedule(g);
    }
    debug_assert_eq!(me.state(), State::Running);
    me.take_wake_code().into()
}

/// Blocks the current thread on `wq` while the scheduler lock is held
/// throughout (for conditions the scheduler lock itself protects).
pub(super) fn wait_locked(g: &mut SchedGuard, wq: &WaitQueue, deadline: u64) -> WakeReason {
    match enqueue_current(g, wq, deadline) {
        Ok(me) => finish_block(g, &me),
        Err(reason) => reason,
    }
}

/// Wakes the first thread on `wq` with `code`; false if none waited.
pub(super) fn wake_locked(g: &mut Sched, wq: &WaitQueue, code: WakeCode) -> bool {
    let Some(thread) = wq.list.lock().pop_front() else { return false };
    thread.waiting_on.store(core::ptr::null_mut(), Ordering::Relaxed);
    drop(g.cancel_timer(&thread));
    thread.set_wake_code(code);
    g.make_ready(thread);
    true
}

impl super::Thread {
    /// Takes the thread off the wait queue it is blocked on, if any.
    pub(super) fn leave_wait_queue(&self) -> Option<Arc<super::Thread>> {
        let wq = self.waiting_on.swap(core::ptr::null_mut(), Ordering::Relaxed);
        if wq.is_null() {
            return None;
        }
        // SAFETY: `waiting_on` is set (under the scheduler lock, which the
        // caller holds) only while the thread is on that queue, and a queue
        // outlives its waiters: each borrows it until it leaves `block`.
        let wq = unsafe { &*wq };
        let mut list = wq.list.lock();
        // SAFETY: as above, the thread is linked into exactly this list.
        unsafe { list.cursor_mut_from_ptr(self) }.remove()
    }
}

/// Sleepers wait here; nothing wakes it, only deadlines and kills end a sleep.
static SLEEPERS: WaitQueue = WaitQueue::new();

/// Sleeps until `deadline` (absolute ns since boot; `u64::MAX` forever). A
/// deadline already past yields the CPU instead (like `mx_nanosleep(0)`).
/// `INTERNAL_INTR_RETRY` if the thread is killed (the syscall layer turns
/// that into the thread's exit).
pub fn sleep_until(deadline: u64) -> Result<(), Status> {
    if deadline <= crate::time::now_ns() {
        super::yield_now();
    } else {
        let mut g = lock();
        let reason = wait_locked(&mut g, &SLEEPERS, deadline);
        drop(g);
        if reason != WakeReason::Interrupted {
            return Ok(());
        }
    }
    if current_ref().is_killed() {
        Err(Status::InternalIntrRetry)
    } else {
        Ok(())
    }
}
