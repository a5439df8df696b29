//! Events and eventpairs: objects whose only state is their signals.

#![forbid(unsafe_code)]

use super::{KernelObject, ObjectBase};
use crate::sync::IrqSpinlock;
use alloc::sync::{Arc, Weak};
use mx_abi::{ObjType, Signals};

pub struct Event {
    base: ObjectBase,
}

impl Event {
    pub fn new() -> Arc<Event> {
        Arc::new(Event { base: ObjectBase::new(ObjType::Event, Signals::NONE) })
    }
}

impl KernelObject for Event {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Event
    }
    fn user_signal_mask(&self) -> Signals {
        Signals::EVENT_SIGNAL_MASK
    }
}

/// One end of an eventpair.
pub struct EventPair {
    base: ObjectBase,
    peer: IrqSpinlock<Weak<EventPair>>,
    peer_koid: u64,
}

impl EventPair {
    pub fn new_pair() -> (Arc<EventPair>, Arc<EventPair>) {
        let a_base = ObjectBase::new(ObjType::EventPair, Signals::NONE);
        let b_base = ObjectBase::new(ObjType::EventPair, Signals::NONE);
        let (a_koid, b_koid) = (a_base.koid(), b_base.koid());
        let a = Arc::new(EventPair { base: a_base, peer: IrqSpinlock::new(Weak::new()), peer_koid: b_koid });
        let b = Arc::new(EventPair { base: b_base, peer: IrqSpinlock::new(Arc::downgrade(&a)), peer_koid: a_koid });
        *a.peer.lock() = Arc::downgrade(&b);
        (a, b)
    }
}

impl KernelObject for EventPair {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::EventPair
    }
    fn user_signal_mask(&self) -> Signals {
        Signals::EVENT_SIGNAL_MASK
    }
    fn peer(&self) -> Option<Option<Arc<dyn KernelObject>>> {
        Some(self.peer.lock().upgrade().map(|p| p as Arc<dyn KernelObject>))
    }
    fn related_koid(&self) -> u64 {
        self.peer_koid
    }
    fn on_zero_handles(&self) {
        // The peer learns we are gone, and stops pointing at us.
        let peer = core::mem::take(&mut *self.peer.lock());
        if let Some(peer) = peer.upgrade() {
            *peer.peer.lock() = Weak::new();
            peer.base.signals.update(Signals::NONE, Signals::EPAIR_PEER_CLOSED);
        }
    }
}
