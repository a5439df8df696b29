//! Ports: queues of 48-byte packets from `port_queue`, from async waits
//! (`object_wait_async`), and later from guest traps. FIFO; each packet
//! wakes exactly one waiter.

#![forbid(unsafe_code)]

use super::signals::PacketSink;
use super::{KernelObject, ObjectBase};
use crate::sched::{WaitQueue, WakeReason};
use crate::sync::IrqSpinlock;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};
use kcore::port::{Packet, PortQueue, PKT_TYPE_SIGNAL_ONE, PKT_TYPE_SIGNAL_REP};
use mx_abi::{ObjType, Signals, Status};

/// User packets queued in all ports together (Magenta's system-wide pool).
pub const MAX_USER_PACKETS: usize = 16384;
static USER_PACKETS: AtomicUsize = AtomicUsize::new(0);

pub struct Port {
    base: ObjectBase,
    queue: IrqSpinlock<PortQueue>,
    /// Threads in `port_wait`; each queued packet wakes one.
    waiters: WaitQueue,
}

impl Port {
    pub fn new() -> Arc<Port> {
        Arc::new(Port {
            base: ObjectBase::new(ObjType::Port, Signals::NONE),
            queue: IrqSpinlock::new(PortQueue::with_user_cap(MAX_USER_PACKETS)),
            waiters: WaitQueue::new(),
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
