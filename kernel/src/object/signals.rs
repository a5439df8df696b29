//! Signal state and the observers that wait on it.
//!
//! Each waitable object holds its asserted signals and a list of observers:
//! threads in `object_wait_one`/`wait_many`, and async waits that turn a
//! signal into a port packet. Changing signals notifies the observers whose
//! watched bits became asserted; closing a handle cancels the observers
//! registered through it.

#![forbid(unsafe_code)]

use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use alloc::vec::Vec;
use mx_abi::{Signals, Status};

/// Something a thread blocks on until one of its observers fires.
pub trait Watcher: Send + Sync {
    /// Observer `index` saw `signals` (which include a watched bit).
    fn signaled(&self, index: usize, signals: Signals);
    /// The handle observer `index` was registered through was closed.
    fn canceled(&self, index: usize, signals: Signals);
}

/// Where an async wait delivers its packets.
pub trait PacketSink: Send + Sync {
    /// Queues a signal packet; `false` if it could not (the registration
    /// then stays, to try again on the next change).
    fn deliver_signal(&self, source: u64, key: u64, trigger: Signals, observed: Signals, repeating: bool) -> bool;
    /// Whether a repeating registration's packet is still queued.
    fn has_pending(&self, source: u64, key: u64) -> bool;
    /// Drops the registration's queued packets (its handle closed or it was cancelled).
    fn cancel_pending(&self, source: u64, key: u64) -> usize;
}

enum Kind {
    Wait { watcher: Arc<dyn Watcher>, index: usize },
    Async { sink: Arc<dyn PacketSink>, key: u64, repeating: bool },
}

struct Observer {
    kind: Kind,
    watched: Signals,
    /// The handle it was registered through.
    handle_id: u64,
}

struct Inner {
    signals: Signals,
    observers: Vec<Observer>,
}

/// The asserted signals of one object and who is watching them.
pub struct SignalState {
    inner: IrqSpinlock<Inner>,
}

impl SignalState {
    pub fn new(initial: Signals) -> Self {
        SignalState { inner: IrqSpinlock::new(Inner { signals: initial, observers: Vec::new() }) }
    }

    pub fn get(&self) -> Signals {
        self.inner.lock().signals
    }

    /// Clears `clear`, then sets `set`, and notifies observers of newly
    /// asserted watched bits.
    pub fn update(&self, clear: Signals, set: Signals) {
        self.update_with(|old| (old - clear) | set);
    }

    /// Sets the signals to `next(current)`, computed under the signal lock
    /// (for a state read there that may change concurrently).
    pub fn update_with(&self, next: impl FnOnce(Signals) -> Signals) {
        let mut inner = self.inner.lock();
        let old = inner.signals;
        let new = next(old);
        if new == old {
            return;
        }
        inner.signals = new;
        if new.intersects(!old) {
            notify(&mut inner);
        }
    }

    /// Registers a thread's wait: fires at once if a watched bit is already
    /// asserted. The caller removes it with [`Self::remove_waits`].
    pub fn add_wait(
        &self,
        watcher: Arc<dyn Watcher>,
        index: usize,
        watched: Signals,
        handle_id: u64,
    ) -> Result<Signals, Status> {
        let mut inner = self.inner.lock();
        let signals = inner.signals;
        if signals.intersects(watched) {
            watcher.signaled(index, signals);
        }
        inner.observers.try_reserve(1).map_err(|_| Status::NoMemory)?;
        inner.observers.push(Observer { kind: Kind::Wait { watcher, index }, watched, handle_id });
        Ok(signals)
    }

    /// Removes the waits `watcher` registered; returns the current signals.
    pub fn remove_waits(&self, watcher: &Arc<dyn Watcher>) -> Signals {
        let mut inner = self.inner.lock();
        inner.observers.retain(|o| match &o.kind {
            Kind::Wait { watcher: w, .. } => !Arc::ptr_eq(w, watcher),
            Kind::Async { .. } => true,
        });
        inner.signals
    }

    /// Registers an async wait. If a watched bit is already asserted a
    /// packet is queued at once; a one-shot registration then ends.
    pub fn add_async(
        &self,
        sink: Arc<dyn PacketSink>,
        key: u64,
        watched: Signals,
        repeating: bool,
        handle_id: u64,
    ) -> Result<(), Status> {
        let mut inner = self.inner.lock();
        let signals = inner.signals;
        if signals.intersects(watched) && sink.deliver_signal(handle_id, key, watched, signals, repeating) && !repeating
        {
            return Ok(());
        }
        inner.observers.try_reserve(1).map_err(|_| Status::NoMemory)?;
        inner.observers.push(Observer { kind: Kind::Async { sink, key, repeating }, watched, handle_id });
        Ok(())
    }

    /// `port_cancel`: removes the async waits registered through handle
    /// `handle_id` with `key` that deliver to `sink`, and their queued
    /// packets. Returns whether anything matched.
    pub fn cancel_async(&self, sink: &Arc<dyn PacketSink>, handle_id: u64, key: u64) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.observers.len();
        inner.observers.retain(|o| match &o.kind {
            Kind::Async { sink: s, key: k, .. } => !(o.handle_id == handle_id && *k == key && Arc::ptr_eq(s, sink)),
            Kind::Wait { .. } => true,
        });
        let removed = before != inner.observers.len();
        drop(inner);
        let dropped = sink.cancel_pending(handle_id, key);
        removed || dropped > 0
    }

    /// A handle closed: waits through it end with CANCELED, async waits
    /// through it are removed (their queued packets stay).
    pub fn cancel_handle(&self, handle_id: u64) {
        let mut inner = self.inner.lock();
        if inner.observers.is_empty() {
            return;
        }
        let signals = inner.signals | Signals::HANDLE_CLOSED;
        inner.observers.retain(|o| {
            if o.handle_id != handle_id {
                return true;
            }
            if let Kind::Wait { watcher, index } = &o.kind {
                watcher.canceled(*index, signals);
            }
            false
        });
    }
}

/// Tells every observer whose watched bits are asserted; one-shot async
/// waits that delivered are removed.
fn notify(inner: &mut Inner) {
    let signals = inner.signals;
    inner.observers.retain(|o| {
        if !signals.intersects(o.watched) {
            return true;
        }
        match &o.kind {
            Kind::Wait { watcher, index } => {
                watcher.signaled(*index, signals);
                true
            }
            Kind::Async { sink, key, repeating } => {
                if *repeating && sink.has_pending(o.handle_id, *key) {
                    return true;
                }
                let delivered = sink.deliver_signal(o.handle_id, *key, o.watched, signals, *repeating);
                *repeating || !delivered
            }
        }
    });
}
