//! Threads waiting on object signals: `object_wait_one` and `wait_many`.

#![forbid(unsafe_code)]

use super::signals::Watcher;
use super::KernelObject;
use crate::sched::{WaitQueue, WakeReason};
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use alloc::vec::Vec;
use mx_abi::{Signals, Status};

#[derive(Default)]
struct State {
    /// The first observer that saw a watched signal.
    satisfied: Option<usize>,
    /// The first observer whose handle was closed during the wait.
    canceled: Option<usize>,
}

/// One waiting thread's rendezvous with the objects it watches.
struct Waiter {
    state: IrqSpinlock<State>,
    queue: WaitQueue,
}

impl Watcher for Waiter {
    fn signaled(&self, index: usize, _signals: Signals) {
        let mut state = self.state.lock();
        if state.satisfied.is_none() {
            state.satisfied = Some(index);
        }
        drop(state);
        self.queue.wake_all(0);
    }

    fn canceled(&self, index: usize, _signals: Signals) {
        let mut state = self.state.lock();
        state.canceled.get_or_insert(index);
        drop(state);
        self.queue.wake_all(0);
    }
}

/// What a wait on one or more objects ended with.
pub struct WaitOutcome {
    pub status: Result<(), Status>,
    /// Each object's signals at the end (with HANDLE_CLOSED for a closed handle).
    pub observed: Vec<Signals>,
}

/// One object to wait on, through the handle `handle_id`.
pub struct WaitItem {
    pub object: Arc<dyn KernelObject>,
    pub handle_id: u64,
    pub watched: Signals,
}

/// Waits until a watched signal of any item is asserted (OK, also when the
/// deadline has already passed), the deadline passes (TIMED_OUT), a handle
/// is closed (CANCELED), or the thread is interrupted (INTERNAL_INTR_RETRY).
pub fn wait_many(items: &[WaitItem], deadline: u64) -> Result<WaitOutcome, Status> {
    // Fast path: an item is satisfied already. The answer is the one the
    // full path would give (registering would see it and not block), without
    // allocating a waiter or taking every object's lock twice.
    if let Some(outcome) = satisfied_now(items)? {
        return Ok(outcome);
    }
    // Reserved before any wait is registered: failing later would leave
    // the registrations behind.
    let mut observed = Vec::new();
    observed.try_reserve_exact(items.len()).map_err(|_| Status::NoMemory)?;
    let waiter = Arc::new(Waiter { state: IrqSpinlock::new(State::default()), queue: WaitQueue::new() });
    let watcher: Arc<dyn Watcher> = waiter.clone();
    let mut registered = 0;
    let mut failure = None;
    for (index, item) in items.iter().enumerate() {
        if let Err(status) = item.object.base().signals.add_wait(watcher.clone(), index, item.watched, item.handle_id) {
            failure = Some(status);
            break;
        }
        registered += 1;
    }
    let reason = if failure.is_some() {
        None
    } else {
        let state = waiter.state.lock();
        if state.satisfied.is_some() || state.canceled.is_some() || deadline <= crate::time::now_ns() {
            None
        } else {
            Some(waiter.queue.block(state, deadline))
        }
    };
    for item in &items[..registered] {
        observed.push(item.object.base().signals.remove_waits(&watcher));
    }
    if let Some(status) = failure {
        return Err(status);
    }
    let state = waiter.state.lock();
    let status = if let Some(index) = state.canceled {
        if let Some(signals) = observed.get_mut(index) {
            *signals |= Signals::HANDLE_CLOSED;
        }
        Err(Status::Canceled)
    } else if state.satisfied.is_some() || observed.iter().zip(items).any(|(s, i)| s.intersects(i.watched)) {
        Ok(())
    } else if matches!(reason, Some(WakeReason::Interrupted)) {
        Err(Status::InternalIntrRetry)
    } else {
        Err(Status::TimedOut)
    };
    Ok(WaitOutcome { status, observed })
}

/// The outcome if some item's signals already satisfy its wait.
fn satisfied_now(items: &[WaitItem]) -> Result<Option<WaitOutcome>, Status> {
    let mut observed = Vec::new();
    observed.try_reserve_exact(items.len()).map_err(|_| Status::NoMemory)?;
    for item in items {
        observed.push(item.object.base().signals.get());
    }
    if observed.iter().zip(items).any(|(s, i)| s.intersects(i.watched)) {
        Ok(Some(WaitOutcome { status: Ok(()), observed }))
    } else {
        Ok(None)
    }
}
