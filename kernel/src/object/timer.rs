//! Timers: objects that assert `MX_TIMER_SIGNALED` at a deadline.
//!
//! Armed timers sit in one deadline-ordered map served by a kernel thread
//! that sleeps until the earliest deadline (woken early when an earlier one
//! is armed). Slack is accepted and ignored: timers fire at their deadline.

#![forbid(unsafe_code)]

use super::{KernelObject, ObjectBase};
use crate::sched::WaitQueue;
use crate::sync::IrqSpinlock;
use alloc::collections::BTreeMap;
use alloc::sync::{Arc, Weak};
use mx_abi::{ObjType, Signals, Status};

pub struct Timer {
    base: ObjectBase,
    /// The armed deadline, or None.
    armed: IrqSpinlock<Option<u64>>,
}

/// Armed timers by (deadline, koid).
static ARMED: IrqSpinlock<BTreeMap<(u64, u64), Weak<Timer>>> = IrqSpinlock::new(BTreeMap::new());
static SERVICE_WAKE: WaitQueue = WaitQueue::new();
static SERVICE: spin::Once<Result<(), Status>> = spin::Once::new();

impl Timer {
    pub fn new() -> Result<Arc<Timer>, Status> {
        (*SERVICE.call_once(|| crate::sched::spawn_kernel_thread("timers", 24, serve).map(|_| ())))?;
        Ok(Arc::new(Timer { base: ObjectBase::new(ObjType::Timer, Signals::NONE), armed: IrqSpinlock::new(None) }))
    }

    /// Cancels any pending deadline and clears SIGNALED; a deadline of 0 or
    /// in the past signals at once.
    pub fn set(self: &Arc<Self>, deadline: u64) -> Result<(), Status> {
        self.cancel();
        if deadline == 0 || deadline <= crate::time::now_ns() {
            self.base.signals.update(Signals::NONE, Signals::TIMER_SIGNALED);
            return Ok(());
        }
        let mut armed = ARMED.lock();
        let earliest = armed.keys().next().is_none_or(|&(d, _)| deadline < d);
        armed.insert((deadline, self.koid()), Arc::downgrade(self));
        *self.armed.lock() = Some(deadline);
        drop(armed);
        if earliest {
            SERVICE_WAKE.wake_all(0);
        }
        Ok(())
    }

    /// Disarms the timer and clears SIGNALED.
    pub fn cancel(&self) {
        self.disarm();
        self.base.signals.update(Signals::TIMER_SIGNALED, Signals::NONE);
    }

    /// Takes the deadline out of the map. The two locks are never held
    /// together here: `set` takes `ARMED` then the timer's lock, and holding
    /// them in the other order would deadlock against it.
    fn disarm(&self) {
        let deadline = self.armed.lock().take();
        if let Some(deadline) = deadline {
            ARMED.lock().remove(&(deadline, self.koid()));
        }
    }
}

impl KernelObject for Timer {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Timer
    }
    fn on_zero_handles(&self) {
        self.disarm();
    }
}

fn serve() {
    loop {
        let armed = ARMED.lock();
        let Some((&(deadline, koid), _)) = armed.iter().next() else {
            let _ = SERVICE_WAKE.block(armed, u64::MAX);
            continue;
        };
        if deadline > crate::time::now_ns() {
            let _ = SERVICE_WAKE.block(armed, deadline);
            continue;
        }
        let mut armed = armed;
        let timer = armed.remove(&(deadline, koid)).and_then(|t| t.upgrade());
        drop(armed);
        if let Some(timer) = timer {
            let mut slot = timer.armed.lock();
            if *slot == Some(deadline) {
                *slot = None;
                drop(slot);
                timer.base.signals.update(Signals::NONE, Signals::TIMER_SIGNALED);
            }
        }
    }
}
