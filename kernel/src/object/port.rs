//! Ports: queues of 48-byte packets from `port_queue`, from async waits
//! (`object_wait_async`), and from guest traps (`PortTrap`, below). FIFO;
//! each packet wakes exactly one waiter.

#![forbid(unsafe_code)]

use super::signals::PacketSink;
use super::{KernelObject, ObjectBase};
use crate::sched::{WaitQueue, WakeReason};
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use kcore::port::{Packet, PortQueue, TrapId, TrapQueueError, PKT_TYPE_SIGNAL_ONE, PKT_TYPE_SIGNAL_REP};
use mx_abi::{ObjType, Signals, Status};

/// User packets queued in all ports together (Magenta's system-wide pool).
pub const MAX_USER_PACKETS: usize = 16384;
static USER_PACKETS: AtomicUsize = AtomicUsize::new(0);

pub struct Port {
    base: ObjectBase,
    queue: IrqSpinlock<PortQueue>,
    /// Threads in `port_wait`; each queued packet wakes one.
    waiters: WaitQueue,
    /// The VCPUs paused on each trap pool, by `TrapId::index` (see `PortTrap`).
    trap_waits: IrqSpinlock<Vec<Option<TrapWait>>>,
}

impl Port {
    pub fn new() -> Arc<Port> {
        Arc::new(Port {
            base: ObjectBase::new(ObjType::Port, Signals::NONE),
            queue: IrqSpinlock::new(PortQueue::with_user_cap(MAX_USER_PACKETS)),
            waiters: WaitQueue::new(),
            trap_waits: IrqSpinlock::new(Vec::new()),
        })
    }

    /// `port_queue`: NO_MEMORY when the system-wide pool is exhausted,
    /// BAD_STATE when the port has no handles left.
    pub fn queue_user(&self, key: u64, status: i32, payload: [u8; 32]) -> Result<(), Status> {
        if self.base.handle_count() == 0 {
            return Err(Status::BadState);
        }
        if USER_PACKETS.fetch_add(1, Ordering::AcqRel) >= MAX_USER_PACKETS {
            USER_PACKETS.fetch_sub(1, Ordering::AcqRel);
            return Err(Status::NoMemory);
        }
        let packet = Packet { key, kind: 0, status, payload };
        let queued = self.queue.lock().queue_user(packet);
        match queued {
            Ok(()) => {
                self.waiters.wake_one(0);
                Ok(())
            }
            Err(_) => {
                USER_PACKETS.fetch_sub(1, Ordering::AcqRel);
                Err(Status::NoMemory)
            }
        }
    }

    /// Takes the oldest packet, if any.
    pub fn try_dequeue(&self) -> Option<Packet> {
        let dequeued = self.queue.lock().dequeue()?;
        if dequeued.packet.kind == kcore::port::PKT_TYPE_USER {
            USER_PACKETS.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(trap) = dequeued.resume {
            self.resume_trap(trap);
        }
        Some(dequeued.packet)
    }

    /// `port_wait`: the oldest packet, waiting until `deadline` (absolute
    /// ns) for one. TIMED_OUT at the deadline; an interrupted wait returns
    /// INTERNAL_INTR_RETRY (the vDSO retries, as in Magenta).
    pub fn wait(&self, deadline: u64) -> Result<Packet, Status> {
        loop {
            let mut queue = self.queue.lock();
            if let Some(dequeued) = queue.dequeue() {
                drop(queue);
                if dequeued.packet.kind == kcore::port::PKT_TYPE_USER {
                    USER_PACKETS.fetch_sub(1, Ordering::AcqRel);
                }
                if let Some(trap) = dequeued.resume {
                    self.resume_trap(trap);
                }
                return Ok(dequeued.packet);
            }
            if deadline <= crate::time::now_ns() {
                return Err(Status::TimedOut);
            }
            match self.waiters.block(queue, deadline) {
                WakeReason::Woken(_) => continue,
                WakeReason::TimedOut => return self.try_dequeue().ok_or(Status::TimedOut),
                WakeReason::Interrupted => return Err(Status::InternalIntrRetry),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queue.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KernelObject for Port {
    fn base(&self) -> &ObjectBase {
        &self.base
    }
    fn obj_type(&self) -> ObjType {
        ObjType::Port
    }
    fn is_waitable(&self) -> bool {
        false
    }
    fn on_zero_handles(&self) {
        self.wake_paused_vcpus();
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        let user = self.queue.get_mut().user_len();
        USER_PACKETS.fetch_sub(user, Ordering::AcqRel);
    }
}

/// The signal payload: trigger, observed, count 1.
fn signal_payload(trigger: Signals, observed: Signals) -> [u8; 32] {
    let mut payload = [0u8; 32];
    payload[0..4].copy_from_slice(&trigger.bits().to_le_bytes());
    payload[4..8].copy_from_slice(&observed.bits().to_le_bytes());
    payload[8..16].copy_from_slice(&1u64.to_le_bytes());
    payload
}

impl PacketSink for Port {
    fn deliver_signal(&self, source: u64, key: u64, trigger: Signals, observed: Signals, repeating: bool) -> bool {
        let kind = if repeating { PKT_TYPE_SIGNAL_REP } else { PKT_TYPE_SIGNAL_ONE };
        let packet = Packet { key, kind, status: 0, payload: signal_payload(trigger, observed) };
        let queued = self.queue.lock().queue_signal(source, packet).is_ok();
        if queued {
            self.waiters.wake_one(0);
        }
        queued
    }

    fn has_pending(&self, source: u64, key: u64) -> bool {
        self.queue.lock().has_signal(source, key)
    }

    fn cancel_pending(&self, source: u64, key: u64) -> usize {
        self.queue.lock().cancel(source, key)
    }
}

// ---- guest traps ----

/// A trap pool's id and the wait queue of the VCPUs paused on it.
type TrapWait = (TrapId, Arc<WaitQueue>);

/// One trap's fixed packet pool in a port (`mx_guest_set_trap` with a port),
/// with the wait queue of the VCPUs paused on it.
///
/// The pool itself is `kcore::port`'s: `TRAP_POOL_SIZE` packets preallocated
/// when the trap is set, so queueing and dequeueing trap packets never
/// allocate. When the pool is empty, [`PortTrap::queue`] counts the VCPU as
/// paused and blocks it on this trap's wait queue (FIFO). Each dequeue of one
/// of the trap's packets while VCPUs are paused hands the freed slot to the
/// oldest of them (`Dequeued::resume`) and [`Port::resume_trap`] wakes
/// exactly one thread; that thread queues its packet into the reserved slot.
/// A VCPU woken any other way (killed, trap removed, port without handles)
/// gives up its place or passes a slot it was handed to the next paused VCPU.
pub struct PortTrap {
    port: Arc<Port>,
    id: TrapId,
    paused: Arc<WaitQueue>,
}

impl Port {
    /// Creates the packet pool of a trap whose packets carry `key` (the only
    /// allocation of the trap path). `NO_MEMORY`.
    pub fn add_trap(self: &Arc<Self>, key: u64) -> Result<Arc<PortTrap>, Status> {
        let paused = Arc::new(WaitQueue::new());
        let id = self.queue.lock().add_trap(key).map_err(|_| Status::NoMemory)?;
        let trap = Arc::new(PortTrap { port: self.clone(), id, paused: paused.clone() });
        let mut waits = self.trap_waits.lock();
        let index = id.index();
        let len = waits.len();
        if index >= len {
            if waits.try_reserve(index + 1 - len).is_err() {
                drop(waits);
                drop(trap); // removes the pool
                return Err(Status::NoMemory);
            }
            waits.resize(index + 1, None);
        }
        waits[index] = Some((id, paused));
        Ok(trap)
    }

    /// A dequeue handed a slot of trap `id` to its oldest paused VCPU: wake
    /// exactly one. No allocation.
    fn resume_trap(&self, id: TrapId) {
        let waits = self.trap_waits.lock();
        if let Some(Some((trap, paused))) = waits.get(id.index()) {
            if *trap == id {
                paused.wake_one(Status::Ok.into_raw());
            }
        }
    }

    /// The last handle is gone: nobody can dequeue any more, so VCPUs paused
    /// on this port's traps wake with `BAD_STATE` (later trap packets fail
    /// the same way, see [`PortTrap::queue`]).
    fn wake_paused_vcpus(&self) {
        // A VCPU that saw handles left paused under the queue lock: after
        // this it is on its wait queue.
        drop(self.queue.lock());
        let waits = self.trap_waits.lock();
        for (_, paused) in waits.iter().flatten() {
            paused.wake_all(Status::BadState.into_raw());
        }
    }
}

impl PortTrap {
    /// Queues a trap packet (its key is set to the trap's). If the pool is
    /// empty the calling thread is paused (`on_pause` is called once, then it
    /// blocks) until a dequeue of one of the trap's packets frees a slot for
    /// it. Never allocates. Errors: `BAD_STATE` when the port has no handles
    /// left or the trap was removed (guest destroyed), `CANCELED` when the
    /// thread is killed while paused; the packet is then dropped.
    pub fn queue(&self, packet: Packet, on_pause: impl FnOnce()) -> Result<(), Status> {
        let port = &*self.port;
        let mut queue = port.queue.lock();
        if port.base.handle_count() == 0 {
            return Err(Status::BadState);
        }
        match queue.queue_trap(self.id, packet) {
            Ok(()) => {
                drop(queue);
                port.waiters.wake_one(0);
                return Ok(());
            }
            Err(TrapQueueError::BadTrap) => return Err(Status::BadState),
            Err(TrapQueueError::WouldBlock) => {}
        }
        on_pause();
        loop {
            // Counted as paused under the queue lock, which `block` releases
            // only once we are on the wait queue: no wake-up is lost.
            let reason = self.paused.block(queue, crate::sched::INFINITE);
            queue = port.queue.lock();
            let status = match reason {
                WakeReason::Woken(status) if status == Status::Ok.into_raw() => {
                    match queue.queue_trap_reserved(self.id, packet) {
                        Ok(()) => {
                            drop(queue);
                            port.waiters.wake_one(0);
                            return Ok(());
                        }
                        // Still counted as paused (a wake-up without a slot): wait on.
                        Err(_) if queue.trap_paused(self.id).is_some() => continue,
                        Err(_) => return Err(Status::BadState),
                    }
                }
                WakeReason::Woken(status) => Status::try_from(status).unwrap_or(Status::BadState),
                WakeReason::Interrupted => Status::Canceled,
                WakeReason::TimedOut => Status::BadState,
            };
            // Woken without a slot: stop counting as paused, or, if a dequeue
            // already handed us a slot, pass it to the next paused VCPU.
            if !queue.unpause(self.id) && queue.release_reservation(self.id).is_some() {
                drop(queue);
                self.paused.wake_one(Status::Ok.into_raw());
            }
            return Err(status);
        }
    }

    /// Removes the trap's pool (trap or guest destruction): its queued packets
    /// are cancelled (user packets with the same key stay), and VCPUs paused
    /// on it wake with `BAD_STATE`. Idempotent.
    pub fn remove(&self) {
        if self.port.queue.lock().remove_trap(self.id).is_none() {
            return;
        }
        let mut waits = self.port.trap_waits.lock();
        if let Some(slot) = waits.get_mut(self.id.index()) {
            if matches!(slot, Some((id, _)) if *id == self.id) {
                *slot = None;
            }
        }
        drop(waits);
        self.paused.wake_all(Status::BadState.into_raw());
    }
}

impl Drop for PortTrap {
    fn drop(&mut self) {
        self.remove();
    }
}
