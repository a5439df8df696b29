//! Kernel objects and the handles that name them.
//!
//! Every object user mode can reach implements [`KernelObject`] and embeds an
//! [`ObjectBase`]: its koid, the count of handles naming it, and its signal
//! state. User mode only ever holds handle values; a [`Handle`] pairs an
//! object reference with rights, and the per-process [`HandleTable`]
//! resolves values in the contract's check order (BAD_HANDLE, then
//! ACCESS_DENIED, then WRONG_TYPE).
//!
//! Lock order: a handle table's lock, then an object's signal-state lock,
//! then a port's queue lock or a waiter's lock. Nothing calls back into an
//! object while holding a port's or a waiter's lock.
//!
//! Object code carries no `unsafe`: each file but the tests says so with
//! `#![forbid(unsafe_code)]` (the tests' `ktest!` registrations use
//! `#[link_section]`, which that lint counts as unsafe).

pub mod channel;
pub mod event;
pub mod handle;
pub mod job;
pub mod log;
pub mod port;
pub mod process;
pub mod resource;
pub mod signals;
mod tests;
pub mod thread;
pub mod timer;
pub mod vmo;
pub mod wait;

use alloc::sync::Arc;
use core::any::Any;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
pub use handle::{Handle, HandleTable};
use mx_abi::{ObjType, Signals};
pub use signals::SignalState;

/// Kernel object id, unique for the life of the system.
pub type Koid = u64;

/// Koids below 1024 are reserved, as in Magenta.
static NEXT_KOID: AtomicU64 = AtomicU64::new(1024);

/// A fresh koid.
pub fn new_koid() -> Koid {
    NEXT_KOID.fetch_add(1, Ordering::Relaxed)
}

/// State every object embeds.
pub struct ObjectBase {
    koid: Koid,
    obj_type: ObjType,
    handle_count: AtomicU32,
    pub signals: SignalState,
}

impl ObjectBase {
    pub fn new(obj_type: ObjType, initial: Signals) -> Self {
        count_object(obj_type, 1);
        ObjectBase { koid: new_koid(), obj_type, handle_count: AtomicU32::new(0), signals: SignalState::new(initial) }
    }

    pub fn koid(&self) -> Koid {
        self.koid
    }

    pub fn handle_count(&self) -> u32 {
        self.handle_count.load(Ordering::Acquire)
    }
}

impl Drop for ObjectBase {
    fn drop(&mut self) {
        count_object(self.obj_type, -1);
    }
}

/// Gives `Arc<dyn KernelObject>` a way back to its concrete type.
pub trait AsAny: Any + Send + Sync {
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

impl<T: Any + Send + Sync> AsAny for T {
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

/// An object reachable through handles.
pub trait KernelObject: AsAny {
    fn base(&self) -> &ObjectBase;

    fn obj_type(&self) -> ObjType;

    fn koid(&self) -> Koid {
        self.base().koid
    }

    /// Whether `object_wait_*` may wait on it (ports, VMARs, guests and
    /// VCPUs are not waitable).
    fn is_waitable(&self) -> bool {
        true
    }

    /// The bits `object_signal` may change on this object.
    fn user_signal_mask(&self) -> Signals {
        Signals::USER_ALL
    }

    /// The other end, for objects that have one (channel, eventpair):
    /// `Some(None)` when it has gone, `None` for objects without a peer.
    fn peer(&self) -> Option<Option<Arc<dyn KernelObject>>> {
        None
    }

    /// The koid of the related object (a channel's peer, a thread's process).
    fn related_koid(&self) -> Koid {
        0
    }

    /// Called when the last handle goes away (the object may live on while
    /// the kernel holds references).
    fn on_zero_handles(&self) {}
}

/// Downcasts an object reference to its concrete type.
pub fn downcast<T: KernelObject>(object: Arc<dyn KernelObject>) -> Option<Arc<T>> {
    object.into_any().downcast::<T>().ok()
}

/// Live objects by type, for accounting (indexed by `mx_obj_type_t`).
static LIVE_OBJECTS: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

fn count_object(obj_type: ObjType, delta: i64) {
    if let Some(counter) = LIVE_OBJECTS.get(obj_type as usize) {
        counter.fetch_add(delta as u64, Ordering::Relaxed);
    }
}

/// How many objects of `obj_type` exist.
pub fn live_objects(obj_type: ObjType) -> u64 {
    LIVE_OBJECTS.get(obj_type as usize).map_or(0, |c| c.load(Ordering::Relaxed))
}

/// `MX_INFO_KERNEL_COUNTS`: what the kernel holds right now.
pub fn kernel_counts() -> mx_abi::object::InfoKernelCounts {
    mx_abi::object::InfoKernelCounts {
        objects: live_objects_total(),
        handles: handle::live_handles(),
        committed_pages: crate::vm::committed_pages(),
        vmos: crate::vm::live_vmos(),
        heap_bytes: crate::mm::heap::in_use() as u64,
        free_frames: crate::mm::frame::stats().free_frames,
        processes: live_objects(ObjType::Process),
        threads: live_objects(ObjType::Thread),
    }
}

/// How many objects exist, of every type.
pub fn live_objects_total() -> u64 {
    LIVE_OBJECTS.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}
